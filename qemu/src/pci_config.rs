// SPDX-License-Identifier: GPL-2.0

//! Type-0 PCI configuration space of the BMGNIC function.
//!
//! vfio-user has the device supply every byte of config space, including the
//! MSI-X capability that QEMU then emulates, so the layout lives here.

use crate::regs;

/// Size of the configuration space served: a PCI Express function's 4 KiB
/// (header, capabilities, and an empty extended-capability list at 0x100).
pub const CONFIG_SIZE: usize = 4096;

const VENDOR_ID: usize = 0x00;
const DEVICE_ID: usize = 0x02;
const COMMAND: usize = 0x04;
const STATUS: usize = 0x06;
const REVISION: usize = 0x08;
const CLASS_PROG: usize = 0x09;
const HEADER_TYPE: usize = 0x0e;
const BAR0: usize = 0x10;
const SUBSYSTEM_VENDOR_ID: usize = 0x2c;
const SUBSYSTEM_ID: usize = 0x2e;
const CAPABILITIES_POINTER: usize = 0x34;
const INTERRUPT_PIN: usize = 0x3d;

const STATUS_CAP_LIST: u16 = 1 << 4;
/// Command bits the guest may set: memory space, bus master, INTx disable.
const COMMAND_WRITABLE: u16 = (1 << 1) | (1 << 2) | (1 << 10);

/// Offset of the MSI-X capability.
pub const MSIX_CAP: usize = 0x40;
const PCI_CAP_ID_MSIX: u8 = 0x11;
/// MSI-X message control bits the guest may set: enable and function mask.
const MSIX_CONTROL_WRITABLE: u16 = (1 << 15) | (1 << 14);

/// Offset of the PCI Express capability.
pub const PCIE_CAP: usize = 0x60;
const PCI_CAP_ID_EXP: u8 = 0x10;
/// Capability version 2, device/port type 0 (PCI Express endpoint).
const PCIE_FLAGS: u16 = 0x0002;
/// Device capabilities: 256-byte max payload. No function-level reset bit:
/// resets come as vfio-user device resets, which QEMU sends itself.
const PCIE_DEVCAP: u32 = 0x1;
/// Link capabilities and status: 8 GT/s (gen 3), x4.
const PCIE_LNKCAP: u32 = (4 << 4) | 0x3;
const PCIE_LNKSTA: u16 = (4 << 4) | 0x3;
/// Device control bits the guest may set (error reporting, relaxed
/// ordering, payload sizes, no-snoop); bit 15 (function-level reset, not
/// advertised) reads back as 0.
const PCIE_DEVCTL_WRITABLE: u16 = 0x7fff;

/// Number of MSI-X vectors: TX, RX and miscellaneous (link, error).
pub const MSIX_VECTORS: u16 = regs::guest::VECTORS;

/// BAR0 base-address bits the guest may write: the size is a power of two.
const BAR0_ADDRESS_MASK: u32 = !(regs::guest::BAR0_SIZE as u32 - 1);

/// The function's configuration space.
///
/// # Invariants
///
/// Read-only fields keep the values set by [`PciConfig::new`]; guest writes
/// only reach the writable bits of the command register, BAR0's address
/// bits and the MSI-X message control's enable and mask bits.
pub struct PciConfig {
    bytes: [u8; CONFIG_SIZE],
}

impl Default for PciConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl PciConfig {
    /// Builds the BMGNIC's configuration space.
    pub fn new() -> Self {
        let mut config = Self {
            bytes: [0; CONFIG_SIZE],
        };
        config.put16(VENDOR_ID, regs::PCI_VENDOR_ID);
        config.put16(DEVICE_ID, regs::PCI_DEVICE_ID);
        config.put16(STATUS, STATUS_CAP_LIST);
        config.bytes[REVISION] = regs::PCI_REVISION;
        config.bytes[CLASS_PROG] = regs::PCI_CLASS_CODE as u8;
        config.bytes[CLASS_PROG + 1] = (regs::PCI_CLASS_CODE >> 8) as u8;
        config.bytes[CLASS_PROG + 2] = (regs::PCI_CLASS_CODE >> 16) as u8;
        config.bytes[HEADER_TYPE] = 0;
        // BAR0: 32-bit, non-prefetchable memory; the low bits read as 0.
        config.put32(BAR0, 0);
        config.put16(SUBSYSTEM_VENDOR_ID, regs::PCI_VENDOR_ID);
        config.put16(SUBSYSTEM_ID, regs::PCI_DEVICE_ID);
        config.bytes[CAPABILITIES_POINTER] = MSIX_CAP as u8;
        // No INTx: MSI-X only.
        config.bytes[INTERRUPT_PIN] = 0;

        config.bytes[MSIX_CAP] = PCI_CAP_ID_MSIX;
        config.bytes[MSIX_CAP + 1] = PCIE_CAP as u8;
        config.put16(MSIX_CAP + 2, MSIX_VECTORS - 1);
        config.put32(MSIX_CAP + 4, regs::guest::MSIX_TABLE_OFFSET);
        config.put32(MSIX_CAP + 8, regs::guest::MSIX_PBA_OFFSET);

        config.bytes[PCIE_CAP] = PCI_CAP_ID_EXP;
        config.bytes[PCIE_CAP + 1] = 0;
        config.put16(PCIE_CAP + 2, PCIE_FLAGS);
        config.put32(PCIE_CAP + 4, PCIE_DEVCAP);
        config.put32(PCIE_CAP + 0x0c, PCIE_LNKCAP);
        config.put16(PCIE_CAP + 0x12, PCIE_LNKSTA);
        config
    }

