// SPDX-License-Identifier: GPL-2.0

//! bmgnic-rmed: the RME daemon. It speaks the cloud's protocols on the
//! RME's management network and drives the NIC only through the
//! `bmgnic_rme` module's generic netlink family.

#[cfg(feature = "daemon")]
pub mod agent;
#[cfg(feature = "daemon")]
pub mod mapping;
#[cfg(feature = "daemon")]
pub mod nl;
pub mod openflow;
#[cfg(feature = "daemon")]
pub mod platform;
#[cfg(feature = "daemon")]
pub mod redfish;
#[cfg(feature = "daemon")]
pub mod rme;
#[cfg(feature = "daemon")]
pub mod switch;

#[cfg(all(test, feature = "daemon"))]
mod switch_tests;
