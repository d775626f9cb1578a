// SPDX-License-Identifier: GPL-2.0

//! Drives the model over all three of its interfaces at once, as the rack
//! does but with no VM: vfio-user (as QEMU would, with guest RAM in a
//! memfd-like file and MSI-X eventfds), the NC-SI port (as the RME would)
//! and the fabric port (as a peer VTEP would).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use bmgnic_model::ncsi::{command_frame, oem_command_payload, parse_received};
use bmgnic_model::ncsi_oem::{
    self as oem, FlowKey, FlowRecord, IdentityRecord, PortCountersRecord, Record, TenantRecord,
    VtepRecord,
};
use bmgnic_model::regs::{desc, guest};
use bmgnic_wire::ncsi::{AEN_PACKET_TYPE, RESPONSE_BIT};
use vfio_bindings::bindings::vfio::{
    VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_PCI_BAR0_REGION_INDEX,
    VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_MSIX_IRQ_INDEX,
};
use vfio_user::Client;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MEM_SIZE: u64 = 0x40_0000;
const TX_RING: u64 = 0x1_0000;
const RX_RING: u64 = 0x2_0000;
const STATUS_BLOCK: u64 = 0x3_0000;
const TX_BUF: u64 = 0x10_0000;
const RX_BUF: u64 = 0x20_0000;
const RING: u32 = 64;

const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0, 1];
const GUEST_IP: [u8; 4] = [10, 1, 0, 1];
const PEER_IP: [u8; 4] = [10, 1, 0, 2];
const LOCAL_VTEP: ([u8; 6], [u8; 4]) = ([2, 0, 0, 0, 0, 1], [192, 168, 1, 1]);
const REMOTE_VTEP: ([u8; 6], [u8; 4]) = ([2, 0, 0, 0, 0, 2], [192, 168, 1, 2]);
const VNI: u32 = 4242;

struct Rack {
    child: Child,
    dir: PathBuf,
    client: Client,
    mem: File,
    fabric: UnixDatagram,
    fabric_model: PathBuf,
    ncsi: UnixDatagram,
    ncsi_model: PathBuf,
    iid: u8,
}

impl Drop for Rack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Rack {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("bmgnic-rack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("vfio");
        let (fabric_model, fabric_peer) = (dir.join("fab.model"), dir.join("fab.peer"));
        let (ncsi_model, ncsi_rme) = (dir.join("ncsi.model"), dir.join("ncsi.rme"));
        let fabric = UnixDatagram::bind(&fabric_peer).unwrap();
        let ncsi = UnixDatagram::bind(&ncsi_rme).unwrap();
        for s in [&fabric, &ncsi] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        let child = Command::new(env!("CARGO_BIN_EXE_bmgnic-model"))
            .arg("--socket")
            .arg(&socket)
            .arg(format!(
                "--fabric=local={},remote={}",
                fabric_model.display(),
                fabric_peer.display()
            ))
            .arg(format!(
                "--ncsi=local={},remote={}",
                ncsi_model.display(),
                ncsi_rme.display()
            ))
            .arg("--mac=52:54:00:aa:00:01")
            .arg("--log-level=warn")
            .spawn()
            .unwrap();
        wait_for(&socket);
        wait_for(&ncsi_model);
        let client = Client::new(&socket).unwrap();
        let mem = tempfile(&dir, MEM_SIZE);
        Rack {
            child,
            dir,
            client,
            mem,
            fabric,
            fabric_model,
            ncsi,
            ncsi_model,
            iid: 0,
        }
    }

    fn write_reg(&mut self, reg: usize, value: u32) {
        self.client
            .region_write(VFIO_PCI_BAR0_REGION_INDEX, reg as u64, &value.to_le_bytes())
            .unwrap();
    }

    /// Sets Memory Space and Bus Master Enable in the command register, as
    /// `pci_enable_device()` and `pci_set_master()` do.
    fn enable_bus_master(&mut self) {
        self.client
            .region_write(VFIO_PCI_CONFIG_REGION_INDEX, 4, &[0x06, 0x00])
            .unwrap();
    }

    fn read_reg(&mut self, reg: usize) -> u32 {
        let mut b = [0u8; 4];
        self.client
            .region_read(VFIO_PCI_BAR0_REGION_INDEX, reg as u64, &mut b)
            .unwrap();
        u32::from_le_bytes(b)
    }

