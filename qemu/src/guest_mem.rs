// SPDX-License-Identifier: GPL-2.0

//! DMA into guest memory.
//!
//! QEMU's `DMA_MAP` messages pass a file descriptor (the memfd behind the
//! VM's RAM) with the IOVA range it backs. The model maps those files and
//! reaches guest memory only through [`GuestMemory`], which checks every
//! access against the mapped ranges: an address the guest made up gets an
//! error, never a touch of memory outside the mappings. Accesses copy with
//! volatile semantics (the guest writes the same memory concurrently), as
//! rust-vmm's `vm-memory` does for every VMM built on it.

use std::fs::File;
use std::io;
use std::sync::Arc;

use vm_memory::{
    Bytes, FileOffset, GuestAddress, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap,
    MmapRegion,
};

/// Why a DMA access failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaError {
    /// Some byte of `[addr, addr + len)` is not mapped.
    OutOfRange {
        /// Start of the access.
        addr: u64,
        /// Length of the access.
        len: usize,
    },
}

impl std::fmt::Display for DmaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DmaError::OutOfRange { addr, len } => {
                write!(f, "DMA [{addr:#x}, +{len:#x}) outside guest memory")
            }
        }
    }
}

struct Mapping {
    iova: u64,
    size: u64,
    region: Arc<GuestRegionMmap>,
}

/// The guest memory the device may access.
#[derive(Default)]
pub struct GuestMemory {
    mappings: Vec<Mapping>,
    memory: Option<GuestMemoryMmap>,
}

impl GuestMemory {
    /// No memory mapped yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn rebuild(&mut self) -> io::Result<()> {
        let mut regions: Vec<Arc<GuestRegionMmap>> = self
            .mappings
            .iter()
            .map(|m| Arc::clone(&m.region))
            .collect();
        regions.sort_by_key(|r| r.start_addr());
        self.memory = if regions.is_empty() {
            None
        } else {
            Some(
                GuestMemoryMmap::from_arc_regions(regions)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?,
            )
        };
        Ok(())
    }

    /// Maps `[iova, iova + size)` to `file` at `offset`.
    pub fn map(&mut self, iova: u64, size: u64, offset: u64, file: File) -> io::Result<()> {
        let len = usize::try_from(size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "DMA region too large"))?;
        if size == 0 || iova.checked_add(size).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty or wrapping DMA region",
            ));
        }
        let overlaps = self
            .mappings
            .iter()
            .any(|m| iova < m.iova + m.size && m.iova < iova + size);
        if overlaps {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "DMA region overlaps a mapped one",
            ));
        }
        let mmap = MmapRegion::from_file(FileOffset::new(file, offset), len)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let region = GuestRegionMmap::new(mmap, GuestAddress(iova))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "DMA region wraps"))?;
        self.mappings.push(Mapping {
            iova,
            size,
            region: Arc::new(region),
        });
        if let Err(e) = self.rebuild() {
            self.mappings.pop();
            return Err(e);
        }
        Ok(())
    }

    /// Unmaps the region that starts at `iova` with `size`.
    pub fn unmap(&mut self, iova: u64, size: u64) -> io::Result<()> {
        let before = self.mappings.len();
        self.mappings
            .retain(|m| !(m.iova == iova && m.size == size));
        if self.mappings.len() == before {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no such DMA region",
            ));
        }
        self.rebuild()
    }

    /// Unmaps everything (the client went away).
    pub fn clear(&mut self) {
        self.mappings.clear();
        self.memory = None;
    }

    /// Whether `[addr, addr + len)` is entirely mapped.
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        // Mappings never overlap, so walking them in address order and
        // requiring contiguity covers ranges that span several.
        let mut at = addr;
        let mut sorted: Vec<(u64, u64)> = self.mappings.iter().map(|m| (m.iova, m.size)).collect();
        sorted.sort_unstable();
        for (start, size) in sorted {
            if at >= end {
                break;
            }
            if start <= at && at < start + size {
                at = start + size;
            }
        }
        at >= end
    }

    /// Copies guest memory at `addr` into `buf`.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let err = DmaError::OutOfRange {
            addr,
            len: buf.len(),
        };
        if buf.is_empty() {
            return Ok(());
        }
        let mem = self.memory.as_ref().ok_or(err)?;
        mem.read_slice(buf, GuestAddress(addr)).map_err(|_| err)
    }

    /// Copies `buf` into guest memory at `addr`.
    pub fn write(&self, addr: u64, buf: &[u8]) -> Result<(), DmaError> {
        let err = DmaError::OutOfRange {
            addr,
            len: buf.len(),
        };
        if buf.is_empty() {
            return Ok(());
        }
        let mem = self.memory.as_ref().ok_or(err)?;
        mem.write_slice(buf, GuestAddress(addr)).map_err(|_| err)
    }

    /// Reads a little-endian `u32` at `addr`.
    pub fn read_u32(&self, addr: u64) -> Result<u32, DmaError> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Writes a little-endian `u32` at `addr`.
    pub fn write_u32(&self, addr: u64, value: u32) -> Result<(), DmaError> {
        self.write(addr, &value.to_le_bytes())
    }
}

