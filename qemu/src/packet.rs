// SPDX-License-Identifier: GPL-2.0

//! Header parsing: an Ethernet frame to the [`FlowKey`] the pipeline matches
//! on, plus the offsets later stages need.
//!
//! The parser reads only what isolation needs: Ethernet II with at most one
//! 802.1Q tag, ARP, IPv4, IPv6 with its hop-by-hop, routing, destination
//! options and fragment extension headers, and the TCP, UDP, SCTP, ICMP and
//! ICMPv6 headers. Field conventions follow Open vSwitch, so that rules
//! written for OVS read the same here:
//!
//! - ICMP and ICMPv6 type and code go into `l4_src` and `l4_dst`;
//! - ARP puts the sender and target protocol addresses into `ip_src` and
//!   `ip_dst` and the low byte of the opcode into `ip_proto`;
//! - a non-first IP fragment keeps its `ip_proto` but has no ports.
//!
//! Every read is bounds-checked: a frame that announces more than it carries
//! is an error, never a panic, and the caller drops it.

use crate::ncsi_oem::FlowKey;

/// Ethertype of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;

// The protocol numbers flow rules match on live with the shared layouts.
pub use crate::ncsi_oem::{
    ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP,
    IPPROTO_TCP, IPPROTO_UDP,
};

/// IPv6 extension header: hop-by-hop options.
const IPV6_HOP_BY_HOP: u8 = 0;
/// IPv6 extension header: routing.
const IPV6_ROUTING: u8 = 43;
/// IPv6 extension header: fragment.
const IPV6_FRAGMENT: u8 = 44;
/// IPv6 extension header: destination options.
const IPV6_DEST_OPTIONS: u8 = 60;

/// Length of an Ethernet II header.
pub const ETH_HLEN: usize = 14;
/// Length of an 802.1Q tag.
pub const VLAN_HLEN: usize = 4;
/// Length of an IPv4 header without options.
pub const IPV4_MIN_HLEN: usize = 20;
/// Length of the fixed IPv6 header.
pub const IPV6_HLEN: usize = 40;
/// IPv4 flags and fragment offset: more fragments follow.
pub const IPV4_MORE_FRAGMENTS: u16 = 0x2000;
/// IPv4 flags and fragment offset: the offset, in 8-byte units.
pub const IPV4_FRAGMENT_OFFSET: u16 = 0x1fff;
/// Length of an ARP packet for IPv4 over Ethernet.
const ARP_ETH_IPV4_LEN: usize = 28;

/// RFC 8200 recommends each extension header appear at most once (twice for
/// destination options); real chains are short. The cap bounds the work a
/// hostile guest can ask of the parser per frame.
pub const MAX_IPV6_EXTENSION_HEADERS: usize = 8;

/// The header a [`ParseError::Truncated`] frame was cut in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    /// Ethernet II header.
    Ethernet,
    /// 802.1Q tag.
    Vlan,
    /// ARP packet.
    Arp,
    /// IPv4 header.
    Ipv4,
    /// Fixed IPv6 header.
    Ipv6,
    /// An IPv6 extension header.
    Ipv6Extension,
    /// TCP header.
    Tcp,
    /// UDP header.
    Udp,
    /// SCTP common header.
    Sctp,
    /// ICMP or ICMPv6 header.
    Icmp,
}