    fn read_stat(&mut self, stat: guest::Stat) -> u64 {
        let mut b = [0u8; 8];
        self.client
            .region_read(
                VFIO_PCI_BAR0_REGION_INDEX,
                guest::stat_offset(stat) as u64,
                &mut b,
            )
            .unwrap();
        u64::from_le_bytes(b)
    }

    /// Sends an NC-SI command and returns the response payload.
    fn ncsi(&mut self, kind: u8, payload: &[u8]) -> Vec<u8> {
        self.iid = self.iid.wrapping_add(1).max(1);
        let f = command_frame([0x02, 0, 0, 0, 0, 0x99], self.iid, kind, 0, payload);
        self.ncsi.send_to(&f, &self.ncsi_model).unwrap();
        loop {
            let mut buf = [0u8; 2048];
            let n = self.ncsi.recv(&mut buf).expect("NC-SI response");
            // Skip AENs; take the response to this IID.
            let r = parse_received(&buf[..n]).expect("an NC-SI packet");
            if r.kind == kind | RESPONSE_BIT && r.iid == self.iid {
                return r.payload.to_vec();
            }
        }
    }

    /// Sends a BMGNIC OEM command; returns (reason code, records).
    fn oem(&mut self, op: u8, object: u8, count: u8, records: &[u8]) -> (u16, Vec<u8>) {
        let p = oem_command_payload(op, object, count, records);
        let r = self.ncsi(oem::CMD_OEM, &p);
        let reason = u16::from_be_bytes([r[2], r[3]]);
        (
            reason,
            r.get(oem::RESPONSE_PREFIX..).unwrap_or_default().to_vec(),
        )
    }

    /// Waits for the next AEN and returns its payload.
    fn aen(&mut self) -> Vec<u8> {
        loop {
            let mut buf = [0u8; 2048];
            let n = self.ncsi.recv(&mut buf).expect("an AEN");
            let r = parse_received(&buf[..n]).expect("an NC-SI packet");
            if r.kind == AEN_PACKET_TYPE {
                return r.payload.to_vec();
            }
        }
    }

    fn set<R: Record>(&mut self, object: u8, r: &R) {
        let mut b = vec![0u8; R::LEN];
        r.encode(&mut b);
        let (reason, _) = self.oem(oem::OP_SET, object, 1, &b);
        assert_eq!(reason, 0, "OEM SET of object {object} refused");
    }
}

fn tempfile(dir: &Path, size: u64) -> File {
    let path = dir.join("guest-ram");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    f.set_len(size).unwrap();
    f
}