/// A file of `size` bytes standing in for guest RAM in tests (QEMU passes
/// a memfd; the model maps either the same way).
#[cfg(test)]
pub(crate) fn test_memfd(size: u64) -> File {
    let file = tempfile_in_memory();
    file.set_len(size).expect("set_len");
    file
}

#[cfg(test)]
fn tempfile_in_memory() -> File {
    let path = std::env::temp_dir().join(format!(
        "bmgnic-mem-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("temp file");
    let _ = std::fs::remove_file(&path);
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_inside_mapped_regions() {
        let mut mem = GuestMemory::new();
        mem.map(0x1000, 0x2000, 0, test_memfd(0x2000)).unwrap();
        mem.write(0x1ffe, &[1, 2, 3, 4]).unwrap();
        let mut b = [0u8; 4];
        mem.read(0x1ffe, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4]);
        assert!(mem.contains(0x1000, 0x2000));
        assert!(!mem.contains(0x1000, 0x2001));
    }

    #[test]
    fn accesses_outside_mappings_fail_without_touching_memory() {
        let mut mem = GuestMemory::new();
        let mut b = [0u8; 8];
        assert!(mem.read(0, &mut b).is_err(), "nothing mapped yet");
        mem.map(0x1000, 0x1000, 0, test_memfd(0x1000)).unwrap();
        assert!(mem.read(0x0ffc, &mut b).is_err(), "starts before");
        assert!(mem.read(0x1ffc, &mut b).is_err(), "ends after");
        assert!(mem.write(u64::MAX - 3, &b).is_err(), "wraps");
        assert!(!mem.contains(u64::MAX, 2));
    }

    #[test]
    fn accesses_may_span_adjacent_regions_but_not_gaps() {
        let mut mem = GuestMemory::new();
        mem.map(0x0, 0x1000, 0, test_memfd(0x1000)).unwrap();
        mem.map(0x1000, 0x1000, 0, test_memfd(0x1000)).unwrap();
        mem.map(0x3000, 0x1000, 0, test_memfd(0x1000)).unwrap();
        mem.write(0xffe, &[9; 4]).unwrap();
        assert!(mem.contains(0x800, 0x1000));
        assert!(mem.write(0x1ffe, &[9; 4]).is_err());
        assert!(!mem.contains(0x1800, 0x1000));
        mem.unmap(0x1000, 0x1000).unwrap();
        assert!(mem.write(0xffe, &[9; 4]).is_err());
        assert!(mem.unmap(0x1000, 0x1000).is_err());
    }

    #[test]
    fn overlapping_and_empty_maps_are_refused() {
        let mut mem = GuestMemory::new();
        mem.map(0x1000, 0x1000, 0, test_memfd(0x1000)).unwrap();
        assert!(mem.map(0x1800, 0x1000, 0, test_memfd(0x1000)).is_err());
        assert!(mem.map(0x4000, 0, 0, test_memfd(0x1000)).is_err());
        assert!(mem
            .map(u64::MAX - 0xfff, 0x2000, 0, test_memfd(0x2000))
            .is_err());
    }
}
