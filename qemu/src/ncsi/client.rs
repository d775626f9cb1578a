// SPDX-License-Identifier: GPL-2.0

//! NC-SI as a management controller speaks it: command frames and the
//! answers, for clients of the sideband (tests, `bmgnic-rmectl`), and the
//! framing the responder's answers share.

use super::ncsi_oem::{self, OemHeader};
use bmgnic_wire::ncsi::{frame_len, parse_frame, write_frame, Header, ETH_ALEN, MAX_PAYLOAD};

/// Builds an NC-SI command frame as a management controller sends it:
/// broadcast from `src`, `kind` for `channel` (package in 7:5, channel in
/// 4:0) with instance ID `iid`, the payload padded to 32 bits and the
/// checksum appended. For clients of the sideband (tests, `bmgnic-rmectl`).
pub fn command_frame(src: [u8; 6], iid: u8, kind: u8, channel: u8, payload: &[u8]) -> Vec<u8> {
    let header = Header {
        mc_id: 0,
        iid,
        packet_type: kind,
        channel,
    };
    framed(&src, &header, payload)
}

/// `payload` framed behind `header`, from `src`; a payload beyond
/// [`MAX_PAYLOAD`] is cut there (every caller bounds its payloads).
pub(super) fn framed(src: &[u8; ETH_ALEN], header: &Header, payload: &[u8]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(MAX_PAYLOAD)];
    let mut frame = vec![0; frame_len(payload.len())];
    let len = write_frame(&mut frame, src, header, payload.len(), |p| {
        p.copy_from_slice(payload)
    })
    .unwrap_or(0);
    frame.truncate(len);
    frame
}

/// The payload of a BMGNIC OEM command: manufacturer ID, OEM header and
/// `records` (already encoded, `count` of them). For sideband clients.
pub fn oem_command_payload(op: u8, object: u8, count: u8, records: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(ncsi_oem::COMMAND_PREFIX + records.len());
    p.extend_from_slice(&ncsi_oem::MANUFACTURER_ID.to_be_bytes());
    let mut header = [0u8; <OemHeader as ncsi_oem::Record>::LEN];
    ncsi_oem::Record::encode(
        &OemHeader {
            version: ncsi_oem::OEM_VERSION,
            op,
            object,
            count,
        },
        &mut header,
    );
    p.extend_from_slice(&header);
    p.extend_from_slice(records);
    p
}

/// A packet a sideband client received: a response or an AEN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    /// Instance ID (0 for AENs).
    pub iid: u8,
    /// Packet type: a command's type with [`RESPONSE_BIT`], or
    /// [`AEN_PACKET_TYPE`].
    pub kind: u8,
    /// The payload, without padding and checksum.
    pub payload: &'a [u8],
}

/// Splits a frame a sideband client received into IID, type and payload;
/// `None` if it is not a well-formed NC-SI packet. For sideband clients.
pub fn parse_received(frame: &[u8]) -> Option<Received<'_>> {
    let (header, payload) = parse_frame(frame).ok()?;
    Some(Received {
        iid: header.iid,
        kind: header.packet_type,
        payload,
    })
}
