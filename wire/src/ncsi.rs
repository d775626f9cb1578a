// SPDX-License-Identifier: GPL-2.0 OR MIT

//! NC-SI control packet framing (DMTF DSP0222 1.1): the layout, checksum,
//! command types and response, reason and AEN codes that the RME's client
//! (`bmgnic_rme`) and the model's responder (`qemu/src/ncsi.rs`) share.
//!
//! Core-only (no `std`, no `kernel`, no allocation); see the crate
//! documentation (`wire/src/lib.rs`) for how each side builds it.
//!
//! Every control packet is an Ethernet frame, all fields big-endian:
//!
//! ```text
//! Ethernet  destination (6)  source (6)  ethertype 0x88f8 (2)
//! header    MC ID | revision 0x01 | reserved | IID | type | channel ID |
//!           reserved:4 payload length:12 (2) | reserved (8)
//! payload   `payload length` bytes, zero-padded to a multiple of 4
//! checksum  two's complement of the 32-bit sum of the header and payload
//!           read as big-endian 16-bit words; 0 means "not computed"
//! padding   zeros up to the 60-byte Ethernet minimum
//! ```
//!
//! The channel ID holds the package ID in bits 7:5 and the internal
//! channel ID in bits 4:0; internal channel [`PACKAGE_CHANNEL`] addresses
//! the package itself.
//!
//! Documented in `Documentation/bmgnic/ncsi.rst`.

// Public for the model, whose library exports it; each side uses a subset.
#![allow(dead_code, unreachable_pub)]

/// NC-SI ethertype.
pub const ETHERTYPE: u16 = 0x88f8;

/// Length of an Ethernet address.
pub const ETH_ALEN: usize = 6;
/// Length of the Ethernet header.
pub const ETH_HLEN: usize = 14;
/// Shortest Ethernet frame without its FCS; shorter frames are padded.
pub const ETH_ZLEN: usize = 60;
/// Ethernet broadcast address: the destination of every control packet
/// (Linux's `net/ncsi` sends commands from the broadcast address until it
/// learns a MAC, and an MC's NIC receives broadcast whatever its filters).
pub const BROADCAST: [u8; ETH_ALEN] = [0xff; ETH_ALEN];

/// Length of the control packet header.
pub const HEADER_LEN: usize = 16;
/// Length of the checksum after the padded payload.
pub const CHECKSUM_LEN: usize = 4;
/// Control packet header revision of DSP0222 1.x.
pub const HEADER_REVISION: u8 = 0x01;
/// Payload length bits of header bytes 6-7; the top 4 bits are reserved.
pub const PAYLOAD_LENGTH_MASK: u16 = 0x0fff;
/// Response and reason codes at the start of a response payload.
pub const CODES_LEN: usize = 4;
/// Largest payload that fits a 1500-byte sideband frame (16-byte control
/// header and 4-byte checksum).
pub const MAX_PAYLOAD: usize = 1480;
/// Longest control packet frame: a payload of [`MAX_PAYLOAD`].
pub const MAX_FRAME_LEN: usize = ETH_HLEN + HEADER_LEN + MAX_PAYLOAD + CHECKSUM_LEN;

/// Bit of a control packet type that marks a response.
pub const RESPONSE_BIT: u8 = 0x80;
/// Control packet type of AENs.
pub const AEN_PACKET_TYPE: u8 = 0xff;
/// Internal channel ID that addresses a package rather than a channel.
pub const PACKAGE_CHANNEL: u8 = 0x1f;

