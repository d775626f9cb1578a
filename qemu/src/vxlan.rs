// SPDX-License-Identifier: GPL-2.0

//! VXLAN (RFC 7348) over IPv4: encapsulation toward a remote VTEP on TX,
//! checks and decapsulation on RX.
//!
//! The outer packet is fixed-layout, 50 bytes before the inner frame:
//!
//! ```text
//!  0..14  Ethernet: VTEP MAC <- fabric port MAC, ethertype 0x0800
//! 14..34  IPv4: IHL 5, DF, TTL 64, protocol 17, tenant IP -> VTEP IP
//! 34..42  UDP: source port from the inner flow hash, destination 4789,
//!         checksum 0 (RFC 7348, section 5, allows it for IPv4)
//! 42..50  VXLAN: flags 0x08 (I), reserved, VNI (24 bits), reserved
//! 50..    the inner Ethernet frame, unchanged
//! ```

use crate::ncsi_oem::{FlowKey, TenantRecord, VtepRecord, IPPROTO_UDP};
use crate::packet::{
    fold, internet_checksum, ones_complement_add, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_HLEN,
    IPV4_FRAGMENT_OFFSET, IPV4_MORE_FRAGMENTS,
};

/// IANA-assigned VXLAN UDP port.
pub const VXLAN_PORT: u16 = 4789;
/// Length of the VXLAN header.
pub const VXLAN_HLEN: usize = 8;
/// Outer headers added by [`encapsulate`]: Ethernet, IPv4, UDP, VXLAN.
pub const OUTER_HLEN: usize = ETH_HLEN + IPV4_HLEN + UDP_HLEN + VXLAN_HLEN;
/// Largest inner frame whose encapsulation fits the IPv4 total length.
pub const MAX_INNER_LEN: usize = u16::MAX as usize - (IPV4_HLEN + UDP_HLEN + VXLAN_HLEN);
/// Largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;

const IPV4_HLEN: usize = 20;
const UDP_HLEN: usize = 8;
/// The "I" flag: the VNI is valid. The only flag RFC 7348 defines.
const VXLAN_FLAG_VNI: u8 = 0x08;
/// IPv4 flags and fragment offset with only DF set.
const IPV4_DONT_FRAGMENT: u16 = 0x4000;
const OUTER_TTL: u8 = 64;
/// RFC 7348, section 5: the source port SHOULD come from the dynamic and
/// private range, 49152-65535, which is 0xc000 plus 14 bits.
const SOURCE_PORT_BASE: u16 = 0xc000;
const SOURCE_PORT_HASH_BITS: u16 = 0x3fff;
const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// Why [`encapsulate`] refused a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncapError {
    /// The inner frame is longer than [`MAX_INNER_LEN`].
    InnerTooLong(usize),
    /// The tenant's VNI does not fit 24 bits.
    VniOutOfRange(u32),
}

impl std::fmt::Display for EncapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InnerTooLong(len) => write!(f, "inner frame of {len} bytes too long for VXLAN"),
            Self::VniOutOfRange(vni) => write!(f, "VNI {vni:#x} exceeds 24 bits"),
        }
    }
}

impl std::error::Error for EncapError {}

/// Why a fabric frame was not decapsulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecapError {
    /// The frame ends inside the outer headers or the inner Ethernet header.
    Truncated,
    /// Not an IPv4 packet (ethertype or IP version).
    NotIpv4,
    /// Addressed to another station: destination MAC neither ours nor
    /// broadcast, or destination IP not ours.
    NotForUs,
    /// IPv4, but not UDP.
    NotUdp,
    /// UDP, but not to [`VXLAN_PORT`].
    NotVxlanPort,
    /// The VXLAN I flag is clear, so the VNI is not valid.
    BadVxlanFlags,
    /// The outer IPv4 header checksum is wrong.
    BadIpChecksum,
    /// The UDP checksum is non-zero and wrong (RFC 7348 lets a receiver
    /// verify it).
    BadUdpChecksum,
    /// A length field disagrees with the frame or with another length:
    /// IHL below 5, IP total length beyond the frame, UDP length not the IP
    /// payload length.
    BadLength,
    /// The outer packet is an IPv4 fragment; VTEPs do not fragment
    /// (RFC 7348, section 4.3) and the model does not reassemble.
    Fragmented,
}

