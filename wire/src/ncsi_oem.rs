// SPDX-License-Identifier: GPL-2.0 OR MIT

//! BMGNIC NC-SI OEM command set: the one source of truth for the RME bank.
//!
//! Core-only (no `std`, no `kernel`, no allocation); see the crate
//! documentation (`wire/src/lib.rs`) for how each side builds it. All
//! multi-byte fields are big-endian, as in the rest of NC-SI.
//!
//! A BMGNIC OEM command is a DSP0222 OEM command (type [`CMD_OEM`]) whose
//! payload is the manufacturer ID [`MANUFACTURER_ID`] followed by an
//! [`OemHeader`] and `count` records of the object's fixed record size. The
//! response carries the DSP0222 response and reason codes, the manufacturer
//! ID, the echoed header and, for [`OP_GET`] and [`OP_DEL`], the records read.
//!
//! Documented byte by byte in `Documentation/bmgnic/ncsi.rst`.

// Public for the model, whose library exports it; each side uses a subset.
#![allow(dead_code, unreachable_pub)]

use crate::ncsi::MAX_PAYLOAD;

/// DSP0222 OEM command type, which carries this command set.
pub const CMD_OEM: u8 = crate::ncsi::cmd::OEM;
/// IANA enterprise number 32473, reserved for documentation (RFC 5612),
/// until one is assigned.
pub const MANUFACTURER_ID: u32 = 32473;
/// Version of this OEM command set.
pub const OEM_VERSION: u8 = 1;

/// Bytes before the records in a command payload: manufacturer ID and header.
pub const COMMAND_PREFIX: usize = 4 + OemHeader::LEN;
/// Bytes before the records in a response payload: response and reason
/// codes, manufacturer ID and header.
pub const RESPONSE_PREFIX: usize = 4 + 4 + OemHeader::LEN;

/// Read objects (records in the response).
pub const OP_GET: u8 = 1;
/// Write objects.
pub const OP_SET: u8 = 2;
/// Remove objects; for flows the response carries their final counters.
pub const OP_DEL: u8 = 3;

/// Guest identity: [`IdentityRecord`]. GET/SET.
pub const OBJ_IDENTITY: u8 = 0x01;
/// Tenant: [`TenantRecord`]. GET/SET.
pub const OBJ_TENANT: u8 = 0x02;
/// Remote VTEP table entry: [`VtepRecord`]. GET/SET/DEL.
pub const OBJ_VTEP: u8 = 0x03;
/// Flow table entry: [`FlowRecord`]. GET/SET; DEL takes [`SlotRecord`]s and
/// answers [`FlowCountersRecord`]s.
pub const OBJ_FLOW: u8 = 0x04;
/// Meter: [`MeterRecord`]. GET/SET/DEL.
pub const OBJ_METER: u8 = 0x05;
/// Per-flow counters: GET takes [`SlotRecord`]s, answers
/// [`FlowCountersRecord`]s.
pub const OBJ_FLOW_COUNTERS: u8 = 0x06;
/// Port counters: [`PortCountersRecord`]. GET.
pub const OBJ_PORT_COUNTERS: u8 = 0x07;
/// Policy: quarantine, miss policy, events: [`PolicyRecord`]. GET/SET.
pub const OBJ_POLICY: u8 = 0x08;
/// Table sizes and use: [`TableInfoRecord`]. GET.
pub const OBJ_TABLE_INFO: u8 = 0x09;
/// Per-meter counters: GET takes [`SlotRecord`]s (meter indices), answers
/// [`MeterCountersRecord`]s.
pub const OBJ_METER_COUNTERS: u8 = 0x0a;

/// OEM reason codes (DSP0222 leaves 0x8000-0xffff to the vendor).
pub const REASON_BAD_VERSION: u16 = 0x8001;
/// The object type is unknown.
pub const REASON_UNKNOWN_OBJECT: u16 = 0x8002;
/// The operation is not defined for the object.
pub const REASON_BAD_OP: u16 = 0x8003;
/// A slot, VTEP or meter index is out of range.
pub const REASON_BAD_INDEX: u16 = 0x8004;
/// A record field is invalid (bad VNI, MTU, action, mask...).
pub const REASON_BAD_RECORD: u16 = 0x8005;
/// The record count does not match the payload length.
pub const REASON_BAD_COUNT: u16 = 0x8006;

