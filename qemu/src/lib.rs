// SPDX-License-Identifier: GPL-2.0

//! The emulated BMGNIC: a PCIe NIC whose guest bank is BAR0 and whose RME
//! bank is reachable only over NC-SI, served to QEMU over vfio-user.

// The wire formats, shared with the tenant driver and the RME module.
pub use bmgnic_wire::{ncsi_oem, regs};

pub mod device;
pub mod engine;
pub mod flow;
pub mod guest_mem;
pub mod meter;
pub mod ncsi;
pub mod offload;
pub mod packet;
pub mod pci_config;
pub mod pipeline;
pub mod platform;
pub mod port;
pub mod rme;
pub mod vfio;
pub mod vxlan;