fn udp_frame(dport: u16, payload: usize) -> Vec<u8> {
    let mut f = vec![0x52, 0x54, 0, 0xaa, 0, 2];
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
    f.extend_from_slice(&((28 + payload) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&GUEST_IP);
    f.extend_from_slice(&PEER_IP);
    f.extend_from_slice(&50000u16.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.resize(f.len() + payload, 0x5a);
    f
}

#[test]
fn rme_configures_over_ncsi_guest_traffic_leaves_as_vxlan_and_returns() {
    let mut rack = Rack::start();

    // The RME: bring the channel up, then configure the tenant.
    assert_eq!(
        rack.ncsi(0x00, &[])[..4],
        [0, 0, 0, 0],
        "Clear Initial State"
    );
    let mut id = IdentityRecord {
        mac: GUEST_MAC,
        mtu_cap: 9000,
        ipv4_count: 1,
        ..IdentityRecord::default()
    };
    id.ipv4[0] = GUEST_IP;
    rack.set(oem::OBJ_IDENTITY, &id);
    rack.set(
        oem::OBJ_TENANT,
        &TenantRecord {
            vni: VNI,
            local_mac: LOCAL_VTEP.0,
            local_ip: LOCAL_VTEP.1,
        },
    );
    rack.set(
        oem::OBJ_VTEP,
        &VtepRecord {
            index: 0,
            mac: REMOTE_VTEP.0,
            ip: REMOTE_VTEP.1,
        },
    );
    let mut key = FlowKey {
        ethertype: 0x0800,
        ..FlowKey::default()
    };
    key.ip_dst[..4].copy_from_slice(&PEER_IP);
    let mut mask = FlowKey {
        in_port: 0xff,
        ethertype: 0xffff,
        ..FlowKey::default()
    };
    mask.ip_dst[..4].copy_from_slice(&[255; 4]);
    rack.set(
        oem::OBJ_FLOW,
        &FlowRecord {
            slot: 7,
            priority: 1,
            action: oem::ACTION_ENCAP,
            meter: oem::NO_METER,
            vtep: 0,
            key,
            mask,
        },
    );
    // Events: the channel enabled, OEM AENs on, table misses reported.
    assert_eq!(rack.ncsi(0x03, &[])[..4], [0, 0, 0, 0], "Enable Channel");
    let control = oem::AEN_ENABLE_OEM.to_be_bytes();
    let ae = [0, 0, 0, 0, control[0], control[1], control[2], control[3]];
    assert_eq!(rack.ncsi(0x08, &ae)[..4], [0, 0, 0, 0], "AEN Enable");
    rack.set(
        oem::OBJ_POLICY,
        &oem::PolicyRecord {
            events: oem::EVENTS_TABLE_MISS | oem::EVENTS_VIOLATION,
            miss_events_per_sec: 10,
            ..oem::PolicyRecord::default()
        },
    );
    // A bad request changes nothing and says why.
    let (reason, _) = rack.oem(oem::OP_SET, 0x77, 0, &[]);
    assert_eq!(reason, oem::REASON_UNKNOWN_OBJECT);

    // QEMU's part: guest RAM, MSI-X eventfds.
    let fd = rack.mem.as_raw_fd();
    rack.client.dma_map(0, 0, MEM_SIZE, fd).unwrap();
    let irqs: Vec<EventFd> = (0..3)
        .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
        .collect();
    for (v, e) in irqs.iter().enumerate() {
        rack.client
            .set_irqs(
                VFIO_PCI_MSIX_IRQ_INDEX,
                VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                v as u32,
                1,
                &[e.as_raw_fd()],
            )
            .unwrap();
    }

    // The driver's part: bus mastering, the MAC the RME assigned, rings,
    // RX buffers.
    rack.enable_bus_master();
    assert_eq!(rack.read_reg(guest::MAC_LO).to_le_bytes(), GUEST_MAC[..4]);
    assert_eq!(rack.read_reg(guest::MTU_CAP), 9000);
    rack.write_reg(guest::queue_reg(0, guest::TX_BASE_LO), TX_RING as u32);
    rack.write_reg(guest::queue_reg(0, guest::TX_SIZE), RING);
    rack.write_reg(guest::queue_reg(0, guest::RX_BASE_LO), RX_RING as u32);
    rack.write_reg(guest::queue_reg(0, guest::RX_SIZE), RING);
    rack.write_reg(guest::STATUS_BLOCK_LO, STATUS_BLOCK as u32);
    rack.write_reg(guest::CONTROL, guest::CONTROL_ENABLE);
    assert_eq!(rack.read_reg(guest::ERROR_CODE), 0);
    for i in 0..8u64 {
        let d = desc::encode(RX_BUF + i * 0x1000, 2048, 0);
        rack.mem.write_at(&d, RX_RING + i * 16).unwrap();
    }
    rack.write_reg(guest::queue_reg(0, guest::RX_TAIL), 8);

    // TX: a frame to the peer leaves VXLAN-encapsulated with the VNI.
    let frame = udp_frame(5201, 300);
    rack.mem.write_at(&frame, TX_BUF).unwrap();
    let d = desc::encode(TX_BUF, frame.len() as u16, desc::TX_FLAG_EOP);
    rack.mem.write_at(&d, TX_RING).unwrap();
    rack.write_reg(guest::queue_reg(0, guest::TX_TAIL), 1);
    let mut buf = [0u8; 4096];
    let n = rack
        .fabric
        .recv(&mut buf)
        .expect("VXLAN frame on the fabric");
    let outer = &buf[..n];
    assert_eq!(n, frame.len() + 50);
    assert_eq!(&outer[0..6], &REMOTE_VTEP.0);
    assert_eq!(&outer[26..30], &LOCAL_VTEP.1);
    assert_eq!(&outer[30..34], &REMOTE_VTEP.1);
    assert_eq!(&outer[36..38], &4789u16.to_be_bytes());
    assert_eq!(&outer[42..50], &[0x08, 0, 0, 0, 0, 0x10, 0x92, 0]);
    assert_eq!(&outer[50..], &frame[..]);
    // Completion in guest memory, and the TX vector fired.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut head = [0u8; 4];
    loop {
        rack.mem.read_at(&mut head, STATUS_BLOCK).unwrap();
        if u32::from_le_bytes(head) == 1 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(u32::from_le_bytes(head), 1, "TX head in the status block");
    assert!(irqs[0].read().is_ok(), "TX vector");

    // RX: the peer's reply comes back as VXLAN to our VTEP and lands in
    // the first RX buffer, minus the outer headers.
    let mut reply = outer.to_vec();
    reply[0..6].copy_from_slice(&LOCAL_VTEP.0);
    reply[6..12].copy_from_slice(&REMOTE_VTEP.0);
    reply[26..30].copy_from_slice(&REMOTE_VTEP.1);
    reply[30..34].copy_from_slice(&LOCAL_VTEP.1);
    // The IPv4 checksum is symmetric in source and destination: unchanged.
    rack.fabric.send_to(&reply, &rack.fabric_model).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut d = [0u8; 16];
    loop {
        rack.mem.read_at(&mut d, RX_RING).unwrap();
        if desc::decode(&d).2 & desc::RX_FLAG_DONE != 0 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let (addr, len, flags) = desc::decode(&d);
    assert_eq!((addr, usize::from(len)), (RX_BUF, frame.len()));
    assert_eq!(flags, desc::RX_FLAG_DONE | desc::RX_FLAG_EOP);
    let mut got = vec![0u8; frame.len()];
    rack.mem.read_at(&mut got, RX_BUF).unwrap();
    assert_eq!(got, frame);
    assert!(irqs[1].read().is_ok(), "RX vector");

    // A packet no flow matches is dropped (miss policy drop) and the RME
    // hears of it: an OEM AEN with the packet's header summary.
    let mut stray = udp_frame(53, 20);
    stray[30..34].copy_from_slice(&[8, 8, 8, 8]);
    rack.mem.write_at(&stray, TX_BUF).unwrap();
    let d = desc::encode(TX_BUF, stray.len() as u16, desc::TX_FLAG_EOP);
    rack.mem.write_at(&d, TX_RING + 16).unwrap();
    rack.write_reg(guest::queue_reg(0, guest::TX_TAIL), 2);
    let aen = rack.aen();
    assert_eq!(aen[3], oem::AEN_OEM);
    assert_eq!(&aen[4..8], &oem::MANUFACTURER_ID.to_be_bytes());
    assert_eq!(aen[8], oem::EVENT_TABLE_MISS);
    let body = 4 + oem::AEN_PREFIX;
    let miss = oem::MissEvent::decode(&aen[body..body + oem::MissEvent::LEN]).unwrap();
    assert_eq!(&miss.key.ip_dst[..4], &[8, 8, 8, 8]);
    assert_eq!((miss.key.l4_dst, miss.misses), (53, 1));
    // Held for the RME to install its flow, then dropped.
    let deadline = Instant::now() + Duration::from_secs(2);
    while rack.read_stat(guest::Stat::TxDropTableMiss) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(rack.read_stat(guest::Stat::TxDropTableMiss), 1);

    // Another tenant's VNI is dropped and counted.
    let mut foreign = reply.clone();
    foreign[46] ^= 1;
    rack.fabric.send_to(&foreign, &rack.fabric_model).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while rack.read_stat(guest::Stat::RxDropWrongVni) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(rack.read_stat(guest::Stat::RxDropWrongVni), 1);

    // Billing: the RME reads the port counters over NC-SI.
    let (reason, records) = rack.oem(oem::OP_GET, oem::OBJ_PORT_COUNTERS, 0, &[]);
    assert_eq!(reason, 0);
    let counters = PortCountersRecord::decode(&records).unwrap().counters;
    assert_eq!(counters[guest::Stat::TxPackets as usize], 1);
    assert_eq!(counters[guest::Stat::TxBytes as usize], frame.len() as u64);
    assert_eq!(counters[guest::Stat::RxBytes as usize], frame.len() as u64);

    // A bad descriptor: visible error state, misc vector, counted.
    let d = desc::encode(MEM_SIZE + 0x1000, 64, desc::TX_FLAG_EOP);
    rack.mem.write_at(&d, TX_RING + 32).unwrap();
    rack.write_reg(guest::queue_reg(0, guest::TX_TAIL), 3);
    let deadline = Instant::now() + Duration::from_secs(5);
    while rack.read_reg(guest::STATUS) & guest::STATUS_ERROR == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(rack.read_reg(guest::ERROR_CODE), guest::ERR_DESC_ADDRESS);
    assert!(irqs[2].read().is_ok(), "misc vector");
    assert_eq!(rack.read_stat(guest::Stat::TxDropBadDescriptor), 1);
}