/// OEM AEN type (DSP0222 leaves 0x80-0xff to the vendor).
pub const AEN_OEM: u8 = 0x80;
/// AEN Enable command bit that enables BMGNIC OEM AENs (DSP0222 leaves
/// bits 31:16 of the AEN control to OEM AENs); bit 0 enables link AENs.
pub const AEN_ENABLE_OEM: u32 = 1 << 16;
/// AEN event: a guest packet missed the flow table: [`MissEvent`].
pub const EVENT_TABLE_MISS: u8 = 1;
/// AEN event: the guest sent a spoofed frame or wrote a read-only
/// register: [`ViolationEvent`].
pub const EVENT_VIOLATION: u8 = 2;

/// Violation kinds in a [`ViolationEvent`].
pub const VIOLATION_SPOOFED_MAC: u8 = 1;
/// The guest's source IP is not an assigned one.
pub const VIOLATION_SPOOFED_IP: u8 = 2;
/// The guest wrote a read-only guest-bank register.
pub const VIOLATION_RO_WRITE: u8 = 3;

fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn get64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(v)
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

fn get_array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut v = [0u8; N];
    v.copy_from_slice(&b[at..at + N]);
    v
}

/// A fixed-size record of the OEM command set.
pub trait Record: Sized {
    /// Encoded length in bytes.
    const LEN: usize;
    /// Encodes into `out`, which is exactly [`Record::LEN`] bytes.
    fn encode(&self, out: &mut [u8]);
    /// Decodes from `b`, which is exactly [`Record::LEN`] bytes; `None` if a
    /// field is out of range.
    fn decode(b: &[u8]) -> Option<Self>;
}

/// The header after the manufacturer ID.
///
/// ```text
/// 0      1      2       3
/// version op    object  count
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OemHeader {
    /// [`OEM_VERSION`].
    pub version: u8,
    /// `OP_*`.
    pub op: u8,
    /// `OBJ_*`.
    pub object: u8,
    /// Number of records that follow (commands) or are answered (responses).
    pub count: u8,
}

impl Record for OemHeader {
    const LEN: usize = 4;
    fn encode(&self, out: &mut [u8]) {
        out[0] = self.version;
        out[1] = self.op;
        out[2] = self.object;
        out[3] = self.count;
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Self {
            version: b[0],
            op: b[1],
            object: b[2],
            count: b[3],
        })
    }
}

/// Largest number of allowed addresses of each family in an identity.
pub const MAX_GUEST_ADDRS: usize = 4;

/// The guest's identity: what anti-spoofing enforces.
///
/// ```text
/// 0..6    MAC            6..8   MTU cap
/// 8       IPv4 count     9      IPv6 count   10..12 reserved
/// 12..28  4 x IPv4       28..92 4 x IPv6
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IdentityRecord {
    /// The MAC address the guest must send from (and sees in `MAC_LO/HI`).
    pub mac: [u8; 6],
    /// Largest MTU the guest may set.
    pub mtu_cap: u16,
    /// Number of valid entries in `ipv4`.
    pub ipv4_count: u8,
    /// Number of valid entries in `ipv6`.
    pub ipv6_count: u8,
    /// Allowed IPv4 source addresses.
    pub ipv4: [[u8; 4]; MAX_GUEST_ADDRS],
    /// Allowed IPv6 source addresses.
    pub ipv6: [[u8; 16]; MAX_GUEST_ADDRS],
}

impl Record for IdentityRecord {
    const LEN: usize = 92;
    fn encode(&self, out: &mut [u8]) {
        out.fill(0);
        out[0..6].copy_from_slice(&self.mac);
        put16(out, 6, self.mtu_cap);
        out[8] = self.ipv4_count;
        out[9] = self.ipv6_count;
        for (i, a) in self.ipv4.iter().enumerate() {
            out[12 + 4 * i..16 + 4 * i].copy_from_slice(a);
        }
        for (i, a) in self.ipv6.iter().enumerate() {
            out[28 + 16 * i..44 + 16 * i].copy_from_slice(a);
        }
    }
    fn decode(b: &[u8]) -> Option<Self> {
        let mut r = Self {
            mac: get_array(b, 0),
            mtu_cap: get16(b, 6),
            ipv4_count: b[8],
            ipv6_count: b[9],
            ..Self::default()
        };
        if r.ipv4_count as usize > MAX_GUEST_ADDRS || r.ipv6_count as usize > MAX_GUEST_ADDRS {
            return None;
        }
        for i in 0..MAX_GUEST_ADDRS {
            r.ipv4[i] = get_array(b, 12 + 4 * i);
            r.ipv6[i] = get_array(b, 28 + 16 * i);
        }
        Some(r)
    }
}

