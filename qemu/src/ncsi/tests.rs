// SPDX-License-Identifier: GPL-2.0

//! The responder as Linux's `net/ncsi` and the RME use it.

use super::*;
use crate::ncsi_oem::{OBJ_TABLE_INFO, OP_GET, REASON_BAD_COUNT, REASON_BAD_INDEX};
use bmgnic_wire::ncsi::{checksum, BROADCAST};

const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const HOST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/// Channel byte of package 0, channel 0, and of package 0 itself.
const CH0: u8 = 0x00;
const PKG0: u8 = 0x1f;

/// A backend that records OEM calls and answers what it is told to.
struct Mock {
    link: bool,
    answer: Result<(u8, Vec<u8>), u16>,
    calls: Vec<(OemHeader, Vec<u8>)>,
}

impl Mock {
    fn new() -> Self {
        Self {
            link: true,
            answer: Ok((0, Vec::new())),
            calls: Vec::new(),
        }
    }
}

impl NcsiBackend for Mock {
    fn link_up(&self) -> bool {
        self.link
    }

    fn oem(&mut self, header: &OemHeader, records: &[u8], out: &mut Vec<u8>) -> Result<u8, u16> {
        self.calls.push((*header, records.to_vec()));
        match &self.answer {
            Ok((count, bytes)) => {
                out.extend_from_slice(bytes);
                Ok(*count)
            }
            Err(reason) => Err(*reason),
        }
    }
}

/// `ncsi_calculate_checksum()` of Linux's `ncsi-cmd.c`, transliterated
/// independently of [`checksum`]: `len` is even in every use here.
fn linux_checksum(data: &[u8]) -> u32 {
    let mut sum = 0u32;
    let mut i = 0;
    while i < data.len() {
        sum = sum.wrapping_add((u32::from(data[i]) << 8) | u32::from(data[i + 1]));
        i += 2;
    }
    (!sum).wrapping_add(1)
}

/// Builds a command the way Linux's `ncsi_xmit_cmd()` does: broadcast
/// addresses, payload padded to 32 bits, checksum, at least 26 bytes
/// after the header.
fn linux_cmd(iid: u8, packet_type: u8, channel: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0xff; 12];
    f.extend_from_slice(&[0x88, 0xf8]);
    f.extend_from_slice(&[0, 1, 0, iid, packet_type, channel]);
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(payload);
    let padded = payload.len().div_ceil(4) * 4;
    f.resize(14 + 16 + padded, 0);
    let sum = linux_checksum(&f[14..]);
    f.extend_from_slice(&sum.to_be_bytes());
    f.resize(14 + 16 + padded.max(26) + 4, 0);
    f
}

/// Response payload lengths of Linux's `ncsi_rsp_handlers[]`; `None`
/// where Linux takes the header's length.
fn linux_rsp_len(packet_type: u8) -> Option<usize> {
    Some(match packet_type & !RESPONSE_BIT {
        0x0a => 16,
        0x15 => 40,
        0x16 => 32,
        0x17 | 0x50 => return None,
        0x18 => 204,
        0x19 => 32,
        0x1a => 48,
        0x1b => 8,
        _ => 4,
    })
}

/// A parsed response, checked as Linux's `ncsi_validate_rsp_pkt()` does
/// (header revision, payload length against its table, checksum) and
/// beyond (Ethernet framing, minimum size).
#[derive(Debug)]
struct Rsp {
    mc_id: u8,
    iid: u8,
    packet_type: u8,
    channel: u8,
    code: u16,
    reason: u16,
    /// The whole payload, codes included.
    payload: Vec<u8>,
}

fn parse_rsp(frame: &[u8]) -> Rsp {
    assert!(frame.len() >= 60, "runt frame");
    assert_eq!(frame[..6], BROADCAST);
    assert_eq!(frame[6..12], MAC);
    assert_eq!(frame[12..14], [0x88, 0xf8]);
    let h = &frame[14..];
    assert_eq!(h[1], 0x01, "header revision");
    assert_eq!(h[2], 0);
    assert_eq!(h[8..16], [0; 8]);
    let len = usize::from(u16::from_be_bytes([h[6], h[7]]));
    assert!(len <= MAX_PAYLOAD);
    if h[4] != AEN_PACKET_TYPE {
        if let Some(want) = linux_rsp_len(h[4]) {
            assert_eq!(len, want, "payload length of type {:#x}", h[4]);
        }
    }
    let padded = len.div_ceil(4) * 4;
    assert!(h[16 + len..16 + padded].iter().all(|&b| b == 0));
    let sum = u32::from_be_bytes(h[16 + padded..20 + padded].try_into().unwrap());
    assert_eq!(sum, linux_checksum(&h[..16 + padded]), "checksum");
    assert!(frame[14 + 20 + padded..].iter().all(|&b| b == 0));
    Rsp {
        mc_id: h[0],
        iid: h[3],
        packet_type: h[4],
        channel: h[5],
        code: u16::from_be_bytes([h[16], h[17]]),
        reason: u16::from_be_bytes([h[18], h[19]]),
        payload: h[16..16 + len].to_vec(),
    }
}

/// Sends a Linux-style command and parses the response.
fn send(
    r: &mut NcsiResponder,
    b: &mut dyn NcsiBackend,
    iid: u8,
    packet_type: u8,
    channel: u8,
    payload: &[u8],
) -> Rsp {
    let rsp = r
        .handle(&linux_cmd(iid, packet_type, channel, payload), b)
        .expect("a response");
    let rsp = parse_rsp(&rsp);
    assert_eq!(rsp.iid, iid);
    assert_eq!(rsp.packet_type, packet_type | RESPONSE_BIT);
    assert_eq!(rsp.channel, channel);
    rsp
}

