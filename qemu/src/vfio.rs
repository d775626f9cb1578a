// SPDX-License-Identifier: GPL-2.0

//! vfio-user transport: serves a [`PciFunction`] to QEMU's `vfio-user-pci`.
//!
//! The rust-vmm `vfio_user` crate does the protocol; it stays behind
//! [`PciFunction`] so that the device never depends on it and the transport
//! can be replaced (for example by one event loop that also serves the
//! packet ports).

use std::fs::File;
use std::io;
use std::mem::size_of;
use std::path::Path;

use log::{info, warn};
use vfio_bindings::bindings::vfio::{
    vfio_region_info, VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_SET_ACTION_TRIGGER,
    VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_BAR0_REGION_INDEX,
    VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_NUM_IRQS, VFIO_PCI_NUM_REGIONS,
    VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};
use vfio_user::{DmaMapFlags, DmaUnmapFlags, IrqInfo, Server, ServerBackend, ServerRegion};

use crate::pci_config::{CONFIG_SIZE, MSIX_VECTORS};
use crate::regs;

/// A PCI function as seen by a transport: config space, BARs, DMA, IRQs.
pub trait PciFunction {
    /// Reads config space at `offset`.
    fn config_read(&mut self, offset: u64, data: &mut [u8]);
    /// Writes config space at `offset`.
    fn config_write(&mut self, offset: u64, data: &[u8]);
    /// Reads BAR `bar` at `offset`.
    fn bar_read(&mut self, bar: u32, offset: u64, data: &mut [u8]) -> io::Result<()>;
    /// Writes BAR `bar` at `offset`.
    fn bar_write(&mut self, bar: u32, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Makes guest memory `[iova, iova + size)` available for DMA.
    fn dma_map(&mut self, iova: u64, size: u64, offset: u64, fd: Option<File>) -> io::Result<()>;
    /// Removes a DMA mapping.
    fn dma_unmap(&mut self, iova: u64, size: u64) -> io::Result<()>;
    /// Sets the eventfds of MSI-X vectors `start..start + fds.len()`; an
    /// empty `fds` with `start == 0` disables them all.
    fn set_msix(&mut self, start: u32, fds: Vec<File>) -> io::Result<()>;
    /// Function-level reset.
    fn reset(&mut self);
    /// The host went away (its client disconnected): forget its memory
    /// and interrupt routes and return to the power-on state of the host
    /// side.
    fn host_power_lost(&mut self);
}

/// EINVAL, the error the vfio-user protocol expects for bad requests.
pub fn einval() -> io::Error {
    io::Error::from_raw_os_error(22)
}

/// Adapts a [`PciFunction`] to the `vfio_user` crate's server.
struct Backend<'a> {
    function: &'a mut dyn PciFunction,
}

impl ServerBackend for Backend<'_> {
    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> io::Result<()> {
        match region {
            VFIO_PCI_CONFIG_REGION_INDEX => {
                self.function.config_read(offset, data);
                Ok(())
            }
            VFIO_PCI_BAR0_REGION_INDEX => self.function.bar_read(0, offset, data),
            _ => Err(einval()),
        }
    }

    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> io::Result<()> {
        match region {
            VFIO_PCI_CONFIG_REGION_INDEX => {
                self.function.config_write(offset, data);
                Ok(())
            }
            VFIO_PCI_BAR0_REGION_INDEX => self.function.bar_write(0, offset, data),
            _ => Err(einval()),
        }
    }

    fn dma_map(
        &mut self,
        _flags: DmaMapFlags,
        offset: u64,
        address: u64,
        size: u64,
        fd: Option<File>,
    ) -> io::Result<()> {
        self.function.dma_map(address, size, offset, fd)
    }

    fn dma_unmap(&mut self, _flags: DmaUnmapFlags, address: u64, size: u64) -> io::Result<()> {
        self.function.dma_unmap(address, size)
    }

    fn reset(&mut self) -> io::Result<()> {
        self.function.reset();
        Ok(())
    }

    fn set_irqs(
        &mut self,
        index: u32,
        flags: u32,
        start: u32,
        count: u32,
        fds: Vec<File>,
    ) -> io::Result<()> {
        if index != VFIO_PCI_MSIX_IRQ_INDEX {
            warn!("set_irqs on unsupported index {index}");
            return Err(einval());
        }
        if flags & VFIO_IRQ_SET_DATA_NONE != 0 && count == 0 {
            return self.function.set_msix(start, Vec::new());
        }
        if flags & VFIO_IRQ_SET_ACTION_TRIGGER != 0 && flags & VFIO_IRQ_SET_DATA_EVENTFD != 0 {
            if fds.len() != count as usize {
                return Err(einval());
            }
            return self.function.set_msix(start, fds);
        }
        // Masking and other actions are emulated by QEMU.
        Ok(())
    }
}

fn regions() -> Vec<ServerRegion> {
    (0..VFIO_PCI_NUM_REGIONS)
        .map(|index| {
            let size = match index {
                VFIO_PCI_CONFIG_REGION_INDEX => CONFIG_SIZE as u64,
                VFIO_PCI_BAR0_REGION_INDEX => regs::guest::BAR0_SIZE as u64,
                _ => 0,
            };
            let flags = if size != 0 {
                VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE
            } else {
                0
            };
            ServerRegion {
                region_info: vfio_region_info {
                    argsz: size_of::<vfio_region_info>() as u32,
                    index,
                    size,
                    flags,
                    ..Default::default()
                },
                sparse_areas: Vec::new(),
                mmap_fd: None,
            }
        })
        .collect()
}

fn irqs() -> Vec<IrqInfo> {
    (0..VFIO_PCI_NUM_IRQS)
        .map(|index| {
            if index == VFIO_PCI_MSIX_IRQ_INDEX {
                IrqInfo {
                    index,
                    count: u32::from(MSIX_VECTORS),
                    flags: VFIO_IRQ_INFO_EVENTFD,
                }
            } else {
                IrqInfo {
                    index,
                    count: 0,
                    flags: 0,
                }
            }
        })
        .collect()
}

/// Listens on `socket` and serves one client until it disconnects; then,
/// while `next_client` says so (it is called after each disconnect, and
/// may reset the function), the next one.
pub fn serve(
    socket: &Path,
    function: &mut dyn PciFunction,
    mut next_client: impl FnMut(&mut dyn PciFunction) -> bool,
) -> Result<(), String> {
    let server = Server::new(socket, true, irqs(), regions())
        .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    info!("vfio-user: listening on {}", socket.display());
    loop {
        let result = server
            .run(&mut Backend {
                function: &mut *function,
            })
            .map_err(|e| format!("vfio-user connection failed: {e}"));
        info!("vfio-user: client disconnected");
        if !next_client(&mut *function) {
            return result;
        }
        if let Err(e) = result {
            warn!("{e}");
        }
        info!("vfio-user: waiting for the next client");
    }
}