    fn put16(&mut self, offset: usize, value: u16) {
        self.bytes[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
    }

    fn put32(&mut self, offset: usize, value: u32) {
        self.bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn get16(&self, offset: usize) -> u16 {
        u16::from_le_bytes([self.bytes[offset], self.bytes[offset + 1]])
    }

    fn get32(&self, offset: usize) -> u32 {
        let mut b = [0; 4];
        b.copy_from_slice(&self.bytes[offset..offset + 4]);
        u32::from_le_bytes(b)
    }

    /// Reads `data.len()` bytes at `offset`; bytes beyond the space read as 0.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .and_then(|o| self.bytes.get(o))
                .copied()
                .unwrap_or(0);
        }
    }

    /// Writes `data` at `offset`, byte by byte, keeping read-only bits.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        for (i, &byte) in data.iter().enumerate() {
            let Some(at) = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .filter(|&o| o < CONFIG_SIZE)
            else {
                return;
            };
            self.write_byte(at, byte);
        }
    }

    fn write_byte(&mut self, at: usize, byte: u8) {
        let merge = |old: u8, new: u8, writable: u8| (old & !writable) | (new & writable);
        match at {
            COMMAND | 0x05 => {
                let shift = (at - COMMAND) * 8;
                let writable = (COMMAND_WRITABLE >> shift) as u8;
                self.bytes[at] = merge(self.bytes[at], byte, writable);
            }
            0x10..=0x13 => {
                let shift = (at - BAR0) * 8;
                let writable = (BAR0_ADDRESS_MASK >> shift) as u8;
                self.bytes[at] = merge(self.bytes[at], byte, writable);
            }
            _ if at == PCIE_CAP + 8 || at == PCIE_CAP + 9 => {
                let shift = (at - PCIE_CAP - 8) * 8;
                let writable = (PCIE_DEVCTL_WRITABLE >> shift) as u8;
                self.bytes[at] = merge(self.bytes[at], byte, writable);
            }
            _ if at == MSIX_CAP + 2 || at == MSIX_CAP + 3 => {
                let shift = (at - MSIX_CAP - 2) * 8;
                let writable = (MSIX_CONTROL_WRITABLE >> shift) as u8;
                self.bytes[at] = merge(self.bytes[at], byte, writable);
            }
            _ => {}
        }
    }

    /// Whether the guest enabled memory decoding and bus mastering.
    pub fn bus_master(&self) -> bool {
        self.get16(COMMAND) & (1 << 2) != 0
    }

    /// Current BAR0 register value.
    pub fn bar0(&self) -> u32 {
        self.get32(BAR0)
    }

    /// Whether MSI-X is enabled and not masked as a whole.
    pub fn msix_enabled(&self) -> bool {
        let control = self.get16(MSIX_CAP + 2);
        control & (1 << 15) != 0 && control & (1 << 14) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read32(config: &PciConfig, offset: u64) -> u32 {
        let mut b = [0; 4];
        config.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn ids_and_class() {
        let config = PciConfig::new();
        assert_eq!(read32(&config, 0), 0x10f0_1af4);
        assert_eq!(read32(&config, 8), 0x0200_0001);
        assert_eq!(read32(&config, 0x2c), 0x10f0_1af4);
    }

    #[test]
    fn bar0_sizing_reports_16k_memory() {
        let mut config = PciConfig::new();
        config.write(0x10, &0xffff_ffffu32.to_le_bytes());
        assert_eq!(read32(&config, 0x10), 0xffff_c000);
        config.write(0x10, &0xfebf_0000u32.to_le_bytes());
        assert_eq!(config.bar0(), 0xfebf_0000);
    }

    #[test]
    fn msix_capability_layout() {
        let mut config = PciConfig::new();
        assert_eq!(read32(&config, 0x34) & 0xff, 0x40);
        assert_eq!(read32(&config, 0x40), 0x0002_6011);
        assert_eq!(read32(&config, 0x44), 0x2000);
        assert_eq!(read32(&config, 0x48), 0x3000);
        assert!(!config.msix_enabled());
        config.write(0x42, &0x8000u16.to_le_bytes());
        assert!(config.msix_enabled());
        // Table size is read-only.
        assert_eq!(read32(&config, 0x40), 0x8002_6011);
    }

    #[test]
    fn pcie_capability_follows_msix() {
        let mut config = PciConfig::new();
        assert_eq!(
            read32(&config, 0x40) >> 8 & 0xff,
            0x60,
            "MSI-X next pointer"
        );
        assert_eq!(read32(&config, 0x60), 0x0002_0010, "PCIe v2 endpoint");
        assert_eq!(read32(&config, 0x64), 0x0000_0001, "256-byte payload");
        assert_eq!(read32(&config, 0x70) >> 16, 0x43, "link up at gen 3 x4");
        assert_eq!(read32(&config, 0x100), 0, "no extended capabilities");
        config.write(0x68, &0xffffu16.to_le_bytes());
        assert_eq!(read32(&config, 0x68) & 0xffff, 0x7fff, "bit 15 reads as 0");
    }

    #[test]
    fn read_only_fields_ignore_writes() {
        let mut config = PciConfig::new();
        config.write(0, &[0; 16]);
        assert_eq!(read32(&config, 0), 0x10f0_1af4);
        config.write(4, &0xffffu16.to_le_bytes());
        assert_eq!(read32(&config, 4) & 0xffff, 0x0406);
        let mut tail = [0xaa; 8];
        config.read(4092, &mut tail);
        assert_eq!(tail, [0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