fn ok(
    r: &mut NcsiResponder,
    b: &mut dyn NcsiBackend,
    packet_type: u8,
    channel: u8,
    payload: &[u8],
) -> Rsp {
    let rsp = send(r, b, 7, packet_type, channel, payload);
    assert_eq!(
        (rsp.code, rsp.reason),
        (0, 0),
        "command {packet_type:#x} failed"
    );
    rsp
}

/// A responder whose channel left the Initial State.
fn ready() -> (NcsiResponder, Mock) {
    let mut r = NcsiResponder::new(MAC);
    let mut b = Mock::new();
    ok(&mut r, &mut b, cmd::CLEAR_INITIAL_STATE, CH0, &[]);
    (r, b)
}

/// The responder ready for AENs: channel enabled, `control` enabled.
fn aen_ready(control: u32) -> (NcsiResponder, Mock) {
    let (mut r, mut b) = ready();
    ok(&mut r, &mut b, cmd::ENABLE_CHANNEL, CH0, &[]);
    let mut ae = vec![0, 0, 0, 0x5a];
    ae.extend_from_slice(&control.to_be_bytes());
    ok(&mut r, &mut b, cmd::AEN_ENABLE, CH0, &ae);
    (r, b)
}

fn oem_payload(mfr: u32, header: [u8; 4], records: &[u8]) -> Vec<u8> {
    let mut p = mfr.to_be_bytes().to_vec();
    p.extend_from_slice(&header);
    p.extend_from_slice(records);
    p
}

