// SPDX-License-Identifier: GPL-2.0

//! The BMGNIC function: its guest bank (BAR0) and device state.

use crate::regs::guest;
use log::{debug, info};

/// The emulated NIC.
///
/// # Invariants
///
/// Nothing reachable from PCIe (BAR0 accesses here, config space in
/// [`crate::pci_config`]) changes RME-bank state; rejected guest writes only
/// increment [`Bmgnic::guest_ro_writes`].
#[derive(Debug, Default)]
pub struct Bmgnic {
    /// Guest writes to read-only guest-bank registers (RME-visible).
    guest_ro_writes: u64,
}

impl Bmgnic {
    /// Creates the device in its power-on state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of guest writes that hit read-only or unassigned registers.
    pub fn guest_ro_writes(&self) -> u64 {
        self.guest_ro_writes
    }

    /// Resets guest-visible state (function-level reset).
    pub fn reset(&mut self) {
        info!("device reset");
    }

    fn read_reg32(&self, offset: usize) -> u32 {
        match offset {
            guest::ID => guest::ID_MAGIC,
            guest::VERSION => guest::version(guest::VERSION_MAJOR, guest::VERSION_MINOR),
            _ => 0,
        }
    }

    /// Serves a BAR0 read of 1, 2, 4 or 8 bytes; unassigned space reads 0.
    pub fn bar0_read(&mut self, offset: u64, data: &mut [u8]) {
        for (i, byte) in data.iter_mut().enumerate() {
            let at = offset.saturating_add(i as u64);
            *byte = match usize::try_from(at) {
                Ok(at) if at < guest::REGS_END => {
                    let word = self.read_reg32(at & !3);
                    word.to_le_bytes()[at & 3]
                }
                _ => 0,
            };
        }
        debug!("bar0 read {offset:#x} len {}", data.len());
    }

    /// Serves a BAR0 write. Every register so far is read-only: the write
    /// changes nothing and is counted.
    pub fn bar0_write(&mut self, offset: u64, data: &[u8]) {
        debug!("bar0 write {offset:#x} len {} (read-only)", data.len());
        self.guest_ro_writes = self.guest_ro_writes.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read32(dev: &mut Bmgnic, offset: u64) -> u32 {
        let mut b = [0; 4];
        dev.bar0_read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn id_and_version() {
        let mut dev = Bmgnic::new();
        assert_eq!(read32(&mut dev, guest::ID as u64), 0x424d_474e);
        assert_eq!(read32(&mut dev, guest::VERSION as u64), 0x0000_0001);
        let mut b = [0; 2];
        dev.bar0_read(guest::ID as u64 + 2, &mut b);
        assert_eq!(b, [0x4d, 0x42]);
    }

    #[test]
    fn writes_to_read_only_registers_change_nothing_and_are_counted() {
        let mut dev = Bmgnic::new();
        dev.bar0_write(guest::ID as u64, &0u32.to_le_bytes());
        dev.bar0_write(guest::VERSION as u64, &0xffff_ffffu32.to_le_bytes());
        assert_eq!(read32(&mut dev, guest::ID as u64), guest::ID_MAGIC);
        assert_eq!(dev.guest_ro_writes(), 2);
    }

    #[test]
    fn out_of_range_reads_are_zero() {
        let mut dev = Bmgnic::new();
        assert_eq!(read32(&mut dev, 0x3ffc), 0);
        assert_eq!(read32(&mut dev, u64::MAX - 1), 0);
    }
}
