// SPDX-License-Identifier: GPL-2.0

//! Transmit offloads: checksum insertion and TCP segmentation, as the
//! first descriptor of a frame asks (`regs::desc::TX_FLAG_CSUM`,
//! `TX_FLAG_TSO`).
//!
//! Both run before the TX pipeline, so every segment is checked, counted,
//! metered and encapsulated as the frame a driver without offloads would
//! have sent.

use crate::ncsi_oem::PORT_GUEST;
use crate::packet::{
    self, fold, ones_complement_add, Fragment, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_TCP,
    IPV6_HLEN,
};
use crate::regs::{desc, guest};

/// TCP flags byte (offset 13 of the header).
const TCP_FLAGS: usize = 13;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;
/// TCP checksum field (offset 16 of the header).
const TCP_CHECKSUM: usize = 16;

/// What the first descriptor of a frame asks of the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxOffload {
    /// Send the frame as it is.
    None,
    /// Insert a checksum over `start..` at `start + offset`.
    Checksum { start: u16, offset: u8 },
    /// Cut a TCP frame into segments of `mss` payload bytes.
    Segment { mss: u16 },
}

impl TxOffload {
    /// The offload a frame's first descriptor asks for. Segmentation wins
    /// over a checksum alone, which it implies.
    pub fn of_descriptor(flags: u16, d: &[u8; desc::SIZE]) -> Self {
        let (field, offset) = desc::decode_tx_offload(d);
        if flags & desc::TX_FLAG_TSO != 0 {
            TxOffload::Segment { mss: field }
        } else if flags & desc::TX_FLAG_CSUM != 0 {
            TxOffload::Checksum {
                start: field,
                offset,
            }
        } else {
            TxOffload::None
        }
    }

    /// Longest frame the device gathers for this offload.
    pub fn max_frame_len(self) -> usize {
        match self {
            TxOffload::Segment { .. } => guest::TSO_MAX_FRAME_LEN,
            _ => guest::MAX_FRAME_LEN,
        }
    }
}

/// Why a frame could not be offloaded: the descriptor's fields do not fit
/// the frame (`tx_drop_bad_descriptor`), or a segment would exceed the MTU
/// (`tx_drop_too_long`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffloadError {
    Malformed,
    TooLong,
}

