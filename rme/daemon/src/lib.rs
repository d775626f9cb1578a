// SPDX-License-Identifier: GPL-2.0

//! bmgnic-rmed: the RME daemon. It speaks the cloud's protocols on the
//! RME's management network and drives the NIC only through the
//! `bmgnic_rme` module's generic netlink family.

pub mod agent;
pub mod mapping;
pub mod nl;
pub mod openflow;
pub mod platform;
pub mod redfish;
pub mod rme;
pub mod switch;

#[cfg(test)]
mod switch_tests;