/// The tenant's virtual network.
///
/// ```text
/// 0..4   VNI (24 bits)   4..10 local VTEP MAC   10..12 reserved
/// 12..16 local VTEP IPv4
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TenantRecord {
    /// VXLAN network identifier of the tenant (24 bits; 0 = none yet).
    pub vni: u32,
    /// MAC of the NIC's fabric port (outer source MAC).
    pub local_mac: [u8; 6],
    /// IPv4 address of this VTEP (outer source IP).
    pub local_ip: [u8; 4],
}

impl Record for TenantRecord {
    const LEN: usize = 16;
    fn encode(&self, out: &mut [u8]) {
        out.fill(0);
        put32(out, 0, self.vni);
        out[4..10].copy_from_slice(&self.local_mac);
        out[12..16].copy_from_slice(&self.local_ip);
    }
    fn decode(b: &[u8]) -> Option<Self> {
        let vni = get32(b, 0);
        if vni > 0x00ff_ffff {
            return None;
        }
        Some(Self {
            vni,
            local_mac: get_array(b, 4),
            local_ip: get_array(b, 12),
        })
    }
}

/// A remote VTEP that flows encapsulate toward.
///
/// ```text
/// 0..2 index   2..8 outer destination MAC   8..12 outer destination IPv4
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VtepRecord {
    /// Index in the VTEP table.
    pub index: u16,
    /// Next-hop MAC on the fabric.
    pub mac: [u8; 6],
    /// The remote VTEP's IPv4 address.
    pub ip: [u8; 4],
}

impl Record for VtepRecord {
    const LEN: usize = 12;
    fn encode(&self, out: &mut [u8]) {
        put16(out, 0, self.index);
        out[2..8].copy_from_slice(&self.mac);
        out[8..12].copy_from_slice(&self.ip);
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Self {
            index: get16(b, 0),
            mac: get_array(b, 2),
            ip: get_array(b, 8),
        })
    }
}

/// Packet direction a flow key's `in_port` names: from the guest (TX).
pub const PORT_GUEST: u8 = 0;
/// From the fabric, after decapsulation (RX).
pub const PORT_FABRIC: u8 = 1;

/// The fields a flow matches on. IPv4 addresses occupy the first four
/// bytes of `ip_src`/`ip_dst` (the rest zero); `ethertype` tells them apart.
///
/// ```text
/// 0 in_port  1 ip_proto  2..4 ethertype  4..6 VLAN TCI  6..8 L4 src
/// 8..10 L4 dst  10..12 reserved  12..18 Ethernet src  18..24 Ethernet dst
/// 24..40 IP src  40..56 IP dst
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    /// [`PORT_GUEST`] or [`PORT_FABRIC`].
    pub in_port: u8,
    /// IP protocol (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    pub ip_proto: u8,
    /// Ethertype after any VLAN tag.
    pub ethertype: u16,
    /// VLAN TCI (0 if untagged).
    pub vlan_tci: u16,
    /// TCP/UDP source port.
    pub l4_src: u16,
    /// TCP/UDP destination port.
    pub l4_dst: u16,
    /// Ethernet source.
    pub eth_src: [u8; 6],
    /// Ethernet destination.
    pub eth_dst: [u8; 6],
    /// IP source.
    pub ip_src: [u8; 16],
    /// IP destination.
    pub ip_dst: [u8; 16],
}

impl FlowKey {
    /// Encoded length.
    pub const LEN: usize = 56;

    /// Encodes into 56 bytes.
    pub fn encode(&self, out: &mut [u8]) {
        out[0] = self.in_port;
        out[1] = self.ip_proto;
        put16(out, 2, self.ethertype);
        put16(out, 4, self.vlan_tci);
        put16(out, 6, self.l4_src);
        put16(out, 8, self.l4_dst);
        out[10] = 0;
        out[11] = 0;
        out[12..18].copy_from_slice(&self.eth_src);
        out[18..24].copy_from_slice(&self.eth_dst);
        out[24..40].copy_from_slice(&self.ip_src);
        out[40..56].copy_from_slice(&self.ip_dst);
    }