/// Command types (DSP0222 table 17).
pub mod cmd {
    /// Clear Initial State.
    pub const CLEAR_INITIAL_STATE: u8 = 0x00;
    /// Select Package.
    pub const SELECT_PACKAGE: u8 = 0x01;
    /// Deselect Package.
    pub const DESELECT_PACKAGE: u8 = 0x02;
    /// Enable Channel.
    pub const ENABLE_CHANNEL: u8 = 0x03;
    /// Disable Channel.
    pub const DISABLE_CHANNEL: u8 = 0x04;
    /// Reset Channel.
    pub const RESET_CHANNEL: u8 = 0x05;
    /// Enable Channel Network TX.
    pub const ENABLE_CHANNEL_TX: u8 = 0x06;
    /// Disable Channel Network TX.
    pub const DISABLE_CHANNEL_TX: u8 = 0x07;
    /// AEN Enable.
    pub const AEN_ENABLE: u8 = 0x08;
    /// Set Link.
    pub const SET_LINK: u8 = 0x09;
    /// Get Link Status.
    pub const GET_LINK_STATUS: u8 = 0x0a;
    /// Set VLAN Filter.
    pub const SET_VLAN_FILTER: u8 = 0x0b;
    /// Enable VLAN.
    pub const ENABLE_VLAN: u8 = 0x0c;
    /// Disable VLAN.
    pub const DISABLE_VLAN: u8 = 0x0d;
    /// Set MAC Address.
    pub const SET_MAC_ADDRESS: u8 = 0x0e;
    /// Enable Broadcast Filter.
    pub const ENABLE_BROADCAST_FILTER: u8 = 0x10;
    /// Disable Broadcast Filter.
    pub const DISABLE_BROADCAST_FILTER: u8 = 0x11;
    /// Enable Global Multicast Filter.
    pub const ENABLE_MULTICAST_FILTER: u8 = 0x12;
    /// Disable Global Multicast Filter.
    pub const DISABLE_MULTICAST_FILTER: u8 = 0x13;
    /// Set NC-SI Flow Control.
    pub const SET_FLOW_CONTROL: u8 = 0x14;
    /// Get Version ID.
    pub const GET_VERSION_ID: u8 = 0x15;
    /// Get Capabilities.
    pub const GET_CAPABILITIES: u8 = 0x16;
    /// Get Parameters.
    pub const GET_PARAMETERS: u8 = 0x17;
    /// Get Controller Packet Statistics.
    pub const GET_PACKET_STATISTICS: u8 = 0x18;
    /// Get NC-SI Statistics.
    pub const GET_NCSI_STATISTICS: u8 = 0x19;
    /// Get NC-SI Pass-through Statistics.
    pub const GET_PASSTHROUGH_STATISTICS: u8 = 0x1a;
    /// Get Package Status.
    pub const GET_PACKAGE_STATUS: u8 = 0x1b;
    /// OEM Command: the BMGNIC OEM command set (`ncsi_oem`).
    pub const OEM: u8 = 0x50;
}

/// Response code: Command Completed.
pub const RESPONSE_COMPLETED: u16 = 0x0000;
/// Response code: Command Failed.
pub const RESPONSE_FAILED: u16 = 0x0001;
/// Response code: Command Unavailable (transient).
pub const RESPONSE_UNAVAILABLE: u16 = 0x0002;
/// Response code: Command Unsupported.
pub const RESPONSE_UNSUPPORTED: u16 = 0x0003;

/// Reason code: no error.
pub const REASON_NONE: u16 = 0x0000;
/// Reason code: Interface Initialization Required (the channel is in the
/// Initial State: Clear Initial State first).
pub const REASON_INIT_REQUIRED: u16 = 0x0001;
/// Reason code: Parameter Is Invalid, Unsupported, or Out-of-Range.
pub const REASON_PARAMETER_INVALID: u16 = 0x0002;
/// Reason code: Channel Not Ready.
pub const REASON_CHANNEL_NOT_READY: u16 = 0x0003;
/// Reason code: Package Not Ready.
pub const REASON_PACKAGE_NOT_READY: u16 = 0x0004;
/// Reason code: Invalid payload length.
pub const REASON_PAYLOAD_LENGTH: u16 = 0x0005;
/// Reason code of Set VLAN Filter: VLAN tag is invalid.
pub const REASON_VLAN_TAG_INVALID: u16 = 0x0b07;
/// Reason code of Set MAC Address: MAC address is zero.
pub const REASON_MAC_ADDRESS_ZERO: u16 = 0x0e08;
/// Reason code: Unknown / Unsupported Command Type.
pub const REASON_UNKNOWN_COMMAND: u16 = 0x7fff;

/// AEN type: Link Status Change.
pub const AEN_LINK_STATUS_CHANGE: u8 = 0x00;
/// AEN Enable control bit: Link Status Change AENs.
pub const AEN_ENABLE_LINK_STATUS: u32 = 1 << 0;
/// Link status word (Get Link Status, Link Status Change AEN): bit 0,
/// the link is up.
pub const LINK_STATUS_LINK_UP: u32 = 1 << 0;