/// Why a frame could not be parsed. The pipeline drops such frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The frame (or the IP packet, as its length field bounds it) ends
    /// inside this header.
    Truncated(Header),
    /// The IP version field does not match the ethertype.
    BadIpVersion,
    /// IPv4 IHL below 5, or a TCP data offset below 5.
    BadHeaderLength,
    /// IPv4 total length smaller than its own header, or larger than the
    /// frame carries.
    BadIpTotalLength,
    /// IPv6 payload length larger than the frame carries (jumbograms do not
    /// fit an Ethernet frame and are not supported).
    BadIpv6PayloadLength,
    /// A hop-by-hop options header not directly after the IPv6 header
    /// (RFC 8200, section 4.3).
    MisplacedHopByHop,
    /// More than [`MAX_IPV6_EXTENSION_HEADERS`] IPv6 extension headers.
    TooManyExtensionHeaders,
    /// ARP with a hardware or protocol type other than Ethernet and IPv4.
    UnsupportedArp,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated(h) => write!(f, "frame truncated in {h:?} header"),
            Self::BadIpVersion => f.write_str("IP version does not match ethertype"),
            Self::BadHeaderLength => f.write_str("header length field too small"),
            Self::BadIpTotalLength => f.write_str("IPv4 total length inconsistent with frame"),
            Self::BadIpv6PayloadLength => f.write_str("IPv6 payload length exceeds frame"),
            Self::MisplacedHopByHop => f.write_str("IPv6 hop-by-hop header not first"),
            Self::TooManyExtensionHeaders => f.write_str("too many IPv6 extension headers"),
            Self::UnsupportedArp => f.write_str("ARP is not Ethernet/IPv4"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Where a packet sits in IP fragmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fragment {
    /// Not an IP fragment (or not IP at all).
    #[default]
    No,
    /// The first fragment: it carries the L4 header.
    First,
    /// A later fragment: no L4 header, so no ports.
    Later,
}

/// A parsed frame. Offsets index the frame given to [`parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The fields the flow table matches on.
    pub key: FlowKey,
    /// Start of the L3 header (after Ethernet and any VLAN tag).
    pub l3_offset: usize,
    /// End of the L3 packet as its length field says; Ethernet padding after
    /// it is excluded. The frame length for protocols without one.
    pub l3_end: usize,
    /// Start of the L4 header, if the packet carries one we can see.
    pub l4_offset: Option<usize>,
    /// Start of the L4 payload (after TCP options, the UDP header, the SCTP
    /// common header or the 8-byte ICMP header).
    pub payload_offset: Option<usize>,
    /// IP fragmentation state.
    pub fragment: Fragment,
    /// ARP sender hardware address: anti-spoofing checks it as well as the
    /// Ethernet source, since ARP caches learn from it.
    pub arp_sender_mac: Option<[u8; 6]>,
}

/// `N` bytes at `at`, or `None` past the end.
fn bytes_at<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..)?.first_chunk::<N>().copied()
}

