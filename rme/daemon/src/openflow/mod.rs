// SPDX-License-Identifier: GPL-2.0

//! The OpenFlow 1.3 switch side: codec of every message the agent reads
//! or writes (ONF TS-023, OpenFlow 1.3.5).
//!
//! Decoding never panics and never trusts a length: every structure is
//! read through a bounded [`buf::Reader`], and what cannot be accepted is
//! the [`buf::OfError`] the controller expects in reply.

pub mod action;
pub mod buf;
pub mod consts;
pub mod message;
pub mod oxm;
