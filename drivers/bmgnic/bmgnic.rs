// SPDX-License-Identifier: GPL-2.0

//! BMGNIC tenant driver.
//!
//! The BMGNIC is the NIC of a bare-metal cloud server: the tenant reaches
//! only its guest register bank in BAR0, while the cloud's remote management
//! engine configures isolation over NC-SI. This driver binds to the PCI
//! function, maps BAR0 (the guest block only: the MSI-X table above it
//! belongs to the PCI core), checks the register map it speaks and
//! registers an Ethernet interface (see `nic.rs`).
//!
//! Across a system sleep the interface is detached and its datapath
//! stopped; on the way back the device is identified again and programmed
//! from scratch, as after a hibernation restore it may be another BMGNIC
//! (the guest restored on another server).

use kernel::{
    device::Core,
    io::Io,
    net::netdev::{self, NapiIrqs},
    pci,
    prelude::*,
};

mod bar0;
mod nic;
#[path = "../../wire/src/regs.rs"]
mod regs;
mod ring;

use nic::Nic;
use regs::guest;

/// Per-device state.
struct BmgnicData<'bound> {
    pdev: &'bound pci::Device,
    netdev: netdev::Registration<'bound, Nic>,
}

/// The MAC address from `MAC_LO`/`MAC_HI` (little-endian, as the device
/// lays it out).
fn mac_from_regs(lo: u32, hi: u32) -> [u8; 6] {
    let [a, b, c, d] = lo.to_le_bytes();
    let [e, f, _, _] = hi.to_le_bytes();
    [a, b, c, d, e, f]
}

/// The MAC address the RME assigned, from the device.
fn read_mac(bar: &pci::Bar<'_, { guest::REGS_END }>) -> [u8; 6] {
    mac_from_regs(
        bar.read(bar0::MAC_LO).into_raw(),
        bar.read(bar0::MAC_HI).into_raw(),
    )
}

struct BmgnicDriver;

kernel::pci_device_table!(
    PCI_TABLE,
    <BmgnicDriver as pci::Driver>::IdInfo,
    [(
        pci::DeviceId::from_id(pci::Vendor::REDHAT_QUMRANET, regs::PCI_DEVICE_ID as u32),
        ()
    )]
);

/// Checks the ID and version registers; returns the version.
fn check_id(id: u32, version: u32) -> Result<u32> {
    if id != guest::ID_MAGIC {
        return Err(ENODEV);
    }
    if guest::version_major(version) != guest::VERSION_MAJOR {
        return Err(ENOTSUPP);
    }
    Ok(version)
}

/// Reads and checks the device's ID and version, logging a device this
/// driver cannot drive; returns the version.
fn identify(pdev: &pci::Device<Core<'_>>, bar: &pci::Bar<'_, { guest::REGS_END }>) -> Result<u32> {
    let id = bar.read(bar0::ID);
    let version = bar.read(bar0::VERSION);
    check_id(id.into_raw(), version.into_raw()).inspect_err(|_| {
        dev_err!(
            pdev,
            "unsupported device: ID {:#010x}, version {}.{} (driver speaks {}.x)\n",
            id.magic().get(),
            version.major().get(),
            version.minor().get(),
            guest::VERSION_MAJOR
        );
    })
}

/// The transmit offloads to offer for the device's features. The device
/// gathers a frame from several descriptors, so fragments are always
/// fine; segmentation needs the checksum too (the stack would drop it).
fn offloads(features: bar0::FEATURES) -> netdev::Offloads {
    let mut offloads = netdev::Offloads::SG;
    if features.tx_csum() {
        offloads = offloads.with(netdev::Offloads::IP_CSUM);
        if features.tso() {
            offloads = offloads.with(netdev::Offloads::TSO);
        }
    }
    offloads
}

impl pci::Driver for BmgnicDriver {
    type IdInfo = ();
    type Data<'bound> = BmgnicData<'bound>;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;
    const SLEEP_OPS: Option<pci::SleepOps<Self>> = Some(pci::SleepOps::new());

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pdev.enable_device_mem()?;
        let bar = pdev.iomap_region_sized::<{ guest::REGS_END }>(0, c"bmgnic")?;

        let version = identify(pdev, &bar)?;
        dev_info!(
            pdev,
            "BMGNIC ID {:#010x}, register map v{}.{}\n",
            guest::ID_MAGIC,
            guest::version_major(version),
            guest::version_minor(version)
        );

        // Start from a known state whatever a previous driver left.
        bar.write_reg(bar0::CONTROL::zeroed().with_reset(true));
        let mac = read_mac(&bar);
        let mtu_cap = bar.read(bar0::MTU_CAP).bytes().get();
        let offloads = offloads(bar.read(bar0::FEATURES));