fn u8_at(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

fn be16_at(b: &[u8], at: usize) -> Option<u16> {
    bytes_at(b, at).map(u16::from_be_bytes)
}

/// Parses `frame`, received on `in_port` ([`crate::ncsi_oem::PORT_GUEST`] or
/// [`crate::ncsi_oem::PORT_FABRIC`]).
///
/// Ethertypes other than IPv4, IPv6 and ARP (including a second VLAN tag)
/// yield an L2-only key: they match only rules that do not look past L2.
pub fn parse(frame: &[u8], in_port: u8) -> Result<Parsed, ParseError> {
    let truncated = ParseError::Truncated;
    let mut key = FlowKey {
        in_port,
        eth_dst: bytes_at(frame, 0).ok_or(truncated(Header::Ethernet))?,
        eth_src: bytes_at(frame, 6).ok_or(truncated(Header::Ethernet))?,
        ..FlowKey::default()
    };
    let mut ethertype = be16_at(frame, 12).ok_or(truncated(Header::Ethernet))?;
    let mut l3_offset = ETH_HLEN;
    if ethertype == ETHERTYPE_VLAN {
        key.vlan_tci = be16_at(frame, ETH_HLEN).ok_or(truncated(Header::Vlan))?;
        ethertype = be16_at(frame, ETH_HLEN + 2).ok_or(truncated(Header::Vlan))?;
        l3_offset += VLAN_HLEN;
    }
    key.ethertype = ethertype;

    let mut parsed = Parsed {
        key,
        l3_offset,
        l3_end: frame.len(),
        l4_offset: None,
        payload_offset: None,
        fragment: Fragment::No,
        arp_sender_mac: None,
    };
    match ethertype {
        ETHERTYPE_IPV4 => parse_ipv4(frame, &mut parsed)?,
        ETHERTYPE_IPV6 => parse_ipv6(frame, &mut parsed)?,
        ETHERTYPE_ARP => parse_arp(frame, &mut parsed)?,
        _ => {}
    }
    Ok(parsed)
}

fn parse_arp(frame: &[u8], p: &mut Parsed) -> Result<(), ParseError> {
    fn field<const N: usize>(arp: &[u8], at: usize) -> Result<[u8; N], ParseError> {
        bytes_at(arp, at).ok_or(ParseError::Truncated(Header::Arp))
    }
    let start = p.l3_offset;
    let arp: [u8; ARP_ETH_IPV4_LEN] = field(frame, start)?;
    let hardware_type = u16::from_be_bytes(field(&arp, 0)?);
    let protocol_type = u16::from_be_bytes(field(&arp, 2)?);
    let [hardware_len, protocol_len] = field(&arp, 4)?;
    if hardware_type != 1
        || protocol_type != ETHERTYPE_IPV4
        || hardware_len != 6
        || protocol_len != 4
    {
        return Err(ParseError::UnsupportedArp);
    }
    let [_, opcode_low] = field(&arp, 6)?;
    // OVS convention: the opcode's low byte in nw_proto, so rules can tell
    // requests (1) from replies (2).
    p.key.ip_proto = opcode_low;
    p.arp_sender_mac = Some(field(&arp, 8)?);
    p.key.ip_src[..4].copy_from_slice(&field::<4>(&arp, 14)?);
    p.key.ip_dst[..4].copy_from_slice(&field::<4>(&arp, 24)?);
    p.l3_end = start + ARP_ETH_IPV4_LEN;
    Ok(())
}

fn parse_ipv4(frame: &[u8], p: &mut Parsed) -> Result<(), ParseError> {
    let start = p.l3_offset;
    let available = frame.get(start..).unwrap_or_default();
    let fixed: [u8; IPV4_MIN_HLEN] =
        bytes_at(available, 0).ok_or(ParseError::Truncated(Header::Ipv4))?;
    let [version_ihl, _tos, len_hi, len_lo, _id_hi, _id_lo, frag_hi, frag_lo, _ttl, protocol, ..] =
        fixed;
    if version_ihl >> 4 != 4 {
        return Err(ParseError::BadIpVersion);
    }
    let header_len = usize::from(version_ihl & 0x0f) * 4;
    if header_len < IPV4_MIN_HLEN {
        return Err(ParseError::BadHeaderLength);
    }
    if header_len > available.len() {
        return Err(ParseError::Truncated(Header::Ipv4));
    }
    let total_len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    if total_len < header_len || total_len > available.len() {
        return Err(ParseError::BadIpTotalLength);
    }
    p.l3_end = start + total_len;
    p.key.ip_proto = protocol;
    p.key.ip_src[..4].copy_from_slice(&fixed[12..16]);
    p.key.ip_dst[..4].copy_from_slice(&fixed[16..20]);

    let flags_offset = u16::from_be_bytes([frag_hi, frag_lo]);
    let more_fragments = flags_offset & IPV4_MORE_FRAGMENTS != 0;
    let fragment_offset = flags_offset & IPV4_FRAGMENT_OFFSET;
    p.fragment = match (fragment_offset, more_fragments) {
        (0, false) => Fragment::No,
        (0, true) => Fragment::First,
        _ => Fragment::Later,
    };
    if p.fragment == Fragment::Later {
        return Ok(());
    }
    parse_l4(frame, p, start + header_len)
}

fn parse_ipv6(frame: &[u8], p: &mut Parsed) -> Result<(), ParseError> {
    let start = p.l3_offset;
    let available = frame.get(start..).unwrap_or_default();
    let fixed: [u8; IPV6_HLEN] =
        bytes_at(available, 0).ok_or(ParseError::Truncated(Header::Ipv6))?;
    if fixed[0] >> 4 != 6 {
        return Err(ParseError::BadIpVersion);
    }
    let payload_len = usize::from(u16::from_be_bytes([fixed[4], fixed[5]]));
    if IPV6_HLEN + payload_len > available.len() {
        return Err(ParseError::BadIpv6PayloadLength);
    }
    p.l3_end = start + IPV6_HLEN + payload_len;
    p.key.ip_src.copy_from_slice(&fixed[8..24]);
    p.key.ip_dst.copy_from_slice(&fixed[24..40]);

    // Extension headers are read within the packet as its payload length
    // bounds it, not the frame, so padding is never taken for a header.
    let packet = frame.get(..p.l3_end).unwrap_or_default();
    let truncated = ParseError::Truncated(Header::Ipv6Extension);
    let mut next_header = fixed[6];
    let mut offset = start + IPV6_HLEN;
    let mut extensions = 0;
    loop {
        match next_header {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTIONS => {
                if next_header == IPV6_HOP_BY_HOP && extensions != 0 {
                    return Err(ParseError::MisplacedHopByHop);
                }
                let [next, len_units] = bytes_at(packet, offset).ok_or(truncated)?;
                // Length in 8-octet units, not counting the first 8.
                let len = (usize::from(len_units) + 1) * 8;
                if offset + len > packet.len() {
                    return Err(truncated);
                }
                next_header = next;
                offset += len;
            }
            IPV6_FRAGMENT => {
                let header: [u8; 8] = bytes_at(packet, offset).ok_or(truncated)?;
                let offset_flags = u16::from_be_bytes([header[2], header[3]]);
                let fragment_offset = offset_flags >> 3;
                let more_fragments = offset_flags & 1 != 0;
                next_header = header[0];
                offset += header.len();
                p.fragment = match (fragment_offset, more_fragments) {
                    // An atomic fragment (RFC 6946) is a whole packet.
                    (0, false) => Fragment::No,
                    (0, true) => Fragment::First,
                    _ => Fragment::Later,
                };
                if p.fragment == Fragment::Later {
                    p.key.ip_proto = next_header;
                    return Ok(());
                }
            }
            _ => break,
        }
        extensions += 1;
        if extensions > MAX_IPV6_EXTENSION_HEADERS {
            return Err(ParseError::TooManyExtensionHeaders);
        }
    }
    p.key.ip_proto = next_header;
    parse_l4(frame, p, offset)
}

/// Reads the L4 header at `offset`, bounded by the IP packet's end.
fn parse_l4(frame: &[u8], p: &mut Parsed, offset: usize) -> Result<(), ParseError> {
    let packet = frame.get(..p.l3_end).unwrap_or_default();
    let is_icmp = match p.key.ethertype {
        ETHERTYPE_IPV4 => p.key.ip_proto == IPPROTO_ICMP,
        _ => p.key.ip_proto == IPPROTO_ICMPV6,
    };
    let (header, min_len) = match p.key.ip_proto {
        IPPROTO_TCP => (Header::Tcp, 20),
        IPPROTO_UDP => (Header::Udp, 8),
        IPPROTO_SCTP => (Header::Sctp, 12),
        // Every ICMP and ICMPv6 message has type, code, checksum and four
        // message-specific bytes.
        _ if is_icmp => (Header::Icmp, 8),
        _ => {
            // Unknown transport: its header starts here but has no ports.
            p.l4_offset = Some(offset);
            return Ok(());
        }
    };
    // A (first) fragment too short for the transport header is an error,
    // not a packet without ports: tiny fragments are the classic way past
    // port filters (RFC 1858).
    let fixed = packet
        .get(offset..)
        .and_then(|b| b.get(..min_len))
        .ok_or(ParseError::Truncated(header))?;
    let [a, b, c, d] = bytes_at(fixed, 0).ok_or(ParseError::Truncated(header))?;
    let header_len = if header == Header::Icmp {
        // OVS convention: type in tp_src, code in tp_dst.
        p.key.l4_src = u16::from(a);
        p.key.l4_dst = u16::from(b);
        min_len
    } else {
        p.key.l4_src = u16::from_be_bytes([a, b]);
        p.key.l4_dst = u16::from_be_bytes([c, d]);
        if header == Header::Tcp {
            let data_offset = u8_at(fixed, 12).ok_or(ParseError::Truncated(header))? >> 4;
            let len = usize::from(data_offset) * 4;
            if len < min_len {
                return Err(ParseError::BadHeaderLength);
            }
            len
        } else {
            min_len
        }
    };
    if offset + header_len > packet.len() {
        return Err(ParseError::Truncated(header));
    }
    p.l4_offset = Some(offset);
    p.payload_offset = Some(offset + header_len);
    Ok(())
}

/// The 16-bit one's complement sum of `data` as big-endian words (an odd
/// last byte padded with zero), added to `sum`, not yet folded.
pub fn ones_complement_add(mut sum: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        if let [hi, lo] = *w {
            sum += u64::from(u16::from_be_bytes([hi, lo]));
        }
    }
    if let [last] = *words.remainder() {
        sum += u64::from(last) << 8;
    }
    sum
}