impl std::fmt::Display for DecapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Truncated => "truncated VXLAN frame",
            Self::NotIpv4 => "not IPv4",
            Self::NotForUs => "not addressed to this VTEP",
            Self::NotUdp => "not UDP",
            Self::NotVxlanPort => "not to the VXLAN port",
            Self::BadVxlanFlags => "VXLAN I flag clear",
            Self::BadIpChecksum => "bad outer IPv4 checksum",
            Self::BadUdpChecksum => "bad outer UDP checksum",
            Self::BadLength => "inconsistent outer length fields",
            Self::Fragmented => "fragmented outer packet",
        })
    }
}

impl std::error::Error for DecapError {}

/// A decapsulated frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decapsulated<'a> {
    /// The VNI of the outer header; the caller checks it is the tenant's.
    pub vni: u32,
    /// The inner Ethernet frame.
    pub inner: &'a [u8],
    /// The sending VTEP's IPv4 address.
    pub outer_src_ip: [u8; 4],
}

/// The UDP source port for a flow: the hash folded into the range RFC 7348
/// recommends, so that fabric ECMP spreads tenant flows while each flow
/// keeps one path (and its packets their order).
pub fn source_port(flow_hash: u32) -> u16 {
    let folded = (flow_hash ^ (flow_hash >> 16)) as u16;
    SOURCE_PORT_BASE | (folded & SOURCE_PORT_HASH_BITS)
}

/// Replaces the contents of `out` with `inner` encapsulated for the tenant
/// toward `vtep`. `flow_hash` (see [`flow_hash`]) picks the UDP source port.
pub fn encapsulate(
    inner: &[u8],
    tenant: &TenantRecord,
    vtep: &VtepRecord,
    flow_hash: u32,
    out: &mut Vec<u8>,
) -> Result<(), EncapError> {
    if inner.len() > MAX_INNER_LEN {
        return Err(EncapError::InnerTooLong(inner.len()));
    }
    if tenant.vni > MAX_VNI {
        return Err(EncapError::VniOutOfRange(tenant.vni));
    }
    // Both fit 16 bits: checked against MAX_INNER_LEN above.
    let udp_len = (UDP_HLEN + VXLAN_HLEN + inner.len()) as u16;
    let ip_total_len = IPV4_HLEN as u16 + udp_len;

    out.clear();
    out.reserve(OUTER_HLEN + inner.len());
    out.extend_from_slice(&vtep.mac);
    out.extend_from_slice(&tenant.local_mac);
    out.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());

    let mut ip = [0u8; IPV4_HLEN];
    ip[0] = 0x45; // version 4, IHL 5
    ip[1] = 0; // DSCP 0, ECN not-ECT
    ip[2..4].copy_from_slice(&ip_total_len.to_be_bytes());
    // Identification 0: with DF set the packet is never fragmented, so the
    // field identifies nothing (RFC 6864, section 4.1).
    ip[6..8].copy_from_slice(&IPV4_DONT_FRAGMENT.to_be_bytes());
    ip[8] = OUTER_TTL;
    ip[9] = IPPROTO_UDP;
    ip[12..16].copy_from_slice(&tenant.local_ip);
    ip[16..20].copy_from_slice(&vtep.ip);
    let checksum = internet_checksum(&ip);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    out.extend_from_slice(&ip);

    out.extend_from_slice(&source_port(flow_hash).to_be_bytes());
    out.extend_from_slice(&VXLAN_PORT.to_be_bytes());
    out.extend_from_slice(&udp_len.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // no UDP checksum

    let [_, vni_hi, vni_mid, vni_lo] = tenant.vni.to_be_bytes();
    out.extend_from_slice(&[VXLAN_FLAG_VNI, 0, 0, 0, vni_hi, vni_mid, vni_lo, 0]);
    out.extend_from_slice(inner);
    Ok(())
}