    /// Decodes 56 bytes.
    pub fn decode(b: &[u8]) -> Self {
        Self {
            in_port: b[0],
            ip_proto: b[1],
            ethertype: get16(b, 2),
            vlan_tci: get16(b, 4),
            l4_src: get16(b, 6),
            l4_dst: get16(b, 8),
            eth_src: get_array(b, 12),
            eth_dst: get_array(b, 18),
            ip_src: get_array(b, 24),
            ip_dst: get_array(b, 40),
        }
    }

    /// The key with every bit not set in `mask` cleared.
    pub fn masked(&self, mask: &FlowKey) -> FlowKey {
        fn and<const N: usize>(a: &[u8; N], m: &[u8; N]) -> [u8; N] {
            let mut r = [0u8; N];
            for i in 0..N {
                r[i] = a[i] & m[i];
            }
            r
        }
        FlowKey {
            in_port: self.in_port & mask.in_port,
            ip_proto: self.ip_proto & mask.ip_proto,
            ethertype: self.ethertype & mask.ethertype,
            vlan_tci: self.vlan_tci & mask.vlan_tci,
            l4_src: self.l4_src & mask.l4_src,
            l4_dst: self.l4_dst & mask.l4_dst,
            eth_src: and(&self.eth_src, &mask.eth_src),
            eth_dst: and(&self.eth_dst, &mask.eth_dst),
            ip_src: and(&self.ip_src, &mask.ip_src),
            ip_dst: and(&self.ip_dst, &mask.ip_dst),
        }
    }
}

/// Flow action: drop the packet.
pub const ACTION_DROP: u8 = 0;
/// Flow action: pass it unchanged (TX: to the fabric; RX: to the guest).
pub const ACTION_ALLOW: u8 = 1;
/// Flow action (TX): encapsulate in VXLAN with the tenant VNI toward
/// `vtep`.
pub const ACTION_ENCAP: u8 = 2;
/// Meter index meaning "no meter".
pub const NO_METER: u16 = 0xffff;

/// A flow table entry at a slot of the NIC's table.
///
/// ```text
/// 0..4 slot  4..6 priority  6 action  7 reserved  8..10 meter  10..12 VTEP
/// 12..68 key  68..124 mask
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowRecord {
    /// Slot in the NIC's table (the RME decides placement).
    pub slot: u32,
    /// Higher wins among matching entries.
    pub priority: u16,
    /// `ACTION_*`.
    pub action: u8,
    /// Meter index or [`NO_METER`].
    pub meter: u16,
    /// VTEP index for [`ACTION_ENCAP`].
    pub vtep: u16,
    /// Values to match (already masked).
    pub key: FlowKey,
    /// Bits that must match.
    pub mask: FlowKey,
}

impl Record for FlowRecord {
    const LEN: usize = 124;
    fn encode(&self, out: &mut [u8]) {
        put32(out, 0, self.slot);
        put16(out, 4, self.priority);
        out[6] = self.action;
        out[7] = 0;
        put16(out, 8, self.meter);
        put16(out, 10, self.vtep);
        self.key.encode(&mut out[12..68]);
        self.mask.encode(&mut out[68..124]);
    }
    fn decode(b: &[u8]) -> Option<Self> {
        let action = b[6];
        if action > ACTION_ENCAP {
            return None;
        }
        let mask = FlowKey::decode(&b[68..124]);
        // Keys are stored masked so that equal matches compare equal.
        let key = FlowKey::decode(&b[12..68]).masked(&mask);
        Some(Self {
            slot: get32(b, 0),
            priority: get16(b, 4),
            action,
            meter: get16(b, 8),
            vtep: get16(b, 10),
            key,
            mask,
        })
    }
}

/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// IP protocol ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IP protocol TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IP protocol ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// IP protocol SCTP.
pub const IPPROTO_SCTP: u8 = 132;

/// Why a flow entry is malformed (see [`check_flow`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowCheck {
    /// The action is not one of the `ACTION_*` values.
    BadAction,
    /// The key has bits set outside the mask, so it could never match.
    KeyOutsideMask,
    /// IP protocol or addresses are matched without an exact IPv4, IPv6 or
    /// ARP ethertype: those bits mean different things, or nothing, for
    /// other ethertypes.
    NeedsIpEthertype,
    /// An IPv4 or ARP entry masks address bytes beyond the first four,
    /// which are always zero for those ethertypes.
    Ipv4MaskBeyondAddress,
    /// L4 ports are matched without an exact TCP, UDP, SCTP, ICMP (IPv4) or
    /// ICMPv6 (IPv6) protocol: the port fields carry ICMP type and code, so
    /// a bare port match would also hit ICMP.
    NeedsL4Protocol,
}