/// Why a frame is not a well-formed control packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than its headers, payload length and checksum.
    Truncated,
    /// Not ethertype [`ETHERTYPE`].
    NotNcsi,
    /// An unknown control packet header revision.
    BadRevision,
    /// The checksum does not match.
    Checksum,
    /// The payload exceeds [`MAX_PAYLOAD`] or the buffer is too small.
    TooLong,
}

/// The fields of a control packet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Management controller ID.
    pub mc_id: u8,
    /// Instance ID: pairs a response with its command; 0 in AENs.
    pub iid: u8,
    /// Control packet type: a command type, with [`RESPONSE_BIT`] for its
    /// response, or [`AEN_PACKET_TYPE`].
    pub packet_type: u8,
    /// Package ID (bits 7:5) and internal channel ID (bits 4:0).
    pub channel: u8,
}

/// Big-endian u16 at `at`, if `b` is long enough.
pub fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(*b.get(at..)?.first_chunk::<2>()?))
}

/// Big-endian u32 at `at`, if `b` is long enough.
pub fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(*b.get(at..)?.first_chunk::<4>()?))
}

/// Rounds a payload length up to the 32-bit boundary of the checksum.
pub const fn padded(len: usize) -> usize {
    len.div_ceil(4) * 4
}

/// Length of the frame that carries a payload of `payload_len` bytes.
pub const fn frame_len(payload_len: usize) -> usize {
    let len = ETH_HLEN + HEADER_LEN + padded(payload_len) + CHECKSUM_LEN;
    if len < ETH_ZLEN {
        ETH_ZLEN
    } else {
        len
    }
}

/// DSP0222 checksum of `data` (header and payload): the two's complement
/// of the 32-bit sum of its big-endian 16-bit words. An odd trailing byte
/// is the high byte of a word whose low byte is the zero pad.
pub fn checksum(data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(2);
    let mut sum = 0u32;
    for word in &mut words {
        if let [hi, lo] = *word {
            sum = sum.wrapping_add(u32::from(u16::from_be_bytes([hi, lo])));
        }
    }
    if let [hi] = *words.remainder() {
        sum = sum.wrapping_add(u32::from(hi) << 8);
    }
    sum.wrapping_neg()
}