/// `N` bytes at `at`, or `None` past the end.
fn bytes_at<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..)?.first_chunk::<N>().copied()
}

/// Checks a fabric frame addressed to this VTEP (`local_mac`, `local_ip`)
/// and returns the frame it carries.
pub fn decapsulate<'a>(
    frame: &'a [u8],
    local_mac: &[u8; 6],
    local_ip: &[u8; 4],
) -> Result<Decapsulated<'a>, DecapError> {
    use DecapError::*;

    let eth: [u8; ETH_HLEN] = bytes_at(frame, 0).ok_or(Truncated)?;
    if u16::from_be_bytes([eth[12], eth[13]]) != ETHERTYPE_IPV4 {
        return Err(NotIpv4);
    }
    let dst_mac = bytes_at::<6>(&eth, 0).ok_or(Truncated)?;
    if dst_mac != *local_mac && dst_mac != BROADCAST_MAC {
        return Err(NotForUs);
    }

    let available = frame.get(ETH_HLEN..).unwrap_or_default();
    let ip: [u8; IPV4_HLEN] = bytes_at(available, 0).ok_or(Truncated)?;
    if ip[0] >> 4 != 4 {
        return Err(NotIpv4);
    }
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    if header_len < IPV4_HLEN {
        return Err(BadLength);
    }
    // Checked before any other IP field is believed.
    let header = available.get(..header_len).ok_or(Truncated)?;
    if internet_checksum(header) != 0 {
        return Err(BadIpChecksum);
    }
    let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total_len < header_len || total_len > available.len() {
        return Err(BadLength);
    }
    let flags_offset = u16::from_be_bytes([ip[6], ip[7]]);
    if flags_offset & (IPV4_MORE_FRAGMENTS | IPV4_FRAGMENT_OFFSET) != 0 {
        return Err(Fragmented);
    }
    if ip[16..20] != local_ip[..] {
        return Err(NotForUs);
    }
    if ip[9] != IPPROTO_UDP {
        return Err(NotUdp);
    }
    let outer_src_ip = bytes_at::<4>(&ip, 12).ok_or(Truncated)?;

    // The UDP datagram as the IP total length bounds it: Ethernet padding
    // after it is not part of the inner frame.
    let udp = available.get(header_len..total_len).ok_or(BadLength)?;
    let udp_header: [u8; UDP_HLEN] = bytes_at(udp, 0).ok_or(Truncated)?;
    if u16::from_be_bytes([udp_header[2], udp_header[3]]) != VXLAN_PORT {
        return Err(NotVxlanPort);
    }
    if usize::from(u16::from_be_bytes([udp_header[4], udp_header[5]])) != udp.len() {
        return Err(BadLength);
    }
    let udp_checksum = u16::from_be_bytes([udp_header[6], udp_header[7]]);
    if udp_checksum != 0 && !udp_checksum_ok(&outer_src_ip, local_ip, udp) {
        return Err(BadUdpChecksum);
    }

    let vxlan: [u8; VXLAN_HLEN] = bytes_at(udp, UDP_HLEN).ok_or(Truncated)?;
    // Reserved bits are ignored on receipt (RFC 7348, section 5).
    if vxlan[0] & VXLAN_FLAG_VNI == 0 {
        return Err(BadVxlanFlags);
    }
    let vni = u32::from_be_bytes([0, vxlan[4], vxlan[5], vxlan[6]]);
    let inner = udp.get(UDP_HLEN + VXLAN_HLEN..).ok_or(Truncated)?;
    if inner.len() < ETH_HLEN {
        return Err(Truncated);
    }
    Ok(Decapsulated {
        vni,
        inner,
        outer_src_ip,
    })
}

/// Whether `udp` (header and payload) checksums correctly with the IPv4
/// pseudo-header.
fn udp_checksum_ok(src: &[u8; 4], dst: &[u8; 4], udp: &[u8]) -> bool {
    let mut sum = ones_complement_add(0, src);
    sum = ones_complement_add(sum, dst);
    sum += u64::from(IPPROTO_UDP);
    sum += udp.len() as u64;
    fold(ones_complement_add(sum, udp)) == 0xffff
}