impl FlowCheck {
    /// A message for the administrator (a netlink extack, a log line).
    pub fn message(self) -> &'static str {
        match self {
            Self::BadAction => "unknown flow action",
            Self::KeyOutsideMask => "flow key has bits outside its mask",
            Self::NeedsIpEthertype => "IP match needs an exact IPv4, IPv6 or ARP ethertype",
            Self::Ipv4MaskBeyondAddress => "IPv4 mask beyond the 4-byte address",
            Self::NeedsL4Protocol => "port match needs an exact L4 protocol",
        }
    }
}

/// Checks that a flow entry is well formed: a known action, a key within
/// its mask, and OVS-style prerequisites so that a field is only matched
/// where it has one meaning. The NIC refuses what fails it, and the RME
/// refuses it before it ever reaches the NIC.
pub fn check_flow(action: u8, key: &FlowKey, mask: &FlowKey) -> Result<(), FlowCheck> {
    if action > ACTION_ENCAP {
        return Err(FlowCheck::BadAction);
    }
    if key.masked(mask) != *key {
        return Err(FlowCheck::KeyOutsideMask);
    }
    let ethertype = (mask.ethertype == 0xffff).then_some(key.ethertype);
    let ip_proto = (mask.ip_proto == 0xff).then_some(key.ip_proto);
    let nonzero = |bytes: &[u8]| bytes.iter().any(|&b| b != 0);

    if (mask.ip_proto != 0 || nonzero(&mask.ip_src) || nonzero(&mask.ip_dst))
        && !matches!(
            ethertype,
            Some(ETHERTYPE_IPV4 | ETHERTYPE_IPV6 | ETHERTYPE_ARP)
        )
    {
        return Err(FlowCheck::NeedsIpEthertype);
    }
    if matches!(ethertype, Some(ETHERTYPE_IPV4 | ETHERTYPE_ARP))
        && (nonzero(&mask.ip_src[4..]) || nonzero(&mask.ip_dst[4..]))
    {
        return Err(FlowCheck::Ipv4MaskBeyondAddress);
    }
    if mask.l4_src != 0 || mask.l4_dst != 0 {
        let has_ports = matches!(
            (ethertype, ip_proto),
            (Some(ETHERTYPE_IPV4), Some(IPPROTO_ICMP))
                | (Some(ETHERTYPE_IPV6), Some(IPPROTO_ICMPV6))
                | (
                    Some(ETHERTYPE_IPV4 | ETHERTYPE_IPV6),
                    Some(IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP)
                )
        );
        if !has_ports {
            return Err(FlowCheck::NeedsL4Protocol);
        }
    }
    Ok(())
}

/// A slot number, for flow DEL and counter GET.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SlotRecord {
    /// Slot in the NIC's table.
    pub slot: u32,
}

impl Record for SlotRecord {
    const LEN: usize = 4;
    fn encode(&self, out: &mut [u8]) {
        put32(out, 0, self.slot);
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Self { slot: get32(b, 0) })
    }
}

/// A flow entry's counters.
///
/// ```text
/// 0..4 slot  4..8 flags (bit 0: slot in use)  8..16 packets  16..24 bytes
/// 24..32 milliseconds since the last hit (u64::MAX: never)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowCountersRecord {
    /// Slot in the NIC's table.
    pub slot: u32,
    /// Whether the slot held an entry.
    pub in_use: bool,
    /// Packets that hit the entry.
    pub packets: u64,
    /// Bytes (inner frames) that hit the entry.
    pub bytes: u64,
    /// Milliseconds since the last hit.
    pub idle_ms: u64,
}

impl Record for FlowCountersRecord {
    const LEN: usize = 32;
    fn encode(&self, out: &mut [u8]) {
        put32(out, 0, self.slot);
        put32(out, 4, u32::from(self.in_use));
        put64(out, 8, self.packets);
        put64(out, 16, self.bytes);
        put64(out, 24, self.idle_ms);
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Self {
            slot: get32(b, 0),
            in_use: get32(b, 4) & 1 != 0,
            packets: get64(b, 8),
            bytes: get64(b, 16),
            idle_ms: get64(b, 24),
        })
    }
}