#[test]
fn clear_initial_state_byte_exact() {
    #[rustfmt::skip]
    let command: [u8; 60] = [
        // Ethernet: broadcast to broadcast, as Linux sends before it
        // knows a MAC.
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x88, 0xf8,
        // MC ID 0, revision 1, reserved, IID 1, CIS, package 0 channel
        // 0, payload length 0, reserved.
        0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        // Checksum: words 0x0001 + 0x0001 = 0x0002, negated.
        0xff, 0xff, 0xff, 0xfe,
        // Linux pads to 26 bytes after the header.
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    #[rustfmt::skip]
    let expected: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x88, 0xf8,
        // Same MC ID and IID, type 0x80, same channel, length 4.
        0x00, 0x01, 0x00, 0x01, 0x80, 0x00, 0x00, 0x04,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        // Command Completed, no error.
        0x00, 0x00, 0x00, 0x00,
        // Checksum: 0x0001 + 0x0001 + 0x8000 + 0x0004 = 0x8006;
        // 0x1_0000_0000 - 0x8006 = 0xffff_7ffa.
        0xff, 0xff, 0x7f, 0xfa,
        // Ethernet padding to 60 bytes.
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(linux_cmd(1, cmd::CLEAR_INITIAL_STATE, CH0, &[]), command);
    let mut r = NcsiResponder::new(MAC);
    let rsp = r.handle(&command, &mut Mock::new());
    assert_eq!(rsp.as_deref(), Some(&expected[..]));
    assert_eq!(checksum(&expected[14..30]), 0xffff_7ffa);
    let s = r.stats();
    assert_eq!((s.rx_packets, s.commands, s.responses), (1, 1, 1));
}

#[test]
fn get_version_id_as_linux_reads_it() {
    let (mut r, mut b) = ready();
    let frame = r
        .handle(&linux_cmd(3, cmd::GET_VERSION_ID, CH0, &[]), &mut b)
        .unwrap();
    parse_rsp(&frame);
    // Offsets of struct ncsi_rsp_gvi_pkt from the NC-SI header.
    let p = &frame[14..];
    assert_eq!(u16::from_be_bytes([p[6], p[7]]), 40);
    let bcd = |x: u8| {
        let (hi, lo) = (x >> 4, x & 0xf);
        u32::from(if lo < 10 { lo } else { 0 }) + 10 * u32::from(if hi < 10 { hi } else { 0 })
    };
    assert_eq!((bcd(p[20]), bcd(p[21]), bcd(p[22])), (1, 1, 0));
    assert_eq!((p[23], p[27]), (0, 0), "alpha1, alpha2");
    assert_eq!(&p[28..40], b"BMGNIC\0\0\0\0\0\0");
    assert_eq!(&p[40..44], &[0, 1, 0, 0]);
    let ids: Vec<u16> = p[44..52]
        .chunks(2)
        .map(|w| u16::from_be_bytes([w[0], w[1]]))
        .collect();
    assert_eq!(ids, [0x10f0, 0x1af4, 0x10f0, 0x1af4]);
    assert_eq!(u32::from_be_bytes(p[52..56].try_into().unwrap()), 32473);
    assert_eq!(
        u32::from_be_bytes(p[56..60].try_into().unwrap()),
        linux_checksum(&p[..56])
    );
}

#[test]
fn get_capabilities_and_link_status() {
    let (mut r, mut b) = ready();
    let gc = ok(&mut r, &mut b, cmd::GET_CAPABILITIES, CH0, &[]);
    let p = &gc.payload;
    assert_eq!(be32(p, 4), 0x1c);
    assert_eq!(be32(p, 8), 0x0f);
    assert_eq!(
        be32(p, 20),
        AEN_ENABLE_LINK_STATUS | ncsi_oem::AEN_ENABLE_OEM
    );
    // VLAN, mixed, multicast, unicast filters, reserved, VLAN modes,
    // channel count.
    assert_eq!(p[24..32], [8, 0, 0, 2, 0, 0, 7, 1]);

    let gls = ok(&mut r, &mut b, cmd::GET_LINK_STATUS, CH0, &[]);
    assert_eq!(be32(&gls.payload, 4), 0x11);
    b.link = false;
    let gls = ok(&mut r, &mut b, cmd::GET_LINK_STATUS, CH0, &[]);
    assert_eq!(be32(&gls.payload, 4), 0);
}

#[test]
fn bad_checksum_is_dropped_and_counted() {
    let (mut r, mut b) = ready();
    let mut frame = linux_cmd(2, cmd::GET_LINK_STATUS, CH0, &[]);
    frame[33] ^= 1;
    assert!(r.handle(&frame, &mut b).is_none());
    let s = r.stats();
    assert_eq!((s.checksum_errors, s.dropped, s.commands), (1, 1, 1));

    // A zero checksum means "not provided" and is accepted.
    frame[30..34].fill(0);
    let rsp = parse_rsp(&r.handle(&frame, &mut b).unwrap());
    assert_eq!((rsp.code, rsp.reason), (0, 0));

    // Get NC-SI Statistics reports the error.
    let gns = ok(&mut r, &mut b, cmd::GET_NCSI_STATISTICS, CH0, &[]);
    let counters: Vec<u32> = (4..32).step_by(4).map(|i| be32(&gns.payload, i)).collect();
    // Commands, dropped, type errors, checksum errors, packets
    // received, packets sent, AENs sent.
    assert_eq!(counters, [3, 1, 0, 1, 4, 2, 0]);
}

#[test]
fn unknown_command_is_unsupported() {
    let (mut r, mut b) = ready();
    for packet_type in [0x0f, 0x1c, 0x4f, 0x51, 0x52, 0x58, 0x7f] {
        let rsp = send(&mut r, &mut b, 9, packet_type, CH0, &[]);
        assert_eq!((rsp.code, rsp.reason), (0x0003, 0x7fff));
        assert_eq!(rsp.payload.len(), 4);
    }
    assert_eq!(r.stats().unsupported, 7);
    assert_eq!(r.stats().failed, 7);
}

#[test]
fn payload_length_mismatch() {
    let (mut r, mut b) = ready();
    let rsp = send(&mut r, &mut b, 4, cmd::GET_VERSION_ID, CH0, &[0; 4]);
    assert_eq!((rsp.code, rsp.reason), (0x0001, 0x0005));
    // Full length, so that Linux passes it on to netlink users.
    assert_eq!(rsp.payload.len(), 40);
    let rsp = send(&mut r, &mut b, 5, cmd::AEN_ENABLE, CH0, &[0; 4]);
    assert_eq!((rsp.code, rsp.reason), (0x0001, 0x0005));
    let rsp = send(&mut r, &mut b, 6, cmd::SELECT_PACKAGE, PKG0, &[]);
    assert_eq!((rsp.code, rsp.reason), (0x0001, 0x0005));
    let rsp = send(&mut r, &mut b, 7, cmd::OEM, CH0, &[0, 0]);
    assert_eq!((rsp.code, rsp.reason), (0x0001, 0x0005));
}

#[test]
fn initial_state_requires_clear() {
    let mut r = NcsiResponder::new(MAC);
    let mut b = Mock::new();
    for (packet_type, payload) in [
        (cmd::GET_VERSION_ID, &[][..]),
        (cmd::ENABLE_CHANNEL, &[]),
        (cmd::GET_LINK_STATUS, &[]),
        (cmd::AEN_ENABLE, &[0, 0, 0, 0, 0, 0, 0, 1]),
    ] {
        let rsp = send(&mut r, &mut b, 1, packet_type, CH0, payload);
        assert_eq!((rsp.code, rsp.reason), (0x0001, 0x0001));
    }
    let oem = oem_payload(
        ncsi_oem::MANUFACTURER_ID,
        [1, OP_GET, OBJ_TABLE_INFO, 1],
        &[],
    );
    let rsp = send(&mut r, &mut b, 2, cmd::OEM, CH0, &oem);
    assert_eq!((rsp.code, rsp.reason), (0x0001, 0x0001));
    assert!(b.calls.is_empty());

    // Package commands do not depend on the channel's state.
    ok(&mut r, &mut b, cmd::SELECT_PACKAGE, PKG0, &[0, 0, 0, 1]);
    ok(&mut r, &mut b, cmd::GET_PACKAGE_STATUS, PKG0, &[]);
    ok(&mut r, &mut b, cmd::CLEAR_INITIAL_STATE, CH0, &[]);
    ok(&mut r, &mut b, cmd::GET_VERSION_ID, CH0, &[]);

    // Reset Channel returns the channel to the Initial State.
    ok(&mut r, &mut b, cmd::RESET_CHANNEL, CH0, &[0; 4]);
    let rsp = send(&mut r, &mut b, 3, cmd::GET_LINK_STATUS, CH0, &[]);
    assert_eq!((rsp.code, rsp.reason), (0x0001, 0x0001));
}

#[test]
fn scope_and_addressing() {
    let (mut r, mut b) = ready();
    // Another package, or a channel this package lacks: silence.
    for channel in [0x20, 0x3f, 0xe0, 0x01, 0x1e] {
        let frame = linux_cmd(1, cmd::GET_VERSION_ID, channel, &[]);
        assert!(r.handle(&frame, &mut b).is_none());
    }
    assert_eq!(r.stats().foreign, 5);
    // A channel command sent to the package, and the reverse.
    let rsp = send(&mut r, &mut b, 2, cmd::GET_VERSION_ID, PKG0, &[]);
    assert_eq!((rsp.code, rsp.reason), (0x0001, 0x0002));
    let rsp = send(&mut r, &mut b, 3, cmd::SELECT_PACKAGE, CH0, &[0; 4]);
    assert_eq!((rsp.code, rsp.reason), (0x0001, 0x0002));
    // Set NC-SI Flow Control goes either way.
    ok(&mut r, &mut b, cmd::SET_FLOW_CONTROL, PKG0, &[0, 0, 0, 3]);
    ok(&mut r, &mut b, cmd::SET_FLOW_CONTROL, CH0, &[0, 0, 0, 1]);
    let rsp = send(&mut r, &mut b, 4, cmd::SET_FLOW_CONTROL, CH0, &[0, 0, 0, 4]);
    assert_eq!((rsp.code, rsp.reason), (0x0001, 0x0002));
}

#[test]
fn responses_and_aens_from_others_are_dropped() {
    let (mut r, mut b) = ready();
    for packet_type in [0x80, 0x95, AEN_PACKET_TYPE] {
        assert!(r
            .handle(&linux_cmd(1, packet_type, CH0, &[0; 4]), &mut b)
            .is_none());
    }
    let mut bad_revision = linux_cmd(1, cmd::GET_VERSION_ID, CH0, &[]);
    bad_revision[15] = 2;
    assert!(r.handle(&bad_revision, &mut b).is_none());
    let s = r.stats();
    assert_eq!((s.dropped, s.malformed), (4, 1));
}

#[test]
fn short_and_foreign_frames() {
    let mut r = NcsiResponder::new(MAC);
    let mut b = Mock::new();
    let good = linux_cmd(1, cmd::AEN_ENABLE, CH0, &[0, 0, 0, 0, 0, 0, 0, 1]);
    // Every truncation of a valid command up to its checksum.
    for len in 0..14 + 16 + 8 + 4 {
        assert!(r.handle(&good[..len], &mut b).is_none(), "len {len}");
    }
    let s = r.stats();
    assert_eq!(s.not_ncsi, 14);
    assert_eq!((s.malformed, s.dropped, s.commands), (28, 28, 0));

    let mut ipv4 = good.clone();
    ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
    assert!(r.handle(&ipv4, &mut b).is_none());
    // A payload length beyond the frame.
    let mut long = good;
    long[20..22].copy_from_slice(&0x0fffu16.to_be_bytes());
    assert!(r.handle(&long, &mut b).is_none());
    let s = r.stats();
    assert_eq!((s.not_ncsi, s.malformed), (15, 29));
}

#[test]
fn oem_dispatch_success() {
    let (mut r, mut b) = ready();
    let records = [0xaa; 12];
    b.answer = Ok((1, records.to_vec()));
    let cmd = oem_payload(
        ncsi_oem::MANUFACTURER_ID,
        [1, OP_GET, OBJ_TABLE_INFO, 1],
        &[0, 0, 0, 9, 0x42],
    );
    let rsp = ok(&mut r, &mut b, cmd::OEM, CH0, &cmd);
    let mut want = vec![0, 0, 0, 0, 0, 0, 0x7e, 0xd9, 1, OP_GET, OBJ_TABLE_INFO, 1];
    want.extend_from_slice(&records);
    assert_eq!(rsp.payload, want);
    assert_eq!(rsp.payload.len(), ncsi_oem::RESPONSE_PREFIX + 12);
    // The backend saw the header and exactly the records, no padding.
    assert_eq!(
        b.calls,
        [(
            OemHeader {
                version: 1,
                op: OP_GET,
                object: OBJ_TABLE_INFO,
                count: 1
            },
            vec![0, 0, 0, 9, 0x42]
        )]
    );
}

#[test]
fn oem_dispatch_errors() {
    let (mut r, mut b) = ready();
    let header = [1, OP_GET, OBJ_TABLE_INFO, 3];
    let cmd = oem_payload(ncsi_oem::MANUFACTURER_ID, header, &[0; 8]);
    let echo = &cmd[..8];

    b.answer = Err(REASON_BAD_INDEX);
    let rsp = send(&mut r, &mut b, 1, cmd::OEM, CH0, &cmd);
    assert_eq!((rsp.code, rsp.reason), (0x0001, REASON_BAD_INDEX));
    assert_eq!(rsp.payload[4..], *echo);

    // More than one response holds.
    b.answer = Ok((255, vec![0; MAX_PAYLOAD]));
    let rsp = send(&mut r, &mut b, 2, cmd::OEM, CH0, &cmd);
    assert_eq!((rsp.code, rsp.reason), (0x0001, REASON_BAD_COUNT));
    assert_eq!(rsp.payload[4..], *echo);

    // Exactly MAX_PAYLOAD is fine.
    let room = MAX_PAYLOAD - ncsi_oem::RESPONSE_PREFIX;
    b.answer = Ok((3, vec![0x11; room]));
    let rsp = send(&mut r, &mut b, 3, cmd::OEM, CH0, &cmd);
    assert_eq!((rsp.code, rsp.payload.len()), (0, MAX_PAYLOAD));

    // Wrong OEM version: the backend is not asked.
    let calls = b.calls.len();
    let old = oem_payload(ncsi_oem::MANUFACTURER_ID, [2, OP_GET, 9, 0], &[]);
    let rsp = send(&mut r, &mut b, 4, cmd::OEM, CH0, &old);
    assert_eq!(
        (rsp.code, rsp.reason),
        (0x0001, ncsi_oem::REASON_BAD_VERSION)
    );
    assert_eq!(rsp.payload[4..], old[..]);

    // Header missing.
    let short = ncsi_oem::MANUFACTURER_ID.to_be_bytes();
    let rsp = send(&mut r, &mut b, 5, cmd::OEM, CH0, &short);
    assert_eq!((rsp.code, rsp.reason), (0x0001, 0x0005));
    assert_eq!(b.calls.len(), calls);
}

/// The RME bank behind the responder, as the device serves it.
struct Bank(crate::rme::RmeBank);

impl NcsiBackend for Bank {
    fn link_up(&self) -> bool {
        true
    }

    fn oem(&mut self, h: &OemHeader, r: &[u8], o: &mut Vec<u8>) -> Result<u8, u16> {
        let stats = [0; crate::regs::guest::STAT_COUNT];
        self.0.handle_oem(h, r, o, &stats, 0)
    }
}

#[test]
fn oem_answer_too_large_for_a_response_changes_nothing() {
    use crate::ncsi_oem::{
        FlowKey, FlowRecord, Record, VtepRecord, ACTION_DROP, NO_METER, OBJ_FLOW, OBJ_METER,
        OBJ_VTEP, OP_DEL, REASON_BAD_COUNT,
    };
    use crate::rme::RmeCounter;

    let mut r = NcsiResponder::new(MAC);
    let mut b = Bank(crate::rme::RmeBank::new(64));
    ok(&mut r, &mut b, cmd::CLEAR_INITIAL_STATE, CH0, &[]);
    // One flow answer more than a response holds: 46 x 32 bytes.
    let flows = 46u32;
    let mask = FlowKey {
        eth_dst: [0xff; 6],
        ..FlowKey::default()
    };
    let rules: Vec<FlowRecord> = (0..flows)
        .map(|slot| FlowRecord {
            slot,
            priority: 1,
            action: ACTION_DROP,
            meter: NO_METER,
            vtep: 0,
            key: FlowKey {
                eth_dst: [2, 0, 0, 0, 0, slot as u8],
                ..FlowKey::default()
            },
            mask,
        })
        .collect();
    b.0.apply(OBJ_FLOW, &rules, 0).unwrap();
    let vteps: Vec<VtepRecord> = (0..123u16)
        .map(|index| VtepRecord {
            index,
            mac: [2, 0, 0, 0, 1, index as u8],
            ip: [10, 0, 1, index as u8],
        })
        .collect();
    b.0.apply(OBJ_VTEP, &vteps, 0).unwrap();
    let errors = b.0.counter(RmeCounter::NcsiCommandErrors);

    let slots = |n: u32| -> Vec<u8> { (0..n).flat_map(|s| s.to_be_bytes()).collect() };
    for (iid, object, count) in [(1, OBJ_FLOW, flows), (2, OBJ_VTEP, 123), (3, OBJ_METER, 92)] {
        let cmd = oem_payload(
            ncsi_oem::MANUFACTURER_ID,
            [1, OP_DEL, object, count as u8],
            &slots(count),
        );
        let rsp = send(&mut r, &mut b, iid, cmd::OEM, CH0, &cmd);
        assert_eq!(
            (rsp.code, rsp.reason),
            (0x0001, REASON_BAD_COUNT),
            "object {object}"
        );
    }
    assert_eq!(b.0.flows.len(), flows);
    for rule in &rules {
        assert_eq!(b.0.flows.get(rule.slot), Some(rule));
    }
    for v in &vteps {
        assert_eq!(b.0.vtep(v.index), Some(v));
    }
    assert_eq!(b.0.counter(RmeCounter::NcsiCommandErrors), errors + 3);

    // One fewer fits, and is applied.
    let cmd = oem_payload(
        ncsi_oem::MANUFACTURER_ID,
        [1, OP_DEL, OBJ_FLOW, 45],
        &slots(45),
    );
    let rsp = ok(&mut r, &mut b, cmd::OEM, CH0, &cmd);
    assert_eq!(
        rsp.payload.len(),
        ncsi_oem::RESPONSE_PREFIX + 45 * crate::ncsi_oem::FlowCountersRecord::LEN
    );
    assert_eq!(b.0.flows.len(), 1);
}

#[test]
fn oem_wrong_manufacturer() {
    let (mut r, mut b) = ready();
    // Mellanox's Get MAC Address, as Linux may send it.
    let cmd = oem_payload(0x8119, [0, 0, 0x1b, 0], &[]);
    let rsp = send(&mut r, &mut b, 1, cmd::OEM, CH0, &cmd);
    assert_eq!((rsp.code, rsp.reason), (0x0001, 0x0002));
    assert_eq!(rsp.payload, [0, 1, 0, 2, 0, 0, 0x81, 0x19]);
    assert!(b.calls.is_empty());
}

#[test]
fn link_aen_layout() {
    let (mut r, _) = aen_ready(AEN_ENABLE_LINK_STATUS);
    let frame = r.link_aen(true).expect("AEN enabled");
    #[rustfmt::skip]
    let expected: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x88, 0xf8,
        // MC ID of AEN Enable, IID 0, type 0xff, channel 0, length 12.
        0x5a, 0x01, 0x00, 0x00, 0xff, 0x00, 0x00, 0x0c,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        // Reserved, AEN type 0 (link status change).
        0x00, 0x00, 0x00, 0x00,
        // Link up, 10GBASE-T full duplex; OEM link status.
        0x00, 0x00, 0x00, 0x11,
        0x00, 0x00, 0x00, 0x00,
        // 0x5a01 + 0xff00 + 0x000c + 0x0011 = 0x1591e, negated.
        0xff, 0xfe, 0xa6, 0xe2,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(frame, expected);
    // As Linux's ncsi_validate_aen_pkt() checks it.
    assert_eq!(linux_checksum(&frame[14..42]), 0xfffe_a6e2);
    let down = parse_rsp(&r.link_aen(false).unwrap());
    assert_eq!(be32(&down.payload, 4), 0);
    assert_eq!(r.stats().aens, 2);
    // Not enabled for OEM AENs.
    assert!(r.oem_aen(ncsi_oem::EVENT_TABLE_MISS, &[]).is_none());
}

#[test]
fn oem_aen_layout() {
    let (mut r, _) = aen_ready(ncsi_oem::AEN_ENABLE_OEM);
    let body: Vec<u8> = (0..60).collect();
    let frame = r.oem_aen(ncsi_oem::EVENT_TABLE_MISS, &body).unwrap();
    let aen = parse_rsp(&frame);
    assert_eq!(
        (aen.mc_id, aen.iid, aen.packet_type, aen.channel),
        (0x5a, 0, 0xff, 0)
    );
    let mut want = vec![0, 0, 0, 0x80, 0, 0, 0x7e, 0xd9, 1, 0, 0, 0];
    want.extend_from_slice(&body);
    assert_eq!(aen.payload, want);
    assert_eq!(aen.payload.len(), 4 + ncsi_oem::AEN_PREFIX + body.len());
    assert!(r.link_aen(true).is_none());
    // Too big for one packet.
    let huge = vec![0; MAX_PAYLOAD];
    assert!(r.oem_aen(ncsi_oem::EVENT_VIOLATION, &huge).is_none());
    assert_eq!(r.stats().aens, 1);
}

#[test]
fn aens_need_enabled_channel_and_selected_package() {
    let mut r = NcsiResponder::new(MAC);
    assert!(r.link_aen(true).is_none());
    let (mut r, mut b) = aen_ready(AEN_ENABLE_LINK_STATUS | ncsi_oem::AEN_ENABLE_OEM);
    assert!(r.link_aen(true).is_some());
    ok(&mut r, &mut b, cmd::DISABLE_CHANNEL, CH0, &[0, 0, 0, 1]);
    assert!(r.link_aen(true).is_none());
    assert!(r.oem_aen(1, &[]).is_none());
    ok(&mut r, &mut b, cmd::ENABLE_CHANNEL, CH0, &[]);
    ok(&mut r, &mut b, cmd::DESELECT_PACKAGE, PKG0, &[]);
    assert!(r.link_aen(true).is_none());
    // Any command selects the package again.
    ok(&mut r, &mut b, cmd::GET_LINK_STATUS, CH0, &[]);
    assert!(r.link_aen(true).is_some());
    // Unsupported AEN bits are refused and change nothing.
    let rsp = send(
        &mut r,
        &mut b,
        1,
        cmd::AEN_ENABLE,
        CH0,
        &[0, 0, 0, 0, 0, 0, 0, 2],
    );
    assert_eq!((rsp.code, rsp.reason), (0x0001, 0x0002));
    assert!(r.link_aen(false).is_some());
}

#[test]
fn parameters_report_configuration() {
    let (mut r, mut b) = ready();
    ok(
        &mut r,
        &mut b,
        cmd::SET_VLAN_FILTER,
        CH0,
        &[0, 0, 0x20, 0x64, 0, 0, 2, 1],
    );
    ok(&mut r, &mut b, cmd::ENABLE_VLAN, CH0, &[0, 0, 0, 2]);
    let mut sma = HOST_MAC.to_vec();
    sma.extend_from_slice(&[1, 1]);
    ok(&mut r, &mut b, cmd::SET_MAC_ADDRESS, CH0, &sma);
    ok(
        &mut r,
        &mut b,
        cmd::ENABLE_BROADCAST_FILTER,
        CH0,
        &[0, 0, 0, 0x0f],
    );
    ok(
        &mut r,
        &mut b,
        cmd::ENABLE_MULTICAST_FILTER,
        CH0,
        &[0, 0, 0, 0x01],
    );
    ok(&mut r, &mut b, cmd::ENABLE_CHANNEL_TX, CH0, &[]);
    ok(&mut r, &mut b, cmd::ENABLE_CHANNEL, CH0, &[]);
    ok(
        &mut r,
        &mut b,
        cmd::SET_LINK,
        CH0,
        &[0, 0, 0x10, 0x01, 0, 0, 0, 0],
    );
    ok(&mut r, &mut b, cmd::SET_FLOW_CONTROL, PKG0, &[0, 0, 0, 3]);
    ok(
        &mut r,
        &mut b,
        cmd::AEN_ENABLE,
        CH0,
        &[0, 0, 0, 0, 0, 1, 0, 1],
    );

    let gp = ok(&mut r, &mut b, cmd::GET_PARAMETERS, CH0, &[]);
    let p = &gp.payload;
    assert_eq!(p.len(), 32 + 2 * 6 + 8 * 2);
    // Offsets of struct ncsi_rsp_gp_pkt, less the 16-byte header.
    assert_eq!((p[4], p[7], p[8]), (2, 0b01, 8));
    assert_eq!(be16(p, 10), 0b10);
    assert_eq!(be32(p, 12), 0x1001);
    assert_eq!(be32(p, 16), 0x0f);
    assert_eq!(be32(p, 20), 0b1111);
    assert_eq!((p[24], p[25]), (2, 3));
    assert_eq!(be32(p, 28), 0x0001_0001);
    assert_eq!(p[32..38], HOST_MAC);
    assert_eq!(p[38..44], [0; 6]);
    assert_eq!(be16(p, 44 + 2), 0x2064);

    // Disabling clears the flags.
    ok(&mut r, &mut b, cmd::DISABLE_VLAN, CH0, &[]);
    ok(&mut r, &mut b, cmd::DISABLE_BROADCAST_FILTER, CH0, &[]);
    ok(&mut r, &mut b, cmd::DISABLE_MULTICAST_FILTER, CH0, &[]);
    ok(&mut r, &mut b, cmd::DISABLE_CHANNEL_TX, CH0, &[]);
    ok(
        &mut r,
        &mut b,
        cmd::SET_VLAN_FILTER,
        CH0,
        &[0, 0, 0x20, 0x64, 0, 0, 2, 0],
    );
    let gp = ok(&mut r, &mut b, cmd::GET_PARAMETERS, CH0, &[]);
    assert_eq!(be16(&gp.payload, 10), 0);
    assert_eq!(be32(&gp.payload, 20), 0b0010);
    assert_eq!(gp.payload[24], 0);
}

#[test]
fn filter_commands_validate_parameters() {
    let (mut r, mut b) = ready();
    let cases: [(u8, &[u8], u16); 8] = [
        (cmd::SET_VLAN_FILTER, &[0, 0, 0, 5, 0, 0, 0, 1], 0x0002),
        (cmd::SET_VLAN_FILTER, &[0, 0, 0, 5, 0, 0, 9, 1], 0x0002),
        (cmd::SET_VLAN_FILTER, &[0, 0, 0xe0, 0, 0, 0, 1, 1], 0x0b07),
        (cmd::SET_MAC_ADDRESS, &[0, 0, 0, 0, 0, 0, 1, 1], 0x0e08),
        (cmd::SET_MAC_ADDRESS, &[1, 0, 0x5e, 0, 0, 1, 1, 1], 0x0002),
        (cmd::SET_MAC_ADDRESS, &[2, 0, 0, 0, 0, 1, 3, 1], 0x0002),
        (cmd::ENABLE_VLAN, &[0, 0, 0, 4], 0x0002),
        (cmd::ENABLE_BROADCAST_FILTER, &[0, 0, 0, 0x10], 0x0002),
    ];
    for (packet_type, payload, reason) in cases {
        let rsp = send(&mut r, &mut b, 1, packet_type, CH0, payload);
        assert_eq!(
            (rsp.code, rsp.reason),
            (1, reason),
            "{packet_type:#x} {payload:?}"
        );
    }
}

#[test]
fn statistics_commands() {
    struct Counting(Mock);
    impl NcsiBackend for Counting {
        fn link_up(&self) -> bool {
            true
        }
        fn oem(&mut self, h: &OemHeader, r: &[u8], o: &mut Vec<u8>) -> Result<u8, u16> {
            self.0.oem(h, r, o)
        }
        fn packet_stats(&self) -> PacketStats {
            PacketStats {
                rx_bytes: 1 << 40,
                tx_bytes: 2,
                rx_unicast: 3,
                rx_multicast: 4,
                rx_broadcast: 5,
                tx_unicast: 6,
                tx_multicast: 7,
                tx_broadcast: 8,
            }
        }
    }
    let mut r = NcsiResponder::new(MAC);
    let mut b = Counting(Mock::new());
    let mut ask = |packet_type| {
        let frame = linux_cmd(1, packet_type, CH0, &[]);
        parse_rsp(&r.handle(&frame, &mut b).unwrap())
    };
    assert_eq!(ask(cmd::CLEAR_INITIAL_STATE).code, 0);
    let gcps = ask(cmd::GET_PACKET_STATISTICS);
    let p = &gcps.payload;
    let be64 = |at: usize| u64::from_be_bytes(p[at..at + 8].try_into().unwrap());
    assert_eq!(be64(4), 0);
    let counters: Vec<u64> = (0..8).map(|i| be64(12 + 8 * i)).collect();
    assert_eq!(counters, [1 << 40, 2, 3, 4, 5, 6, 7, 8]);
    // rx_valid_bytes at offset 188 of the payload.
    assert_eq!(be64(188), 1 << 40);
    let gnpts = ask(cmd::GET_PASSTHROUGH_STATISTICS);
    assert!(gnpts.payload[4..].iter().all(|&x| x == 0));
    let gns = ask(cmd::GET_NCSI_STATISTICS);
    // Four commands so far, three responses sent before this one.
    assert_eq!(be32(&gns.payload, 4), 4);
    assert_eq!(be32(&gns.payload, 24), 3);
}

/// The commands Linux's `ncsi-manage.c` sends to probe the interface
/// and configure the channel all complete, and every response passes
/// `ncsi_validate_rsp_pkt()`.
#[test]
fn linux_start_up_sequence() {
    let mut r = NcsiResponder::new(MAC);
    let mut b = Mock::new();
    let mut iid = 0u8;
    let mut xmit = |r: &mut NcsiResponder, packet_type: u8, channel: u8, payload: &[u8]| {
        iid = iid.wrapping_add(1).max(1);
        r.handle(&linux_cmd(iid, packet_type, channel, payload), &mut b)
            .map(|f| {
                let rsp = parse_rsp(&f);
                assert_eq!((rsp.iid, rsp.channel), (iid, channel));
                assert_eq!(rsp.packet_type, packet_type | RESPONSE_BIT);
                assert_eq!((rsp.code, rsp.reason), (0, 0), "{packet_type:#x}");
                rsp
            })
    };

    // ncsi_probe_channel(): deselect all packages; only 0 exists.
    for package in 0..8u8 {
        let rsp = xmit(&mut r, cmd::DESELECT_PACKAGE, package << 5 | 0x1f, &[]);
        assert_eq!(rsp.is_some(), package == 0);
    }
    for package in 0..8u8 {
        let pkg = package << 5 | 0x1f;
        let Some(_) = xmit(&mut r, cmd::SELECT_PACKAGE, pkg, &[0, 0, 0, 1]) else {
            assert_ne!(package, 0);
            continue;
        };
        let ch = package << 5;
        xmit(&mut r, cmd::CLEAR_INITIAL_STATE, ch, &[]).unwrap();
        let gvi = xmit(&mut r, cmd::GET_VERSION_ID, ch, &[]).unwrap();
        // Version 1.1: Linux takes the OEM Get MAC path, not GMCMA.
        assert_eq!(gvi.payload[4..6], [0xf1, 0xf1]);
        let gc = xmit(&mut r, cmd::GET_CAPABILITIES, ch, &[]).unwrap();
        assert_eq!(gc.payload[31], 1, "channel count");
        xmit(&mut r, cmd::GET_LINK_STATUS, ch, &[]).unwrap();
        xmit(&mut r, cmd::DESELECT_PACKAGE, pkg, &[]).unwrap();
    }

    // ncsi_configure_channel() on package 0, channel 0, with the
    // capabilities Get Capabilities reported.
    xmit(&mut r, cmd::SELECT_PACKAGE, PKG0, &[0, 0, 0, 1]).unwrap();
    xmit(&mut r, cmd::CLEAR_INITIAL_STATE, CH0, &[]).unwrap();
    // The MLX/BCM/Intel Get MAC command Linux might try: refused.
    let gma = r.handle(
        &linux_cmd(
            200,
            cmd::OEM,
            CH0,
            &oem_payload(0x8119, [0, 0, 0x1b, 0], &[]),
        ),
        &mut Mock::new(),
    );
    assert_eq!(parse_rsp(&gma.unwrap()).code, 1);
    // Clear every VLAN filter, as the bitmap starts full.
    for index in 1..=8u8 {
        xmit(
            &mut r,
            cmd::SET_VLAN_FILTER,
            CH0,
            &[0, 0, 0, 0, 0, 0, index, 0],
        )
        .unwrap();
    }
    xmit(&mut r, cmd::DISABLE_VLAN, CH0, &[]).unwrap();
    let mut sma = HOST_MAC.to_vec();
    sma.extend_from_slice(&[1, 1]);
    xmit(&mut r, cmd::SET_MAC_ADDRESS, CH0, &sma).unwrap();
    xmit(&mut r, cmd::ENABLE_BROADCAST_FILTER, CH0, &[0, 0, 0, 0x0f]).unwrap();
    xmit(&mut r, cmd::DISABLE_MULTICAST_FILTER, CH0, &[]).unwrap();
    xmit(&mut r, cmd::ENABLE_CHANNEL_TX, CH0, &[]).unwrap();
    xmit(&mut r, cmd::ENABLE_CHANNEL, CH0, &[]).unwrap();
    // AEN caps masked with NCSI_CAP_AEN_MASK (0x07).
    xmit(&mut r, cmd::AEN_ENABLE, CH0, &[0, 0, 0, 0, 0, 0, 0, 1]).unwrap();
    let gls = xmit(&mut r, cmd::GET_LINK_STATUS, CH0, &[]).unwrap();
    assert_eq!(be32(&gls.payload, 4) & 1, 1);
    // The channel monitor polls the link every second.
    xmit(&mut r, cmd::GET_LINK_STATUS, CH0, &[]).unwrap();

    // Configured: link changes reach Linux, OEM events do not.
    assert!(r.link_aen(false).is_some());
    assert!(r.oem_aen(ncsi_oem::EVENT_TABLE_MISS, &[]).is_none());
    let s = r.stats();
    assert_eq!(s.foreign, 14);
    assert_eq!(s.failed, 1);
    assert_eq!(s.dropped, 0);
}

/// A small xorshift generator: the tests need no crate for randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn random_frames_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut r = NcsiResponder::new(MAC);
    let mut b = Mock::new();
    for round in 0..20_000 {
        b.answer = match rng.below(4) {
            0 => Err(rng.next() as u16),
            _ => {
                let len = rng.below(1600);
                Ok((rng.next() as u8, rng.bytes(len)))
            }
        };
        let frame = match round % 4 {
            // Pure noise.
            0 => {
                let len = rng.below(128);
                rng.bytes(len)
            }
            // Noise with the NC-SI ethertype and revision.
            1 => {
                let len = rng.below(200);
                let mut f = rng.bytes(len.max(16));
                f[12..14].copy_from_slice(&[0x88, 0xf8]);
                f[15] = 1;
                f
            }
            // Well-formed commands with random fields, maybe cut short.
            _ => {
                let packet_type = (rng.next() % 0x60) as u8;
                let channel = [CH0, PKG0, rng.next() as u8][rng.below(3)];
                let len = rng.below(64);
                let mut payload = rng.bytes(len);
                if packet_type == cmd::OEM && rng.below(2) == 0 {
                    payload = oem_payload(ncsi_oem::MANUFACTURER_ID, [1, 1, 1, 1], &payload);
                }
                let mut f = linux_cmd(rng.next() as u8, packet_type, channel, &payload);
                if rng.below(4) == 0 {
                    let cut = rng.below(f.len());
                    f.truncate(cut);
                }
                f
            }
        };
        if let Some(rsp) = r.handle(&frame, &mut b) {
            let rsp = parse_rsp(&rsp);
            assert!(rsp.payload.len() <= MAX_PAYLOAD);
        }
        if round % 1000 == 0 {
            let _ = r.link_aen(rng.below(2) == 0);
            let len = rng.below(2000);
            let _ = r.oem_aen(rng.next() as u8, &rng.bytes(len));
        }
    }
    let s = r.stats();
    assert!(s.responses > 1000 && s.dropped > 1000 && s.not_ncsi > 1000);
}