/// Frames a control packet into the start of `buf`: broadcast from `src`,
/// `header`, a payload of `payload_len` bytes that `fill` writes into the
/// (zeroed) slice it is given, the checksum and the Ethernet padding.
/// Returns the frame length, [`frame_len`]`(payload_len)`.
pub fn write_frame(
    buf: &mut [u8],
    src: &[u8; ETH_ALEN],
    header: &Header,
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Result<usize, FrameError> {
    if payload_len > MAX_PAYLOAD {
        return Err(FrameError::TooLong);
    }
    let len = frame_len(payload_len);
    let end = ETH_HLEN + HEADER_LEN + padded(payload_len);
    let out = buf.get_mut(..len).ok_or(FrameError::TooLong)?;
    out.fill(0);
    // `len` is at least `ETH_ZLEN` and `end + CHECKSUM_LEN`, so every
    // index below is in range.
    out[0..6].copy_from_slice(&BROADCAST);
    out[6..12].copy_from_slice(src);
    out[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    out[14..20].copy_from_slice(&[
        header.mc_id,
        HEADER_REVISION,
        0,
        header.iid,
        header.packet_type,
        header.channel,
    ]);
    // At most MAX_PAYLOAD (checked above): fits the 12-bit field.
    let field = payload_len as u16 & PAYLOAD_LENGTH_MASK;
    out[20..22].copy_from_slice(&field.to_be_bytes());
    let start = ETH_HLEN + HEADER_LEN;
    fill(&mut out[start..start + payload_len]);
    let sum = checksum(&out[ETH_HLEN..end]);
    out[end..end + CHECKSUM_LEN].copy_from_slice(&sum.to_be_bytes());
    Ok(len)
}

/// Parses a control packet (the frame after its Ethernet header): header
/// revision, payload length within the packet, checksum when not zero.
/// Returns the header and the payload without its padding.
pub fn parse_packet(packet: &[u8]) -> Result<(Header, &[u8]), FrameError> {
    let Some(&[mc_id, revision, _, iid, packet_type, channel, len_hi, len_lo, ..]) =
        packet.first_chunk::<HEADER_LEN>()
    else {
        return Err(FrameError::Truncated);
    };
    if revision != HEADER_REVISION {
        return Err(FrameError::BadRevision);
    }
    let len = usize::from(u16::from_be_bytes([len_hi, len_lo]) & PAYLOAD_LENGTH_MASK);
    let covered = packet
        .get(..HEADER_LEN + len)
        .ok_or(FrameError::Truncated)?;
    let sum = be32(packet, HEADER_LEN + padded(len)).ok_or(FrameError::Truncated)?;
    // A zero checksum means the sender did not compute one (DSP0222).
    if sum != 0 && checksum(covered) != sum {
        return Err(FrameError::Checksum);
    }
    let header = Header {
        mc_id,
        iid,
        packet_type,
        channel,
    };
    Ok((header, covered.get(HEADER_LEN..).unwrap_or_default()))
}

/// Parses an Ethernet frame as a control packet: ethertype, then
/// [`parse_packet`].
pub fn parse_frame(frame: &[u8]) -> Result<(Header, &[u8]), FrameError> {
    let ethertype = be16(frame, 12).ok_or(FrameError::Truncated)?;
    if ethertype != ETHERTYPE {
        return Err(FrameError::NotNcsi);
    }
    parse_packet(frame.get(ETH_HLEN..).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: [u8; ETH_ALEN] = [0x02, 0, 0, 0, 0, 0x01];

    fn header() -> Header {
        Header {
            mc_id: 0,
            iid: 7,
            packet_type: cmd::GET_VERSION_ID,
            channel: 0x00,
        }
    }

    #[test]
    fn frame_round_trips() {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let len = write_frame(&mut buf, &SRC, &header(), 5, |p| {
            p.copy_from_slice(b"hello")
        })
        .unwrap();
        assert_eq!(len, ETH_ZLEN);
        let (h, payload) = parse_frame(&buf[..len]).unwrap();
        assert_eq!(h, header());
        assert_eq!(payload, b"hello");
    }

    #[test]
    fn long_frames_are_not_padded_and_too_long_is_refused() {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let len = write_frame(&mut buf, &SRC, &header(), MAX_PAYLOAD, |_| {}).unwrap();
        assert_eq!(len, MAX_FRAME_LEN);
        assert_eq!(
            write_frame(&mut buf, &SRC, &header(), MAX_PAYLOAD + 1, |_| {}),
            Err(FrameError::TooLong)
        );
        assert_eq!(
            write_frame(&mut buf[..59], &SRC, &header(), 0, |_| {}),
            Err(FrameError::TooLong)
        );
    }

    #[test]
    fn corrupted_frames_are_refused() {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let len = write_frame(&mut buf, &SRC, &header(), 8, |p| p.fill(0xa5)).unwrap();
        let mut bad = buf;
        bad[ETH_HLEN + HEADER_LEN] ^= 1;
        assert_eq!(parse_frame(&bad[..len]), Err(FrameError::Checksum));
        let mut bad = buf;
        bad[ETH_HLEN + 1] = 2;
        assert_eq!(parse_frame(&bad[..len]), Err(FrameError::BadRevision));
        let mut bad = buf;
        bad[12] = 0x08;
        assert_eq!(parse_frame(&bad[..len]), Err(FrameError::NotNcsi));
        assert_eq!(
            parse_frame(&buf[..ETH_HLEN + HEADER_LEN + 8]),
            Err(FrameError::Truncated)
        );
        // A zero checksum is "not computed": accepted.
        let mut unsummed = buf;
        unsummed[ETH_HLEN + HEADER_LEN + 8..ETH_HLEN + HEADER_LEN + 12].fill(0);
        assert!(parse_frame(&unsummed[..len]).is_ok());
    }

    #[test]
    fn checksum_of_odd_length_pads_the_last_byte() {
        assert_eq!(
            checksum(&[0x12, 0x34, 0x56]),
            (0x1234u32 + 0x5600).wrapping_neg()
        );
        assert_eq!(checksum(&[]), 0);
    }
}