/// A meter's counters: what it let through and what it dropped, since it
/// was set (a later SET of the same index keeps them; DEL clears them).
///
/// ```text
/// 0..2 index  2..4 flags (bit 0: meter set)  4..12 packets passed
/// 12..20 bytes passed  20..28 packets dropped  28..36 bytes dropped
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MeterCountersRecord {
    /// Index in the meter table.
    pub index: u16,
    /// Whether a meter was set at the index.
    pub in_use: bool,
    /// Packets the meter let through.
    pub passed_packets: u64,
    /// Bytes the meter let through.
    pub passed_bytes: u64,
    /// Packets over the rate, dropped.
    pub dropped_packets: u64,
    /// Bytes over the rate, dropped.
    pub dropped_bytes: u64,
}

impl Record for MeterCountersRecord {
    const LEN: usize = 36;
    fn encode(&self, out: &mut [u8]) {
        put16(out, 0, self.index);
        put16(out, 2, u16::from(self.in_use));
        put64(out, 4, self.passed_packets);
        put64(out, 12, self.passed_bytes);
        put64(out, 20, self.dropped_packets);
        put64(out, 28, self.dropped_bytes);
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Self {
            index: get16(b, 0),
            in_use: get16(b, 2) & 1 != 0,
            passed_packets: get64(b, 4),
            passed_bytes: get64(b, 12),
            dropped_packets: get64(b, 20),
            dropped_bytes: get64(b, 28),
        })
    }
}

/// [`MeterRecord::flags`]: the rate and burst count packets, not bytes.
pub const METER_FLAG_PACKETS: u16 = 1 << 0;
/// The meter flags a NIC of this version knows; others are
/// [`REASON_BAD_RECORD`].
pub const METER_FLAGS_KNOWN: u16 = METER_FLAG_PACKETS;

/// A token-bucket meter.
///
/// ```text
/// 0..2 index  2..4 flags  4..12 rate (bytes/s or packets/s)
/// 12..16 burst (bytes or packets)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MeterRecord {
    /// Index in the meter table.
    pub index: u16,
    /// `METER_FLAG_*`.
    pub flags: u16,
    /// Sustained rate in bytes (or packets) per second.
    pub rate: u64,
    /// Bucket depth in bytes (or packets).
    pub burst: u32,
}

impl MeterRecord {
    /// Whether the meter counts packets rather than bytes.
    pub const fn counts_packets(&self) -> bool {
        self.flags & METER_FLAG_PACKETS != 0
    }
}

impl Record for MeterRecord {
    const LEN: usize = 16;
    fn encode(&self, out: &mut [u8]) {
        put16(out, 0, self.index);
        put16(out, 2, self.flags);
        put64(out, 4, self.rate);
        put32(out, 12, self.burst);
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Self {
            index: get16(b, 0),
            flags: get16(b, 2),
            rate: get64(b, 4),
            burst: get32(b, 12),
        })
    }
}

/// Number of port counters: the guest-visible statistics (in
/// `regs::guest::STAT_NAMES` order) then the RME-only ones below.
pub const PORT_COUNTERS: usize = 24;
/// RME-only counters after the guest-visible ones.
pub const RME_COUNTER_NAMES: [&str; 6] = [
    "table_misses",
    "miss_events_sent",
    "miss_events_suppressed",
    "violation_events_sent",
    "ncsi_commands",
    "ncsi_command_errors",
];

/// Port counters for billing and monitoring: [`PORT_COUNTERS`] u64 values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortCountersRecord {
    /// The counters, guest-visible ones first.
    pub counters: [u64; PORT_COUNTERS],
}

impl Record for PortCountersRecord {
    const LEN: usize = 8 * PORT_COUNTERS;
    fn encode(&self, out: &mut [u8]) {
        for (i, c) in self.counters.iter().enumerate() {
            put64(out, 8 * i, *c);
        }
    }
    fn decode(b: &[u8]) -> Option<Self> {
        let mut counters = [0u64; PORT_COUNTERS];
        for (i, c) in counters.iter_mut().enumerate() {
            *c = get64(b, 8 * i);
        }
        Some(Self { counters })
    }
}

/// Miss policy: drop packets that miss the table.
pub const MISS_DROP: u8 = 0;
/// Miss policy: pass them (TX as if `ACTION_ALLOW`).
pub const MISS_ALLOW: u8 = 1;
/// Event enable bit: table-miss AENs.
pub const EVENTS_TABLE_MISS: u32 = 1 << 0;
/// Event enable bit: violation AENs.
pub const EVENTS_VIOLATION: u32 = 1 << 1;