/// Inserts the checksum `TX_FLAG_CSUM` asks for, in place.
pub fn insert_checksum(frame: &mut [u8], start: u16, offset: u8) -> Result<(), OffloadError> {
    let start = usize::from(start);
    let field = start + usize::from(offset);
    if field + 2 > frame.len() {
        return Err(OffloadError::Malformed);
    }
    let sum = !fold(ones_complement_add(0, &frame[start..]));
    let sum = if sum == 0 { 0xffff } else { sum };
    frame[field..field + 2].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

/// Where the headers of a TCP frame are.
struct TcpFrame {
    /// Offset of the IP header.
    ip: usize,
    ipv4: bool,
    /// Offset of the TCP header.
    tcp: usize,
    /// Offset of the payload (end of the headers).
    payload: usize,
    /// End of the IP packet, as its length field says (Ethernet padding
    /// after it is not payload).
    end: usize,
}

/// The headers of an unfragmented IPv4 or IPv6 TCP frame, as the model's
/// parser finds them (VLAN tag, IPv4 options and IPv6 extension headers
/// included); `None` for anything else or a frame it refuses.
fn parse_tcp(frame: &[u8]) -> Option<TcpFrame> {
    let p = packet::parse(frame, PORT_GUEST).ok()?;
    let ipv4 = match p.key.ethertype {
        ETHERTYPE_IPV4 => true,
        ETHERTYPE_IPV6 => false,
        _ => return None,
    };
    if p.key.ip_proto != IPPROTO_TCP || p.fragment != Fragment::No {
        return None;
    }
    Some(TcpFrame {
        ip: p.l3_offset,
        ipv4,
        tcp: p.l4_offset?,
        payload: p.payload_offset?,
        end: p.l3_end,
    })
}

/// The TCP checksum of `segment`, whose IP header is final, with its
/// checksum field taken as zero.
fn tcp_checksum(segment: &[u8], at: &TcpFrame) -> u16 {
    let tcp_len = segment.len() - at.tcp;
    let mut sum = if at.ipv4 {
        ones_complement_add(0, &segment[at.ip + 12..at.ip + 20])
    } else {
        ones_complement_add(0, &segment[at.ip + 8..at.ip + 40])
    };
    sum += u64::from(IPPROTO_TCP) + tcp_len as u64;
    sum = ones_complement_add(sum, &segment[at.tcp..at.tcp + TCP_CHECKSUM]);
    sum = ones_complement_add(sum, &segment[at.tcp + TCP_CHECKSUM + 2..]);
    !fold(sum)
}

/// Cuts a TCP frame into segments of at most `mss` payload bytes, hands
/// each to `send` in order, and returns how many it made. Nothing is sent
/// when the frame cannot be segmented or a segment would be longer than
/// `max_len`.
pub fn segment(
    frame: &[u8],
    mss: u16,
    max_len: usize,
    scratch: &mut Vec<u8>,
    mut send: impl FnMut(&[u8]),
) -> Result<usize, OffloadError> {
    if mss < guest::TSO_MSS_MIN {
        return Err(OffloadError::Malformed);
    }
    let at = parse_tcp(frame).ok_or(OffloadError::Malformed)?;
    let mss = usize::from(mss);
    let payload = &frame[at.payload..at.end];
    if at.payload + mss.min(payload.len()) > max_len {
        return Err(OffloadError::TooLong);
    }
    // The IP lengths must fit their fields (a 64 KiB frame of IPv6 does).
    let ip_hlen = at.tcp - at.ip;
    if ip_hlen + (at.payload - at.tcp) + mss.min(payload.len()) > usize::from(u16::MAX) {
        return Err(OffloadError::Malformed);
    }
    let headers = &frame[..at.payload];
    let ip_id = u16::from_be_bytes([frame[at.ip + 4], frame[at.ip + 5]]);
    let seq = u32::from_be_bytes([
        frame[at.tcp + 4],
        frame[at.tcp + 5],
        frame[at.tcp + 6],
        frame[at.tcp + 7],
    ]);
    let flags = frame[at.tcp + TCP_FLAGS];
    let count = payload.len().div_ceil(mss).max(1);
    for i in 0..count {
        let chunk = &payload[(i * mss).min(payload.len())..((i + 1) * mss).min(payload.len())];
        scratch.clear();
        scratch.extend_from_slice(headers);
        scratch.extend_from_slice(chunk);
        let s = &mut scratch[..];
        if at.ipv4 {
            // CAST: At most u16::MAX, checked above.
            let total = (s.len() - at.ip) as u16;
            s[at.ip + 2..at.ip + 4].copy_from_slice(&total.to_be_bytes());
            // CAST: The ID wraps, as every segmenter's does.
            let id = ip_id.wrapping_add(i as u16);
            s[at.ip + 4..at.ip + 6].copy_from_slice(&id.to_be_bytes());
            s[at.ip + 10..at.ip + 12].fill(0);
            let check = !fold(ones_complement_add(0, &s[at.ip..at.tcp]));
            s[at.ip + 10..at.ip + 12].copy_from_slice(&check.to_be_bytes());
        } else {
            // CAST: At most u16::MAX, checked above.
            let payload_len = (s.len() - at.ip - IPV6_HLEN) as u16;
            s[at.ip + 4..at.ip + 6].copy_from_slice(&payload_len.to_be_bytes());
        }
        // CAST: A frame is at most 64 KiB: the offset fits a u32, and the
        // sequence number wraps as TCP's does.
        let seq = seq.wrapping_add((i * mss) as u32);
        s[at.tcp + 4..at.tcp + 8].copy_from_slice(&seq.to_be_bytes());
        let mut f = flags;
        if i + 1 < count {
            f &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            f &= !TCP_CWR;
        }
        s[at.tcp + TCP_FLAGS] = f;
        let check = tcp_checksum(s, &at);
        s[at.tcp + TCP_CHECKSUM..at.tcp + TCP_CHECKSUM + 2].copy_from_slice(&check.to_be_bytes());
        send(s);
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{internet_checksum, ETH_HLEN};

    /// An Ethernet/IPv4/TCP frame with `payload` bytes counting up, the
    /// checksums left as Linux leaves them for TSO (IPv4 header checksum
    /// and TCP checksum zero).
    fn tcp4(payload: usize, flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; ETH_HLEN + 20 + 20];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip = ETH_HLEN;
        f[ip] = 0x45;
        f[ip + 4..ip + 6].copy_from_slice(&0xfff0u16.to_be_bytes());
        f[ip + 6] = 0x40; // DF
        f[ip + 8] = 64;
        f[ip + 9] = IPPROTO_TCP;
        f[ip + 12..ip + 16].copy_from_slice(&[10, 0, 0, 1]);
        f[ip + 16..ip + 20].copy_from_slice(&[10, 0, 0, 2]);
        let tcp = ip + 20;
        f[tcp..tcp + 2].copy_from_slice(&40000u16.to_be_bytes());
        f[tcp + 2..tcp + 4].copy_from_slice(&5201u16.to_be_bytes());
        f[tcp + 4..tcp + 8].copy_from_slice(&0xffff_f000u32.to_be_bytes());
        f[tcp + 12] = 5 << 4;
        f[tcp + TCP_FLAGS] = flags;
        f.extend((0..payload).map(|i| i as u8));
        // CAST: Test frames are small.
        let total = (f.len() - ip) as u16;
        f[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        f
    }

    fn tcp6(payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; ETH_HLEN + 40 + 20];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let ip = ETH_HLEN;
        f[ip] = 0x60;
        f[ip + 6] = IPPROTO_TCP;
        f[ip + 7] = 64;
        f[ip + 8] = 0xfd;
        f[ip + 23] = 1;
        f[ip + 24] = 0xfd;
        f[ip + 39] = 2;
        let tcp = ip + 40;
        f[tcp + 12] = 5 << 4;
        f[tcp + TCP_FLAGS] = 0x18;
        f.extend((0..payload).map(|i| (i * 7) as u8));
        // CAST: Test frames are small.
        let payload_len = (f.len() - ip - 40) as u16;
        f[ip + 4..ip + 6].copy_from_slice(&payload_len.to_be_bytes());
        f
    }

    fn segments(frame: &[u8], mss: u16, max: usize) -> Result<Vec<Vec<u8>>, OffloadError> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        segment(frame, mss, max, &mut scratch, |s| out.push(s.to_vec()))?;
        Ok(out)
    }

    /// Whether the TCP checksum of a segment verifies (as a receiver
    /// checks it: the sum with the pseudo-header is all ones).
    fn tcp_ok(s: &[u8], ipv4: bool) -> bool {
        let at = parse_tcp(s).unwrap_or_else(|| unreachable!());
        assert_eq!(at.ipv4, ipv4);
        let want = u16::from_be_bytes([s[at.tcp + 16], s[at.tcp + 17]]);
        tcp_checksum(s, &at) == want
    }

    #[test]
    fn a_tso_frame_becomes_mss_sized_segments_with_their_own_headers() {
        let frame = tcp4(3000, 0x19); // FIN, PSH, ACK
        let segs = segments(&frame, 1448, 1514).unwrap_or_default();
        assert_eq!(segs.len(), 3);
        let mut payload = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let ip = &s[ETH_HLEN..ETH_HLEN + 20];
            assert_eq!(
                internet_checksum(ip),
                0,
                "IPv4 header checksum of segment {i}"
            );
            let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
            assert_eq!(total, s.len() - ETH_HLEN);
            // The ID counts up from the frame's, across its wrap.
            assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 0xfff0 + i as u16);
            let tcp = ETH_HLEN + 20;
            let seq = u32::from_be_bytes([s[tcp + 4], s[tcp + 5], s[tcp + 6], s[tcp + 7]]);
            assert_eq!(seq, 0xffff_f000u32.wrapping_add(1448 * i as u32));
            let last = i == 2;
            assert_eq!(s[tcp + TCP_FLAGS], if last { 0x19 } else { 0x10 });
            assert!(tcp_ok(s, true), "TCP checksum of segment {i}");
            payload.extend_from_slice(&s[tcp + 20..]);
        }
        assert_eq!((segs[0].len(), segs[2].len()), (54 + 1448, 54 + 104));
        assert_eq!(payload, frame[54..]);
    }

    #[test]
    fn ipv6_segments_carry_their_payload_length_and_checksum() {
        let frame = tcp6(4000);
        let segs = segments(&frame, 1000, 1514).unwrap_or_default();
        assert_eq!(segs.len(), 4);
        for s in &segs {
            let plen = u16::from_be_bytes([s[ETH_HLEN + 4], s[ETH_HLEN + 5]]) as usize;
            assert_eq!(plen, s.len() - ETH_HLEN - 40);
            assert!(tcp_ok(s, false));
        }
    }

    #[test]
    fn ipv6_extension_headers_are_kept_and_counted_in_the_payload_length() {
        // A destination options header (8 bytes of padding) before TCP.
        let plain = tcp6(2500);
        let ip = ETH_HLEN;
        let mut frame = plain[..ip + 40].to_vec();
        frame[ip + 6] = 60;
        frame.extend_from_slice(&[IPPROTO_TCP, 0, 1, 4, 0, 0, 0, 0]);
        frame.extend_from_slice(&plain[ip + 40..]);
        let payload_len = (frame.len() - ip - 40) as u16;
        frame[ip + 4..ip + 6].copy_from_slice(&payload_len.to_be_bytes());
        let segs = segments(&frame, 1000, 1514).unwrap_or_default();
        assert_eq!(segs.len(), 3);
        for s in &segs {
            assert_eq!(&s[ip + 40..ip + 48], &frame[ip + 40..ip + 48]);
            let plen = u16::from_be_bytes([s[ip + 4], s[ip + 5]]) as usize;
            assert_eq!(plen, s.len() - ip - 40);
            assert!(tcp_ok(s, false));
        }
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut frame = tcp4(6, 0x18);
        frame.resize(frame.len() + 6, 0xee);
        let segs = segments(&frame, 1000, 1514).unwrap_or_default();
        assert_eq!(segs.len(), 1);
        let end = frame.len() - 6;
        assert_eq!(segs[0].len(), end);
        assert_eq!(segs[0][54..], frame[54..end]);
        assert!(tcp_ok(&segs[0], true));
    }

    #[test]
    fn cwr_stays_on_the_first_segment_only() {
        let frame = tcp4(2000, 0x90); // CWR, ACK
        let segs = segments(&frame, 1000, 1514).unwrap_or_default();
        let flags: Vec<u8> = segs.iter().map(|s| s[ETH_HLEN + 20 + TCP_FLAGS]).collect();
        assert_eq!(flags, [0x90, 0x10]);
    }

    #[test]
    fn a_frame_that_is_not_tcp_or_too_small_an_mss_is_malformed() {
        let mut udp = tcp4(100, 0x10);
        udp[ETH_HLEN + 9] = 17;
        assert_eq!(segments(&udp, 1000, 1514), Err(OffloadError::Malformed));
        let mut fragment = tcp4(100, 0x10);
        fragment[ETH_HLEN + 6] = 0x20; // more fragments
        assert_eq!(
            segments(&fragment, 1000, 1514),
            Err(OffloadError::Malformed)
        );
        assert_eq!(
            segments(&tcp4(100, 0x10), 10, 1514),
            Err(OffloadError::Malformed)
        );
        // A TCP header longer than the frame.
        let mut short = tcp4(0, 0x10);
        short[ETH_HLEN + 20 + 12] = 15 << 4;
        assert_eq!(segments(&short, 1000, 1514), Err(OffloadError::Malformed));
        assert_eq!(
            segments(&short[..30], 1000, 1514),
            Err(OffloadError::Malformed)
        );
    }

    #[test]
    fn segments_longer_than_the_mtu_send_nothing() {
        assert_eq!(
            segments(&tcp4(3000, 0x10), 1460, 1500),
            Err(OffloadError::TooLong)
        );
    }

    #[test]
    fn a_frame_without_payload_is_sent_as_one_segment() {
        let segs = segments(&tcp4(0, 0x11), 1000, 1514).unwrap_or_default();
        assert_eq!(segs.len(), 1);
        assert!(tcp_ok(&segs[0], true));
    }

    #[test]
    fn the_inserted_checksum_is_what_a_receiver_verifies() {
        // Linux leaves the pseudo-header's sum in the field.
        let mut frame = tcp4(333, 0x18);
        let at = parse_tcp(&frame).unwrap_or_else(|| unreachable!());
        let mut pseudo = ones_complement_add(0, &frame[at.ip + 12..at.ip + 20]);
        pseudo += u64::from(IPPROTO_TCP) + (frame.len() - at.tcp) as u64;
        let seed = fold(pseudo);
        frame[at.tcp + 16..at.tcp + 18].copy_from_slice(&seed.to_be_bytes());
        // CAST: Test offsets are small.
        assert_eq!(insert_checksum(&mut frame, at.tcp as u16, 16), Ok(()));
        assert!(tcp_ok(&frame, true));
        let len = frame.len() as u16;
        assert_eq!(
            insert_checksum(&mut frame, len - 1, 0),
            Err(OffloadError::Malformed)
        );
        assert_eq!(
            insert_checksum(&mut frame, u16::MAX, 255),
            Err(OffloadError::Malformed)
        );
    }

    #[test]
    fn descriptor_fields_select_the_offload() {
        let d = desc::encode_tx_offload(0, 60, desc::TX_FLAG_EOP | desc::TX_FLAG_CSUM, 34, 16);
        let flags = desc::decode(&d).2;
        assert_eq!(
            TxOffload::of_descriptor(flags, &d),
            TxOffload::Checksum {
                start: 34,
                offset: 16
            }
        );
        let flags = desc::TX_FLAG_TSO | desc::TX_FLAG_CSUM;
        let d = desc::encode_tx_offload(0, 60, flags, 1448, 0);
        assert_eq!(
            TxOffload::of_descriptor(flags, &d),
            TxOffload::Segment { mss: 1448 }
        );
        assert_eq!(TxOffload::of_descriptor(0, &d), TxOffload::None);
    }
}
