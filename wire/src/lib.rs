// SPDX-License-Identifier: GPL-2.0 OR MIT

//! BMGNIC wire formats: the one source of truth for every byte that
//! crosses a boundary between the tenant driver, the RME module and the
//! device model.
//!
//! - [`regs`]: the guest register bank (BAR0), descriptors, status block.
//! - [`ncsi`]: DMTF DSP0222 control packet framing, checksum, command,
//!   response and reason codes.
//! - [`ncsi_oem`]: the BMGNIC OEM command set that carries the RME bank.
//! - [`genl`]: the numbers of the `bmgnic` generic netlink family, which
//!   the RME module serves and the RME daemon uses.
//! - [`platform`]: what the RME daemon and the board must agree on beyond
//!   the platform channel's JSON (checkpoint names).
//!
//! Every module is core-only: no `std`, no `kernel`, no allocation, no
//! dependency outside this directory but `crate::<sibling>` paths. That is
//! what lets each side build the same files its own way:
//!
//! - Cargo (the device model in `qemu/`, its fuzz targets, `bmgnic-rmectl`)
//!   depends on this crate by path.
//! - Kbuild cannot link a Cargo crate into a module, so the tenant driver
//!   and `bmgnic_rme` compile the files they need as modules of their own
//!   crate root with `#[path = ".../wire/src/<module>.rs"]`, under the same
//!   module names, so the `crate::` paths between them resolve alike.
//!
//! The Python tests read the constants from these files through
//! `tools/testing/wire.py`.

#![no_std]

pub mod genl;
pub mod ncsi;
pub mod ncsi_oem;
pub mod platform;
pub mod regs;