/// Folds a one's complement sum to 16 bits.
pub fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The Internet checksum (RFC 1071) of `data`. Over a header that already
/// holds a correct checksum it is 0.
pub fn internet_checksum(data: &[u8]) -> u16 {
    !fold(ones_complement_add(0, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncsi_oem::{PORT_FABRIC, PORT_GUEST};

    const DST: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
    const SRC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

    fn ip4(a: [u8; 4]) -> [u8; 16] {
        let mut r = [0; 16];
        r[..4].copy_from_slice(&a);
        r
    }

    fn eth(ethertype: [u8; 2]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&DST);
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&ethertype);
        f
    }

    /// 10.0.0.1 -> 10.0.0.2, IPv4 header with the given protocol and
    /// payload, no options, checksum left zero (the parser ignores it).
    fn ipv4_frame(protocol: u8, flags_frag: [u8; 2], l4: &[u8]) -> Vec<u8> {
        let mut f = eth([0x08, 0x00]);
        let total = (20 + l4.len()) as u16;
        f.extend_from_slice(&[0x45, 0x00]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0x12, 0x34]);
        f.extend_from_slice(&flags_frag);
        f.extend_from_slice(&[64, protocol, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(l4);
        f
    }

    const TCP_SYN: [u8; 20] = [
        0x30, 0x39, 0x00, 0x50, // ports 12345 -> 80
        0, 0, 0, 1, 0, 0, 0, 0, // seq, ack
        0x50, 0x02, 0xff, 0xff, // data offset 5, SYN, window
        0, 0, 0, 0, // checksum, urgent
    ];

    const UDP_DNS: [u8; 12] = [
        0xc0, 0x00, 0x00, 0x35, // ports 49152 -> 53
        0x00, 0x0c, 0x00, 0x00, // length 12, checksum 0
        b'a', b'b', b'c', b'd',
    ];

    #[test]
    fn ipv4_tcp() {
        let f = ipv4_frame(IPPROTO_TCP, [0x40, 0x00], &TCP_SYN);
        let p = parse(&f, PORT_GUEST).unwrap();
        let want = FlowKey {
            in_port: PORT_GUEST,
            ip_proto: IPPROTO_TCP,
            ethertype: ETHERTYPE_IPV4,
            vlan_tci: 0,
            l4_src: 12345,
            l4_dst: 80,
            eth_src: SRC,
            eth_dst: DST,
            ip_src: ip4([10, 0, 0, 1]),
            ip_dst: ip4([10, 0, 0, 2]),
        };
        assert_eq!(p.key, want);
        assert_eq!(p.l3_offset, 14);
        assert_eq!(p.l4_offset, Some(34));
        assert_eq!(p.payload_offset, Some(54));
        assert_eq!(p.l3_end, 54);
        assert_eq!(p.fragment, Fragment::No);
    }

    #[test]
    fn ipv4_tcp_options_move_payload() {
        let mut tcp = TCP_SYN.to_vec();
        tcp[12] = 0x60; // data offset 6: one word of options
        tcp.extend_from_slice(&[0x02, 0x04, 0x05, 0xb4]); // MSS 1460
        let f = ipv4_frame(IPPROTO_TCP, [0, 0], &tcp);
        assert_eq!(parse(&f, PORT_GUEST).unwrap().payload_offset, Some(58));
    }

    #[test]
    fn ipv4_tcp_bad_data_offset() {
        let mut tcp = TCP_SYN;
        tcp[12] = 0x40;
        let f = ipv4_frame(IPPROTO_TCP, [0, 0], &tcp);
        assert_eq!(parse(&f, PORT_GUEST), Err(ParseError::BadHeaderLength));
        tcp[12] = 0x60; // options announced but not present
        let f = ipv4_frame(IPPROTO_TCP, [0, 0], &tcp);
        assert_eq!(
            parse(&f, PORT_GUEST),
            Err(ParseError::Truncated(Header::Tcp))
        );
    }

    #[test]
    fn ipv4_udp_with_ethernet_padding() {
        let mut f = ipv4_frame(IPPROTO_UDP, [0, 0], &UDP_DNS);
        f.resize(60, 0xee); // minimum Ethernet frame
        let p = parse(&f, PORT_FABRIC).unwrap();
        assert_eq!(p.key.in_port, PORT_FABRIC);
        assert_eq!((p.key.l4_src, p.key.l4_dst), (49152, 53));
        assert_eq!(p.l3_end, 14 + 20 + 12, "padding is not part of the packet");
        assert_eq!(p.payload_offset, Some(42));
    }

    #[test]
    fn ipv4_icmp_type_and_code_in_ports() {
        let echo = [8, 0, 0xf7, 0xff, 0, 1, 0, 1];
        let f = ipv4_frame(IPPROTO_ICMP, [0, 0], &echo);
        let k = parse(&f, PORT_GUEST).unwrap().key;
        assert_eq!((k.ip_proto, k.l4_src, k.l4_dst), (IPPROTO_ICMP, 8, 0));
        let unreachable = [3, 4, 0, 0, 0, 0, 0x05, 0xdc];
        let f = ipv4_frame(IPPROTO_ICMP, [0, 0], &unreachable);
        let k = parse(&f, PORT_GUEST).unwrap().key;
        assert_eq!((k.l4_src, k.l4_dst), (3, 4));
        let f = ipv4_frame(IPPROTO_ICMP, [0, 0], &echo[..4]);
        assert_eq!(
            parse(&f, PORT_GUEST),
            Err(ParseError::Truncated(Header::Icmp))
        );
    }

    #[test]
    fn ipv4_fragments() {
        // First fragment (MF set, offset 0): ports are there.
        let f = ipv4_frame(IPPROTO_UDP, [0x20, 0x00], &UDP_DNS);
        let p = parse(&f, PORT_GUEST).unwrap();
        assert_eq!(p.fragment, Fragment::First);
        assert_eq!(p.key.l4_dst, 53);
        // Later fragment (offset 185 * 8): the bytes are payload, not ports.
        let f = ipv4_frame(IPPROTO_UDP, [0x00, 0xb9], &UDP_DNS);
        let p = parse(&f, PORT_GUEST).unwrap();
        assert_eq!(p.fragment, Fragment::Later);
        assert_eq!(p.key.ip_proto, IPPROTO_UDP);
        assert_eq!((p.key.l4_src, p.key.l4_dst), (0, 0));
        assert_eq!(p.l4_offset, None);
    }

    #[test]
    fn ipv4_header_errors() {
        let good = ipv4_frame(IPPROTO_UDP, [0, 0], &UDP_DNS);

        let mut f = good.clone();
        f[14] = 0x65;
        assert_eq!(parse(&f, 0), Err(ParseError::BadIpVersion));

        f = good.clone();
        f[14] = 0x44;
        assert_eq!(parse(&f, 0), Err(ParseError::BadHeaderLength));

        f = good.clone();
        f[14] = 0x4f; // 60-byte header in a 32-byte packet
        f.resize(14 + 60, 0);
        assert_eq!(parse(&f, 0), Err(ParseError::BadIpTotalLength));

        f = good.clone();
        f[14] = 0x4f; // 60-byte header, 32 bytes in the frame
        assert_eq!(parse(&f, 0), Err(ParseError::Truncated(Header::Ipv4)));

        f = good.clone();
        f[16..18].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(parse(&f, 0), Err(ParseError::BadIpTotalLength));

        f = good.clone();
        f[16..18].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(parse(&f, 0), Err(ParseError::BadIpTotalLength));

        assert_eq!(
            parse(&good[..33], 0),
            Err(ParseError::Truncated(Header::Ipv4))
        );
        // Total length says the UDP header is cut even if the frame has more.
        f = good.clone();
        f[16..18].copy_from_slice(&24u16.to_be_bytes());
        assert_eq!(parse(&f, 0), Err(ParseError::Truncated(Header::Udp)));
    }

    #[test]
    fn ipv4_options_skipped() {
        let mut f = eth([0x08, 0x00]);
        f.extend_from_slice(&[0x46, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
        f.extend_from_slice(&[0x94, 0x04, 0, 0]); // router alert option
        f.extend_from_slice(&[0x00, 0x44, 0x00, 0x43, 0, 8, 0, 0]); // DHCP
        let p = parse(&f, 0).unwrap();
        assert_eq!(p.l4_offset, Some(38));
        assert_eq!((p.key.l4_src, p.key.l4_dst), (68, 67));
    }

    #[test]
    fn vlan_tag() {
        let mut f = eth([0x81, 0x00]);
        f.extend_from_slice(&[0xa0, 0x64]); // PCP 5, VID 100
        let inner = ipv4_frame(IPPROTO_TCP, [0, 0], &TCP_SYN);
        f.extend_from_slice(&inner[12..]);
        let p = parse(&f, 0).unwrap();
        assert_eq!(p.key.vlan_tci, 0xa064);
        assert_eq!(p.key.ethertype, ETHERTYPE_IPV4);
        assert_eq!(p.l3_offset, 18);
        assert_eq!(p.l4_offset, Some(38));
        assert_eq!(p.key.l4_dst, 80);
        assert_eq!(parse(&f[..16], 0), Err(ParseError::Truncated(Header::Vlan)));
    }

    #[test]
    fn second_vlan_tag_is_opaque() {
        let mut f = eth([0x81, 0x00]);
        f.extend_from_slice(&[0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x08, 0x00]);
        f.extend_from_slice(&[0x45; 20]);
        let p = parse(&f, 0).unwrap();
        assert_eq!(p.key.ethertype, ETHERTYPE_VLAN);
        assert_eq!(p.key.vlan_tci, 10);
        assert_eq!(p.key.ip_src, [0; 16]);
        assert_eq!(p.l4_offset, None);
    }

    #[test]
    fn arp_request() {
        let mut f = eth([0x08, 0x06]);
        f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&[10, 0, 0, 1]);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&[10, 0, 0, 2]);
        f.resize(60, 0);
        let p = parse(&f, PORT_GUEST).unwrap();
        assert_eq!(p.key.ethertype, ETHERTYPE_ARP);
        assert_eq!(p.key.ip_proto, 1);
        assert_eq!(p.key.ip_src, ip4([10, 0, 0, 1]));
        assert_eq!(p.key.ip_dst, ip4([10, 0, 0, 2]));
        assert_eq!(p.arp_sender_mac, Some(SRC));
        assert_eq!(p.l3_end, 14 + 28);

        let mut not_ipv4 = f.clone();
        not_ipv4[16..18].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(parse(&not_ipv4, 0), Err(ParseError::UnsupportedArp));
        assert_eq!(parse(&f[..41], 0), Err(ParseError::Truncated(Header::Arp)));
    }

    #[test]
    fn ethernet_errors_and_other_ethertypes() {
        assert_eq!(
            parse(&[0; 13], 0),
            Err(ParseError::Truncated(Header::Ethernet))
        );
        assert_eq!(parse(&[], 0), Err(ParseError::Truncated(Header::Ethernet)));
        let mut lldp = eth([0x88, 0xcc]);
        lldp.extend_from_slice(&[0x02, 0x07, 0x04]);
        let p = parse(&lldp, 0).unwrap();
        assert_eq!(p.key.ethertype, 0x88cc);
        assert_eq!((p.l3_offset, p.l3_end, p.l4_offset), (14, 17, None));
    }

    const V6_SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const V6_DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    fn ipv6_frame(next_header: u8, rest: &[u8]) -> Vec<u8> {
        let mut f = eth([0x86, 0xdd]);
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(rest.len() as u16).to_be_bytes());
        f.extend_from_slice(&[next_header, 64]);
        f.extend_from_slice(&V6_SRC);
        f.extend_from_slice(&V6_DST);
        f.extend_from_slice(rest);
        f
    }

    #[test]
    fn ipv6_udp() {
        let f = ipv6_frame(IPPROTO_UDP, &UDP_DNS);
        let p = parse(&f, 0).unwrap();
        assert_eq!(p.key.ethertype, ETHERTYPE_IPV6);
        assert_eq!(p.key.ip_proto, IPPROTO_UDP);
        assert_eq!(p.key.ip_src, V6_SRC);
        assert_eq!(p.key.ip_dst, V6_DST);
        assert_eq!((p.key.l4_src, p.key.l4_dst), (49152, 53));
        assert_eq!(p.l4_offset, Some(54));
        assert_eq!(p.payload_offset, Some(62));
        assert_eq!(p.l3_end, 66);
    }

    #[test]
    fn ipv6_icmpv6() {
        let neighbour_solicitation = [135, 0, 0, 0, 0, 0, 0, 0];
        let f = ipv6_frame(IPPROTO_ICMPV6, &neighbour_solicitation);
        let k = parse(&f, 0).unwrap().key;
        assert_eq!((k.ip_proto, k.l4_src, k.l4_dst), (IPPROTO_ICMPV6, 135, 0));
        // Protocol 1 inside IPv6 is not ICMP: no type/code extracted.
        let f = ipv6_frame(IPPROTO_ICMP, &neighbour_solicitation);
        let p = parse(&f, 0).unwrap();
        assert_eq!((p.key.l4_src, p.key.l4_dst), (0, 0));
        assert_eq!(p.l4_offset, Some(54));
    }

    #[test]
    fn ipv6_extension_headers_skipped() {
        let mut rest = Vec::new();
        // Hop-by-hop, 8 bytes: next = routing, len 0, PadN.
        rest.extend_from_slice(&[IPV6_ROUTING, 0, 1, 4, 0, 0, 0, 0]);
        // Routing, 24 bytes (len 2): next = destination options.
        rest.extend_from_slice(&[IPV6_DEST_OPTIONS, 2, 4, 0, 0, 0, 0, 0]);
        rest.extend_from_slice(&[0; 16]);
        // Destination options, 8 bytes: next = TCP.
        rest.extend_from_slice(&[IPPROTO_TCP, 0, 1, 4, 0, 0, 0, 0]);
        rest.extend_from_slice(&TCP_SYN);
        let f = ipv6_frame(IPV6_HOP_BY_HOP, &rest);
        let p = parse(&f, 0).unwrap();
        assert_eq!(p.key.ip_proto, IPPROTO_TCP);
        assert_eq!(p.l4_offset, Some(54 + 40));
        assert_eq!(p.key.l4_dst, 80);
    }

    #[test]
    fn ipv6_extension_errors() {
        // Routing header announcing 24 bytes with 8 present.
        let f = ipv6_frame(IPV6_ROUTING, &[IPPROTO_TCP, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            parse(&f, 0),
            Err(ParseError::Truncated(Header::Ipv6Extension))
        );
        // Only one byte of an extension header.
        let f = ipv6_frame(IPV6_DEST_OPTIONS, &[IPPROTO_TCP]);
        assert_eq!(
            parse(&f, 0),
            Err(ParseError::Truncated(Header::Ipv6Extension))
        );
        // Hop-by-hop after a destination options header.
        let f = ipv6_frame(
            IPV6_DEST_OPTIONS,
            &[
                IPV6_HOP_BY_HOP,
                0,
                1,
                4,
                0,
                0,
                0,
                0,
                59,
                0,
                1,
                4,
                0,
                0,
                0,
                0,
            ],
        );
        assert_eq!(parse(&f, 0), Err(ParseError::MisplacedHopByHop));
        // A long chain of destination options headers.
        let mut chain = Vec::new();
        for _ in 0..12 {
            chain.extend_from_slice(&[IPV6_DEST_OPTIONS, 0, 1, 4, 0, 0, 0, 0]);
        }
        let f = ipv6_frame(IPV6_DEST_OPTIONS, &chain);
        assert_eq!(parse(&f, 0), Err(ParseError::TooManyExtensionHeaders));
    }

    #[test]
    fn ipv6_fragments() {
        let mut first = vec![IPPROTO_UDP, 0, 0x00, 0x01, 0, 0, 0, 7];
        first.extend_from_slice(&UDP_DNS);
        let p = parse(&ipv6_frame(IPV6_FRAGMENT, &first), 0).unwrap();
        assert_eq!(p.fragment, Fragment::First);
        assert_eq!((p.key.ip_proto, p.key.l4_dst), (IPPROTO_UDP, 53));

        let mut later = vec![IPPROTO_UDP, 0, 0x05, 0xa8, 0, 0, 0, 7];
        later.extend_from_slice(&UDP_DNS);
        let p = parse(&ipv6_frame(IPV6_FRAGMENT, &later), 0).unwrap();
        assert_eq!(p.fragment, Fragment::Later);
        assert_eq!((p.key.ip_proto, p.key.l4_dst), (IPPROTO_UDP, 0));
        assert_eq!(p.l4_offset, None);
    }

    #[test]
    fn ipv6_header_errors() {
        let good = ipv6_frame(IPPROTO_UDP, &UDP_DNS);
        let mut f = good.clone();
        f[14] = 0x40;
        assert_eq!(parse(&f, 0), Err(ParseError::BadIpVersion));
        f = good.clone();
        f[18..20].copy_from_slice(&13u16.to_be_bytes());
        assert_eq!(parse(&f, 0), Err(ParseError::BadIpv6PayloadLength));
        assert_eq!(
            parse(&good[..53], 0),
            Err(ParseError::Truncated(Header::Ipv6))
        );
        f = good.clone();
        f[18..20].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(parse(&f, 0), Err(ParseError::Truncated(Header::Udp)));
    }

    /// Every prefix of valid frames must parse or fail cleanly, never panic.
    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut frames = vec![
            ipv4_frame(IPPROTO_TCP, [0, 0], &TCP_SYN),
            ipv4_frame(IPPROTO_ICMP, [0, 0], &[8, 0, 0, 0, 0, 1, 0, 1]),
            ipv6_frame(IPPROTO_UDP, &UDP_DNS),
        ];
        let mut sctp = vec![0x0b, 0x59, 0x0b, 0x59, 0, 0, 0, 1, 0, 0, 0, 0];
        sctp.extend_from_slice(&[0; 4]);
        frames.push(ipv4_frame(IPPROTO_SCTP, [0, 0], &sctp));
        for f in &frames {
            assert!(parse(f, 0).is_ok());
            for len in 0..f.len() {
                let _ = parse(&f[..len], 0);
            }
        }
        let p = parse(&frames[3], 0).unwrap();
        assert_eq!((p.key.l4_src, p.key.l4_dst), (2905, 2905));
        assert_eq!(p.payload_offset, Some(46));
    }
}