const FNV_OFFSET_BASIS: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

fn fnv1a(mut hash: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// A stable hash of the flow a packet belongs to (32-bit FNV-1a), for the
/// VXLAN source port.
///
/// For IP it covers the 5-tuple: addresses, protocol and ports. Other
/// frames have no 5-tuple worth the name, so their MAC addresses and
/// ethertype are hashed too, or every such flow would share one path.
pub fn flow_hash(key: &FlowKey) -> u32 {
    let mut hash = FNV_OFFSET_BASIS;
    hash = fnv1a(hash, &key.ip_src);
    hash = fnv1a(hash, &key.ip_dst);
    hash = fnv1a(hash, &[key.ip_proto]);
    hash = fnv1a(hash, &key.l4_src.to_be_bytes());
    hash = fnv1a(hash, &key.l4_dst.to_be_bytes());
    if key.ethertype != ETHERTYPE_IPV4 && key.ethertype != ETHERTYPE_IPV6 {
        hash = fnv1a(hash, &key.eth_src);
        hash = fnv1a(hash, &key.eth_dst);
        hash = fnv1a(hash, &key.ethertype.to_be_bytes());
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::ETHERTYPE_ARP;

    const TENANT: TenantRecord = TenantRecord {
        vni: 5001,
        local_mac: [0x02, 0xbb, 0, 0, 0, 0x01],
        local_ip: [192, 0, 2, 1],
    };
    const VTEP: VtepRecord = VtepRecord {
        index: 3,
        mac: [0x02, 0xcc, 0, 0, 0, 0x02],
        ip: [192, 0, 2, 2],
    };

    /// A 42-byte ARP request: who has 10.0.0.2, tell 10.0.0.1.
    const INNER: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, //
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 10, 0, 0, 1, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 0, 0, 2,
    ];

    fn encap(inner: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encapsulate(inner, &TENANT, &VTEP, 0x1234, &mut out).unwrap();
        out
    }

    /// Decapsulates as the remote VTEP would.
    fn decap(frame: &[u8]) -> Result<Decapsulated<'_>, DecapError> {
        decapsulate(frame, &VTEP.mac, &VTEP.ip)
    }

    /// Rewrites the outer IPv4 checksum after a test edited the header.
    fn fix_ip_checksum(frame: &mut [u8]) {
        let header_len = usize::from(frame[14] & 0x0f) * 4;
        frame[24..26].fill(0);
        let c = internet_checksum(&frame[14..14 + header_len]);
        frame[24..26].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn layout_is_byte_exact() {
        #[rustfmt::skip]
        let outer: [u8; OUTER_HLEN] = [
            // Ethernet: VTEP MAC, fabric port MAC, IPv4.
            0x02, 0xcc, 0x00, 0x00, 0x00, 0x02,
            0x02, 0xbb, 0x00, 0x00, 0x00, 0x01,
            0x08, 0x00,
            // IPv4: 4/5, TOS 0, total 78 = 20 + 8 + 8 + 42, ID 0, DF,
            // TTL 64, UDP, checksum, 192.0.2.1 -> 192.0.2.2.
            // Checksum by hand: 4500 + 004e + 4000 + 4011 + c000 + 0201
            // + c000 + 0202 = 0x24962; fold: 0x4962 + 2 = 0x4964;
            // complement: 0xb69b.
            0x45, 0x00, 0x00, 0x4e,
            0x00, 0x00, 0x40, 0x00,
            0x40, 0x11, 0xb6, 0x9b,
            0xc0, 0x00, 0x02, 0x01,
            0xc0, 0x00, 0x02, 0x02,
            // UDP: 0xc000 | 0x1234 = 53812 -> 4789, length 58, checksum 0.
            0xd2, 0x34, 0x12, 0xb5,
            0x00, 0x3a, 0x00, 0x00,
            // VXLAN: I flag, reserved, VNI 5001 = 0x001389, reserved.
            0x08, 0x00, 0x00, 0x00,
            0x00, 0x13, 0x89, 0x00,
        ];
        let frame = encap(&INNER);
        assert_eq!(frame.len(), OUTER_HLEN + INNER.len());
        assert_eq!(frame[..OUTER_HLEN], outer);
        assert_eq!(frame[OUTER_HLEN..], INNER);
    }

    #[test]
    fn encapsulate_replaces_buffer_contents() {
        let mut out = vec![0xaa; 500];
        encapsulate(&INNER, &TENANT, &VTEP, 0, &mut out).unwrap();
        assert_eq!(out.len(), OUTER_HLEN + INNER.len());
    }

    #[test]
    fn encapsulate_refuses_what_does_not_fit() {
        let mut out = Vec::new();
        let big = vec![0u8; MAX_INNER_LEN + 1];
        assert_eq!(
            encapsulate(&big, &TENANT, &VTEP, 0, &mut out),
            Err(EncapError::InnerTooLong(MAX_INNER_LEN + 1))
        );
        let fits = encapsulate(&big[1..], &TENANT, &VTEP, 0, &mut out);
        assert_eq!(fits, Ok(()));
        assert_eq!(out[16..18], [0xff, 0xff], "IP total length at its maximum");
        let wide = TenantRecord {
            vni: MAX_VNI + 1,
            ..TENANT
        };
        assert_eq!(
            encapsulate(&INNER, &wide, &VTEP, 0, &mut out),
            Err(EncapError::VniOutOfRange(MAX_VNI + 1))
        );
    }

    #[test]
    fn round_trip() {
        let frame = encap(&INNER);
        let d = decap(&frame).unwrap();
        assert_eq!(d.vni, 5001);
        assert_eq!(d.inner, INNER);
        assert_eq!(d.outer_src_ip, TENANT.local_ip);

        let big_vni = TenantRecord {
            vni: MAX_VNI,
            ..TENANT
        };
        let mut out = Vec::new();
        encapsulate(&INNER, &big_vni, &VTEP, 7, &mut out).unwrap();
        assert_eq!(decap(&out).unwrap().vni, MAX_VNI);
    }

    #[test]
    fn decap_accepts_broadcast_padding_options_and_reserved_bits() {
        let mut frame = encap(&INNER);
        frame[0..6].fill(0xff);
        frame[42] = 0xff; // reserved flag bits are ignored
        frame[49] = 0xff; // reserved byte after the VNI
        frame.extend_from_slice(&[0xee; 4]); // trailer beyond IP total length
        let d = decap(&frame).unwrap();
        assert_eq!((d.vni, d.inner), (5001, &INNER[..]));

        // Outer IPv4 with one word of options (IHL 6).
        let plain = encap(&INNER);
        let mut with_options = plain[..34].to_vec();
        with_options.extend_from_slice(&[0x01, 0x01, 0x01, 0x00]); // NOPs, EOL
        with_options.extend_from_slice(&plain[34..]);
        with_options[14] = 0x46;
        with_options[16..18].copy_from_slice(&(78u16 + 4).to_be_bytes());
        fix_ip_checksum(&mut with_options);
        let d = decap(&with_options).unwrap();
        assert_eq!((d.vni, d.inner), (5001, &INNER[..]));
    }

    #[test]
    fn decap_verifies_a_non_zero_udp_checksum() {
        let mut frame = encap(&INNER);
        // Computed independently (Python, RFC 768 pseudo-header) for this
        // exact packet.
        frame[40..42].copy_from_slice(&[0xd7, 0x67]);
        assert!(decap(&frame).is_ok());
        frame[40..42].copy_from_slice(&[0xd7, 0x68]);
        assert_eq!(decap(&frame), Err(DecapError::BadUdpChecksum));
    }

    #[test]
    fn decap_errors() {
        use DecapError::*;
        let good = encap(&INNER);
        let edit = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut frame = good.clone();
            f(&mut frame);
            decap(&frame).map(|d| d.vni)
        };
        // Truncated: inside Ethernet, IPv4, UDP, VXLAN, and an inner frame
        // shorter than an Ethernet header (lengths kept consistent).
        assert_eq!(decap(&good[..13]), Err(Truncated));
        assert_eq!(decap(&good[..30]), Err(Truncated));
        let shorten = |f: &mut Vec<u8>, len: usize| {
            f.truncate(len);
            let ip_len = (len - 14) as u16;
            f[16..18].copy_from_slice(&ip_len.to_be_bytes());
            f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
            fix_ip_checksum(f);
        };
        assert_eq!(edit(&|f| shorten(f, 40)), Err(Truncated));
        assert_eq!(edit(&|f| shorten(f, 46)), Err(Truncated));
        assert_eq!(edit(&|f| shorten(f, 50 + 13)), Err(Truncated));
        assert!(edit(&|f| shorten(f, 50 + 14)).is_ok());

        assert_eq!(
            edit(&|f| f[12..14].copy_from_slice(&[0x86, 0xdd])),
            Err(NotIpv4)
        );
        assert_eq!(
            edit(&|f| {
                f[14] = 0x65;
                fix_ip_checksum(f);
            }),
            Err(NotIpv4)
        );
        assert_eq!(edit(&|f| f[5] = 0x03), Err(NotForUs));
        assert_eq!(
            edit(&|f| {
                f[33] = 3;
                fix_ip_checksum(f);
            }),
            Err(NotForUs)
        );
        assert_eq!(
            edit(&|f| {
                f[23] = 6;
                fix_ip_checksum(f);
            }),
            Err(NotUdp)
        );
        assert_eq!(edit(&|f| f[37] = 0xb6), Err(NotVxlanPort));
        assert_eq!(edit(&|f| f[42] = 0x00), Err(BadVxlanFlags));
        assert_eq!(edit(&|f| f[42] = 0xf7), Err(BadVxlanFlags));
        assert_eq!(edit(&|f| f[24] ^= 1), Err(BadIpChecksum));
        assert_eq!(edit(&|f| f[26] ^= 1), Err(BadIpChecksum));
        assert_eq!(
            edit(&|f| {
                f[14] = 0x44;
                fix_ip_checksum(f);
            }),
            Err(BadLength)
        );
        assert_eq!(
            edit(&|f| {
                f[17] += 1; // IP total length beyond the frame
                fix_ip_checksum(f);
            }),
            Err(BadLength)
        );
        assert_eq!(edit(&|f| f[39] -= 1), Err(BadLength)); // UDP length
        assert_eq!(
            edit(&|f| {
                f[20] |= 0x20; // more fragments
                fix_ip_checksum(f);
            }),
            Err(Fragmented)
        );
        assert_eq!(
            edit(&|f| {
                f[21] = 1; // fragment offset
                fix_ip_checksum(f);
            }),
            Err(Fragmented)
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let good = encap(&INNER);
        for len in 0..good.len() {
            assert!(decap(&good[..len]).is_err(), "length {len}");
        }
    }

    #[test]
    fn source_port_in_dynamic_range() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000u32 {
            let key = FlowKey {
                ethertype: crate::packet::ETHERTYPE_IPV4,
                ip_proto: 6,
                l4_src: i as u16,
                l4_dst: 80,
                ..FlowKey::default()
            };
            let port = source_port(flow_hash(&key));
            assert!(port >= 49152, "port {port}");
            seen.insert(port);
        }
        // 10 000 flows over 16 384 ports: a decent hash leaves few collisions.
        assert!(seen.len() > 7_000, "only {} distinct ports", seen.len());
        assert_eq!(source_port(0), 49152);
        assert_eq!(source_port(u32::MAX), 49152);
        assert_eq!(source_port(0x3fff), 65535);
    }

    #[test]
    fn fnv1a_known_vectors() {
        assert_eq!(fnv1a(FNV_OFFSET_BASIS, b""), 0x811c_9dc5);
        assert_eq!(fnv1a(FNV_OFFSET_BASIS, b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(FNV_OFFSET_BASIS, b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn flow_hash_is_stable_and_covers_the_five_tuple() {
        let mut key = FlowKey {
            ethertype: crate::packet::ETHERTYPE_IPV4,
            ip_proto: 6,
            l4_src: 12345,
            l4_dst: 80,
            ..FlowKey::default()
        };
        key.ip_src[..4].copy_from_slice(&[10, 0, 0, 1]);
        key.ip_dst[..4].copy_from_slice(&[10, 0, 0, 2]);
        // Pinned: the port a flow uses must not change across versions
        // (a change reorders every flow's ECMP path at upgrade).
        assert_eq!(flow_hash(&key), FLOW_HASH_PINNED);

        let base = flow_hash(&key);
        let variants = [
            FlowKey {
                l4_src: 12346,
                ..key
            },
            FlowKey { l4_dst: 81, ..key },
            FlowKey {
                ip_proto: 17,
                ..key
            },
            FlowKey {
                ip_src: [10, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                ..key
            },
            FlowKey {
                ip_dst: [10, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                ..key
            },
        ];
        for v in variants {
            assert_ne!(flow_hash(&v), base, "{v:?}");
        }
        // MACs matter for non-IP only.
        let other_mac = FlowKey {
            eth_src: [2, 0, 0, 0, 0, 9],
            ..key
        };
        assert_eq!(flow_hash(&other_mac), base);
        let arp = FlowKey {
            ethertype: ETHERTYPE_ARP,
            ..key
        };
        let arp_other_mac = FlowKey {
            eth_src: [2, 0, 0, 0, 0, 9],
            ..arp
        };
        assert_ne!(flow_hash(&arp), flow_hash(&arp_other_mac));
    }

    /// FNV-1a of the key bytes, computed independently (Python).
    const FLOW_HASH_PINNED: u32 = 0x4249_a7c5;

    #[test]
    fn checksum_of_correct_header_is_zero() {
        let frame = encap(&INNER);
        assert_eq!(internet_checksum(&frame[14..34]), 0);
        // RFC 1071 section 3 example: 0001 f203 f4f5 f6f7 sums to 0xddf2.
        assert_eq!(
            internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        assert_eq!(internet_checksum(&[0x12]), !0x1200);
    }

    /// tcpdump, a dissector we did not write, reads the packet as VXLAN with
    /// the right VNI and a correct IP checksum. Skipped without tcpdump.
    #[test]
    fn tcpdump_decodes_vxlan() {
        let tcpdump = std::path::Path::new("/usr/bin/tcpdump");
        if !tcpdump.exists() {
            eprintln!("skipped: {} not installed", tcpdump.display());
            return;
        }
        let frame = encap(&INNER);
        let mut pcap = Vec::new();
        // Classic pcap: magic, v2.4, GMT offset, accuracy, snaplen,
        // LINKTYPE_ETHERNET; then one record header and the frame.
        pcap.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        pcap.extend_from_slice(&2u16.to_le_bytes());
        pcap.extend_from_slice(&4u16.to_le_bytes());
        pcap.extend_from_slice(&[0; 8]);
        pcap.extend_from_slice(&65535u32.to_le_bytes());
        pcap.extend_from_slice(&1u32.to_le_bytes());
        pcap.extend_from_slice(&[0; 8]);
        pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&frame);
        let path = std::env::temp_dir().join(format!("bmgnic-vxlan-{}.pcap", std::process::id()));
        std::fs::write(&path, &pcap).unwrap();
        let output = std::process::Command::new(tcpdump)
            .args(["-nn", "-v", "-r"])
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "tcpdump failed: {output:?}");
        assert!(text.contains("VXLAN, flags [I] (0x08), vni 5001"), "{text}");
        assert!(text.contains("192.0.2.1.53812 > 192.0.2.2.4789"), "{text}");
        assert!(
            text.contains("Request who-has 10.0.0.2 tell 10.0.0.1"),
            "{text}"
        );
        assert!(!text.contains("bad cksum"), "{text}");
    }
}
