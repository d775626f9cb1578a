// SPDX-License-Identifier: GPL-2.0 OR MIT

//! BMGNIC register map: the one source of truth.
//!
//! Core-only (no `std`, no `kernel`): the tenant driver compiles it as a
//! module of its crate and the device model in `qemu/` includes it with
//! `#[path]`, so the two cannot drift. Each side uses a subset.
//!
//! Documented in `Documentation/bmgnic/registers.rst`.

#![allow(dead_code)]

/// PCI vendor ID: Red Hat (Qumranet), whose 0x10f0-0x10ff device range QEMU's
/// `docs/specs/pci-ids.rst` leaves free for experimental devices.
pub const PCI_VENDOR_ID: u16 = 0x1af4;
/// PCI device ID of the BMGNIC, from the experimental range.
pub const PCI_DEVICE_ID: u16 = 0x10f0;
/// PCI revision of the function.
pub const PCI_REVISION: u8 = 0x01;
/// PCI class code: network controller, Ethernet, no programming interface.
pub const PCI_CLASS_CODE: u32 = 0x02_00_00;

/// Guest bank: BAR0, the only configuration the tenant can reach.
pub mod guest {
    /// Size of BAR0: guest registers, then the MSI-X table and PBA.
    pub const BAR0_SIZE: usize = 0x4000;
    /// End of the guest register block (the driver maps this much).
    pub const REGS_END: usize = 0x1000;
    /// Offset of the MSI-X table in BAR0.
    pub const MSIX_TABLE_OFFSET: u32 = 0x2000;
    /// Offset of the MSI-X pending-bit array in BAR0.
    pub const MSIX_PBA_OFFSET: u32 = 0x3000;

    /// Read-only identification register.
    pub const ID: usize = 0x000;
    /// Value of [`ID`]: "BMGN" in ASCII.
    pub const ID_MAGIC: u32 = 0x424d_474e;

    /// Read-only version register: major in bits 31:16, minor in 15:0.
    pub const VERSION: usize = 0x004;
    /// Major version of this register map; a driver refuses another major.
    pub const VERSION_MAJOR: u16 = 0;
    /// Minor version of this register map; additions bump it.
    pub const VERSION_MINOR: u16 = 1;

    /// Encodes a version register value.
    pub const fn version(major: u16, minor: u16) -> u32 {
        ((major as u32) << 16) | minor as u32
    }

    /// Major part of a version register value.
    pub const fn version_major(value: u32) -> u16 {
        (value >> 16) as u16
    }

    /// Minor part of a version register value.
    pub const fn version_minor(value: u32) -> u16 {
        value as u16
    }
}