        // One vector per cause (TX, RX, misc) with MSI-X; with MSI, one
        // vector serves all three.
        let msi = pci::IrqTypes::default()
            .with(pci::IrqType::MsiX)
            .with(pci::IrqType::Msi);
        // The device masters the bus for its rings and buffers.
        pdev.set_master();
        let vectors = pdev.alloc_irq_vectors(1, u32::from(guest::VECTORS), msi)?;
        let kind = match vectors.irq_type() {
            pci::IrqType::MsiX => "MSI-X",
            pci::IrqType::Msi => "MSI",
            pci::IrqType::Intx => "INTx",
        };
        dev_info!(
            pdev,
            "MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, MTU cap {}, {} {} vectors\n",
            mac[0],
            mac[1],
            mac[2],
            mac[3],
            mac[4],
            mac[5],
            mtu_cap,
            vectors.len(),
            kind
        );

        let mtu = 1500.min(mtu_cap);
        let config = netdev::Config {
            mac,
            mtu,
            min_mtu: guest::MTU_MIN,
            max_mtu: mtu_cap.clamp(guest::MTU_MIN, guest::MTU_MAX),
            offloads,
        };
        let irqs = NapiIrqs {
            vectors,
            name: c"bmgnic",
        };
        let netdev = netdev::Registration::new(
            pdev.as_ref(),
            &config,
            Nic::new(bar.into_devres()?, mtu),
            Some(irqs),
        )?;
        Ok(BmgnicData { pdev, netdev })
    }
}

impl pci::Sleep for BmgnicDriver {
    fn suspend<'bound>(
        _pdev: &'bound pci::Device<Core<'_>>,
        this: Pin<&Self::Data<'bound>>,
    ) -> Result {
        // A running interface is stopped as by a close: the device is reset
        // and its rings freed, so it does no DMA while the system sleeps.
        this.netdev.suspend();
        Ok(())
    }

    fn resume<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        this: Pin<&Self::Data<'bound>>,
    ) -> Result {
        let nic = this.netdev.device();
        let bar = nic.data().bar().access(pdev.as_ref())?;
        // Nothing is assumed to have survived in the device: it may be a
        // new one, which must still speak this register map.
        identify(pdev, bar)?;
        // The cloud gives a moved guest's NIC the same MAC before the guest
        // resumes; if it did not, say so, as the NIC drops frames from any
        // other source address.
        let mac = read_mac(bar);
        if mac != nic.mac() {
            dev_warn!(
                pdev,
                "the device's MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} is not the interface's\n",
                mac[0],
                mac[1],
                mac[2],
                mac[3],
                mac[4],
                mac[5]
            );
        }
        // Reopening a running interface resets the device and programs its
        // rings, MTU and moderation again (`Nic::open`).
        this.netdev.resume()
    }
}

impl Drop for BmgnicData<'_> {
    fn drop(&mut self) {
        dev_info!(self.pdev, "removed\n");
    }
}

kernel::module_pci_driver! {
    type: BmgnicDriver,
    name: "bmgnic",
    authors: ["bmgnic developers"],
    description: "BMGNIC bare-metal guest NIC driver",
    license: "GPL v2",
}

#[kunit_tests(bmgnic)]
mod tests {
    use super::*;

    #[test]
    fn id_magic_spells_bmgn() {
        assert_eq!(&guest::ID_MAGIC.to_be_bytes(), b"BMGN");
    }

    #[test]
    fn version_fields_round_trip() {
        let v = guest::version(3, 0x1234);
        assert_eq!(guest::version_major(v), 3);
        assert_eq!(guest::version_minor(v), 0x1234);
    }

    #[test]
    fn probe_accepts_only_our_id_and_major() {
        let current = guest::version(guest::VERSION_MAJOR, guest::VERSION_MINOR);
        assert_eq!(check_id(guest::ID_MAGIC, current), Ok(current));
        let newer_minor = guest::version(guest::VERSION_MAJOR, guest::VERSION_MINOR + 1);
        assert_eq!(check_id(guest::ID_MAGIC, newer_minor), Ok(newer_minor));
        let other_major = guest::version(guest::VERSION_MAJOR + 1, 0);
        assert_eq!(check_id(guest::ID_MAGIC, other_major), Err(ENOTSUPP));
        assert_eq!(check_id(0xffff_ffff, current), Err(ENODEV));
    }

    #[test]
    fn mac_is_read_in_wire_order() {
        assert_eq!(
            mac_from_regs(0xb000_5452, 0x0000_0100),
            [0x52, 0x54, 0x00, 0xb0, 0x00, 0x01]
        );
    }

    #[test]
    fn device_table_matches_shared_register_map() {
        assert_eq!(pci::Vendor::REDHAT_QUMRANET.as_raw(), regs::PCI_VENDOR_ID);
        // The MSI-X structures sit above the block the driver maps.
        assert!(guest::REGS_END <= guest::MSIX_TABLE_OFFSET as usize);
        assert!(guest::MSIX_PBA_OFFSET as usize <= guest::BAR0_SIZE);
    }
}