/// Quarantine, miss handling and events.
///
/// ```text
/// 0 quarantined  1 miss policy  2..4 reserved  4..8 event enables
/// 8..12 miss AENs per second (0: none)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PolicyRecord {
    /// No packet moves while set; the guest sees `STATUS_QUARANTINED`.
    pub quarantined: bool,
    /// [`MISS_DROP`] or [`MISS_ALLOW`].
    pub miss_policy: u8,
    /// `EVENTS_*` bits.
    pub events: u32,
    /// Rate limit of table-miss AENs.
    pub miss_events_per_sec: u32,
}

impl Record for PolicyRecord {
    const LEN: usize = 12;
    fn encode(&self, out: &mut [u8]) {
        out.fill(0);
        out[0] = u8::from(self.quarantined);
        out[1] = self.miss_policy;
        put32(out, 4, self.events);
        put32(out, 8, self.miss_events_per_sec);
    }
    fn decode(b: &[u8]) -> Option<Self> {
        if b[0] > 1 || b[1] > MISS_ALLOW {
            return None;
        }
        Some(Self {
            quarantined: b[0] == 1,
            miss_policy: b[1],
            events: get32(b, 4),
            miss_events_per_sec: get32(b, 8),
        })
    }
}

/// Table sizes and use.
///
/// ```text
/// 0..4 flow slots  4..8 flow slots used  8..10 VTEPs  10..12 meters
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TableInfoRecord {
    /// Flow slots in the NIC.
    pub flow_slots: u32,
    /// Slots holding an entry.
    pub flows_used: u32,
    /// VTEP table entries.
    pub vteps: u16,
    /// Meter table entries.
    pub meters: u16,
}

impl Record for TableInfoRecord {
    const LEN: usize = 12;
    fn encode(&self, out: &mut [u8]) {
        put32(out, 0, self.flow_slots);
        put32(out, 4, self.flows_used);
        put16(out, 8, self.vteps);
        put16(out, 10, self.meters);
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Self {
            flow_slots: get32(b, 0),
            flows_used: get32(b, 4),
            vteps: get16(b, 8),
            meters: get16(b, 10),
        })
    }
}

/// OEM AEN payload after the DSP0222 AEN header (3 reserved bytes and the
/// AEN type [`AEN_OEM`]): manufacturer ID (4), event (1), reserved (3), then
/// the event's body.
pub const AEN_PREFIX: usize = 4 + 4;

/// Body of [`EVENT_TABLE_MISS`]: the header summary of the missed packet.
///
/// ```text
/// 0..56 the packet's flow key   56..60 misses since the last event
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MissEvent {
    /// The packet's fields.
    pub key: FlowKey,
    /// Misses (including this one) since the previous miss event, so that
    /// suppressed events are accounted for.
    pub misses: u32,
}

impl Record for MissEvent {
    const LEN: usize = 60;
    fn encode(&self, out: &mut [u8]) {
        self.key.encode(&mut out[0..56]);
        put32(out, 56, self.misses);
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Self {
            key: FlowKey::decode(&b[0..56]),
            misses: get32(b, 56),
        })
    }
}

/// Body of [`EVENT_VIOLATION`].
///
/// ```text
/// 0 kind  1..4 reserved  4..8 count since the last event  8..64 flow key
/// (zero for register writes; then key.l4_dst holds the register offset)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ViolationEvent {
    /// `VIOLATION_*`.
    pub kind: u8,
    /// Violations since the previous event.
    pub count: u32,
    /// The offending packet's fields, or the register offset.
    pub key: FlowKey,
}

impl Record for ViolationEvent {
    const LEN: usize = 64;
    fn encode(&self, out: &mut [u8]) {
        out[0] = self.kind;
        out[1..4].fill(0);
        put32(out, 4, self.count);
        self.key.encode(&mut out[8..64]);
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Self {
            kind: b[0],
            count: get32(b, 4),
            key: FlowKey::decode(&b[8..64]),
        })
    }
}

/// Largest number of records of `len` bytes that fit one command or
/// response.
pub const fn max_records(len: usize) -> usize {
    let room = MAX_PAYLOAD - RESPONSE_PREFIX;
    let n = room / len;
    if n > 255 {
        255
    } else {
        n
    }
}
