// SPDX-License-Identifier: GPL-2.0

//! NC-SI client codec of the RME (DMTF DSP0222 1.1).
//!
//! Pure framing and bookkeeping, no I/O: building command frames into a
//! caller's buffer, parsing responses and AENs, allocating instance IDs
//! (IIDs) and pairing responses with the commands they answer. The BMGNIC
//! OEM layouts come from [`crate::ncsi_oem`], shared with the device model.
//!
//! The control packet layout, checksum and codes are the shared ones of
//! [`crate::ncsi`]; this module adds what only a management controller
//! does with them.
//!
//! Errors are [`NcsiError`]s; converted to kernel error codes they are:
//!
//! - `EINVAL`: the caller asked for something invalid (a payload beyond
//!   [`ncsi::MAX_PAYLOAD`], a buffer too small), or the NIC refused a
//!   parameter, a length, a record, a count or an index.
//! - `EOPNOTSUPP`: the NIC does not implement the command, OEM object or
//!   operation.
//! - `EAGAIN`: the NIC answered "Command Unavailable" (transient).
//! - `EIO`: the NIC's answer is unusable (truncated, bad revision or
//!   checksum, not what was asked), or it failed for a reason the caller
//!   cannot fix, such as "Interface Initialization Required" (the channel
//!   was reset: run [`STARTUP`] again).
//! - `EBUSY`: all 255 IIDs are in flight.
//! - `ETIMEDOUT`: no matching response arrived within the transport's
//!   timeout after its retries ([`NcsiError::Timeout`]; this codec has no
//!   clock, the sideband transport raises it and [`Matcher::cancel`]s the
//!   IID so that a late answer is rejected as stale).

use crate::ncsi::{
    self, be16, be32, cmd, FrameError, Header, AEN_ENABLE_LINK_STATUS, AEN_LINK_STATUS_CHANGE,
    AEN_PACKET_TYPE, CODES_LEN, REASON_INIT_REQUIRED, REASON_PARAMETER_INVALID,
    REASON_PAYLOAD_LENGTH, REASON_UNKNOWN_COMMAND, RESPONSE_BIT, RESPONSE_COMPLETED,
    RESPONSE_UNAVAILABLE, RESPONSE_UNSUPPORTED,
};
use crate::ncsi_oem::{self, MissEvent, OemHeader, Record, ViolationEvent};
use kernel::prelude::*;

/// Management controller ID of the RME (DSP0222: 0 unless assigned).
pub(crate) const MC_ID: u8 = 0x00;
/// Channel ID of package 0, channel 0, the BMGNIC's only channel (package
/// ID in bits 7:5, internal channel ID in bits 4:0).
pub(crate) const CHANNEL_0: u8 = 0x00;

/// Why a frame could not be built or parsed, or a command did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NcsiError {
    /// The command does not fit [`ncsi::MAX_PAYLOAD`] or the buffer.
    TooLong,
    /// Shorter than its headers, payload length and checksum.
    Truncated,
    /// Not ethertype 0x88f8.
    NotNcsi,
    /// An unknown control packet header revision.
    BadRevision,
    /// The checksum does not match.
    Checksum,
    /// Well formed, but not an answer to what was asked: a command (ours
    /// looped back, or another controller's), an OEM answer of another
    /// manufacturer, object or operation, a record that does not decode.
    Unexpected,
    /// A response to no outstanding command of that IID and type: late
    /// (its command timed out) or duplicated.
    Stale,
    /// All 255 IIDs are in flight.
    NoIid,
    /// The NIC answered with a response code other than Command Completed.
    Failed {
        /// DSP0222 response code.
        code: u16,
        /// DSP0222 or BMGNIC OEM (`ncsi_oem::REASON_*`) reason code.
        reason: u16,
    },
    /// No matching response within the transport's timeout and retries.
    Timeout,
}

impl From<NcsiError> for Error {
    fn from(e: NcsiError) -> Error {
        match e {
            NcsiError::TooLong => EINVAL,
            NcsiError::Truncated
            | NcsiError::NotNcsi
            | NcsiError::BadRevision
            | NcsiError::Checksum
            | NcsiError::Unexpected
            | NcsiError::Stale => EIO,
            NcsiError::NoIid => EBUSY,
            NcsiError::Timeout => ETIMEDOUT,
            NcsiError::Failed { code, reason } => match (code, reason) {
                (RESPONSE_UNSUPPORTED, _) => EOPNOTSUPP,
                (RESPONSE_UNAVAILABLE, _) => EAGAIN,
                (
                    _,
                    REASON_PARAMETER_INVALID
                    | REASON_PAYLOAD_LENGTH
                    | ncsi_oem::REASON_BAD_INDEX
                    | ncsi_oem::REASON_BAD_RECORD
                    | ncsi_oem::REASON_BAD_COUNT,
                ) => EINVAL,
                (
                    _,
                    REASON_UNKNOWN_COMMAND
                    | ncsi_oem::REASON_BAD_VERSION
                    | ncsi_oem::REASON_UNKNOWN_OBJECT
                    | ncsi_oem::REASON_BAD_OP,
                ) => EOPNOTSUPP,
                // The channel lost its state (the NIC was reset or
                // replaced): the RME must set it up again.
                (_, REASON_INIT_REQUIRED) => ENOTCONN,
                // Channel or package not ready, or a reason this client
                // does not know.
                _ => EIO,
            },
        }
    }
}

impl From<FrameError> for NcsiError {
    fn from(e: FrameError) -> NcsiError {
        match e {
            FrameError::Truncated => NcsiError::Truncated,
            FrameError::NotNcsi => NcsiError::NotNcsi,
            FrameError::BadRevision => NcsiError::BadRevision,
            FrameError::Checksum => NcsiError::Checksum,
            FrameError::TooLong => NcsiError::TooLong,
        }
    }
}

/// Where commands come from and go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// Source MAC: the sideband device's address.
    pub(crate) src: [u8; ncsi::ETH_ALEN],
    /// Channel ID of the commands, normally [`CHANNEL_0`].
    pub(crate) channel: u8,
}

/// Frames a command into the start of `buf` and returns the frame
/// length. `fill` writes the payload into the (zeroed) slice it is given.
fn frame(
    buf: &mut [u8],
    ep: &Endpoint,
    iid: u8,
    packet_type: u8,
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Result<usize, NcsiError> {
    let header = Header {
        mc_id: MC_ID,
        iid,
        packet_type,
        channel: ep.channel,
    };
    Ok(ncsi::write_frame(buf, &ep.src, &header, payload_len, fill)?)
}

/// Builds a command frame of `packet_type` with `payload` into `buf` and
/// returns its length (at least [`ncsi::ETH_ZLEN`], at most [`ncsi::MAX_FRAME_LEN`]).
pub(crate) fn build_command(
    buf: &mut [u8],
    ep: &Endpoint,
    iid: u8,
    packet_type: u8,
    payload: &[u8],
) -> Result<usize, NcsiError> {
    frame(buf, ep, iid, packet_type, payload.len(), |p| {
        p.copy_from_slice(payload)
    })
}

/// One command of the start-up sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    /// Command type.
    pub(crate) packet_type: u8,
    /// Its payload.
    pub(crate) payload: &'static [u8],
}

/// AEN Enable payload: 3 reserved bytes, the MC ID that AENs carry, the
/// AEN control bits.
const fn aen_enable_payload(control: u32) -> [u8; 8] {
    let c = control.to_be_bytes();
    [0, 0, 0, MC_ID, c[0], c[1], c[2], c[3]]
}

/// The AEN Enable payload of [`STARTUP`]: link and BMGNIC OEM AENs.
const AEN_ENABLE_PAYLOAD: [u8; 8] =
    aen_enable_payload(AEN_ENABLE_LINK_STATUS | ncsi_oem::AEN_ENABLE_OEM);

/// What a BMC sends to a channel before using it, in order: leave the
/// Initial State, identify the controller (the manufacturer ID of Get
/// Version ID tells a BMGNIC), learn its capabilities (whether it offers
/// OEM AENs), enable the channel and its AENs, then read the link state
/// (after AEN Enable, so that no change falls between the read and the
/// first Link Status Change AEN).
pub(crate) const STARTUP: [Step; 6] = [
    Step {
        packet_type: cmd::CLEAR_INITIAL_STATE,
        payload: &[],
    },
    Step {
        packet_type: cmd::GET_VERSION_ID,
        payload: &[],
    },
    Step {
        packet_type: cmd::GET_CAPABILITIES,
        payload: &[],
    },
    Step {
        packet_type: cmd::ENABLE_CHANNEL,
        payload: &[],
    },
    Step {
        packet_type: cmd::AEN_ENABLE,
        payload: &AEN_ENABLE_PAYLOAD,
    },
    Step {
        packet_type: cmd::GET_LINK_STATUS,
        payload: &[],
    },
];

/// Largest number of records of `record_len` bytes one OEM command
/// carries when its answer holds `answer_len` bytes per record (0: the
/// answer holds no records, as for SET): both the command and the answer
/// must fit [`ncsi::MAX_PAYLOAD`], and the count fits a byte.
pub(crate) const fn batch_limit(record_len: usize, answer_len: usize) -> usize {
    if record_len == 0 {
        return 0;
    }
    let by_command = (ncsi::MAX_PAYLOAD - ncsi_oem::COMMAND_PREFIX) / record_len;
    let by_answer = if answer_len == 0 {
        255
    } else {
        ncsi_oem::max_records(answer_len)
    };
    let n = if by_command < by_answer {
        by_command
    } else {
        by_answer
    };
    if n > 255 {
        255
    } else {
        n
    }
}

/// Builds a BMGNIC OEM command `op` on `object` carrying the first records
/// of `records` that fit one command ([`batch_limit`] with `answer_len`
/// bytes of answer per record). Returns the frame length and the number of
/// records taken; the caller sends the rest in further commands.
pub(crate) fn build_oem<R: Record>(
    buf: &mut [u8],
    ep: &Endpoint,
    iid: u8,
    op: u8,
    object: u8,
    records: &[R],
    answer_len: usize,
) -> Result<(usize, usize), NcsiError> {
    let n = records.len().min(batch_limit(R::LEN, answer_len));
    if n == 0 && !records.is_empty() {
        return Err(NcsiError::TooLong);
    }
    let header = OemHeader {
        version: ncsi_oem::OEM_VERSION,
        op,
        object,
        // `batch_limit` is at most 255.
        count: n as u8,
    };
    let len = ncsi_oem::COMMAND_PREFIX + n * R::LEN;
    let frame_len = frame(buf, ep, iid, cmd::OEM, len, |p| {
        p[0..4].copy_from_slice(&ncsi_oem::MANUFACTURER_ID.to_be_bytes());
        header.encode(&mut p[4..ncsi_oem::COMMAND_PREFIX]);
        for (i, r) in records.iter().take(n).enumerate() {
            let at = ncsi_oem::COMMAND_PREFIX + i * R::LEN;
            if let Some(out) = p.get_mut(at..at + R::LEN) {
                r.encode(out);
            }
        }
    })?;
    Ok((frame_len, n))
}

/// A response to a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Response<'a> {
    /// Instance ID, echoed from the command.
    pub(crate) iid: u8,
    /// Type of the command answered (the packet type without
    /// [`RESPONSE_BIT`]).
    pub(crate) command: u8,
    /// Channel ID.
    pub(crate) channel: u8,
    /// DSP0222 response code.
    pub(crate) code: u16,
    /// DSP0222 (or OEM) reason code.
    pub(crate) reason: u16,
    /// The payload after the response and reason codes.
    pub(crate) data: &'a [u8],
}

impl<'a> Response<'a> {
    /// The data of a completed command, or [`NcsiError::Failed`].
    pub(crate) fn result(&self) -> Result<&'a [u8], NcsiError> {
        if self.code == RESPONSE_COMPLETED {
            Ok(self.data)
        } else {
            Err(NcsiError::Failed {
                code: self.code,
                reason: self.reason,
            })
        }
    }
}

/// An asynchronous event notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Aen {
    /// Link Status Change: the Get Link Status link status word.
    LinkStatus {
        /// Bit 0: link up; bits 4:1 speed and duplex.
        status: u32,
    },
    /// BMGNIC OEM: a guest packet missed the NIC's flow table.
    TableMiss(MissEvent),
    /// BMGNIC OEM: a spoofed frame or a read-only register write.
    Violation(ViolationEvent),
    /// Another AEN type, or an OEM AEN of another manufacturer or an
    /// unknown BMGNIC event: ignored.
    Other {
        /// The AEN type.
        aen_type: u8,
    },
}

/// A control packet received from the NIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Packet<'a> {
    /// A response, to be paired with its command by a [`Matcher`].
    Response(Response<'a>),
    /// An AEN.
    Aen(Aen),
}

/// Parses a frame received on the sideband: ethertype, header revision,
/// payload length within the frame, checksum (when not zero), then a
/// response or an AEN. Commands (type without [`RESPONSE_BIT`]) are
/// [`NcsiError::Unexpected`].
pub(crate) fn parse(frame: &[u8]) -> Result<Packet<'_>, NcsiError> {
    let (header, payload) = ncsi::parse_frame(frame)?;
    let Header {
        iid,
        packet_type,
        channel,
        ..
    } = header;
    if packet_type == AEN_PACKET_TYPE {
        return parse_aen(payload).map(Packet::Aen);
    }
    if packet_type & RESPONSE_BIT == 0 {
        return Err(NcsiError::Unexpected);
    }
    let code = be16(payload, 0).ok_or(NcsiError::Truncated)?;
    let reason = be16(payload, 2).ok_or(NcsiError::Truncated)?;
    Ok(Packet::Response(Response {
        iid,
        command: packet_type & !RESPONSE_BIT,
        channel,
        code,
        reason,
        data: payload.get(CODES_LEN..).unwrap_or_default(),
    }))
}

/// Decodes the first record of `b`.
fn decode<R: Record>(b: &[u8]) -> Result<R, NcsiError> {
    let bytes = b.get(..R::LEN).ok_or(NcsiError::Truncated)?;
    R::decode(bytes).ok_or(NcsiError::Unexpected)
}

/// Parses an AEN payload: 3 reserved bytes and the AEN type, then the
/// type's data; for [`ncsi_oem::AEN_OEM`] the manufacturer ID, event, 3
/// reserved bytes and the event's body.
fn parse_aen(payload: &[u8]) -> Result<Aen, NcsiError> {
    let aen_type = *payload.get(3).ok_or(NcsiError::Truncated)?;
    match aen_type {
        AEN_LINK_STATUS_CHANGE => Ok(Aen::LinkStatus {
            status: be32(payload, 4).ok_or(NcsiError::Truncated)?,
        }),
        ncsi_oem::AEN_OEM => {
            let mfr = be32(payload, 4).ok_or(NcsiError::Truncated)?;
            let event = *payload.get(8).ok_or(NcsiError::Truncated)?;
            if mfr != ncsi_oem::MANUFACTURER_ID {
                return Ok(Aen::Other { aen_type });
            }
            let body = payload
                .get(4 + ncsi_oem::AEN_PREFIX..)
                .ok_or(NcsiError::Truncated)?;
            match event {
                ncsi_oem::EVENT_TABLE_MISS => decode(body).map(Aen::TableMiss),
                ncsi_oem::EVENT_VIOLATION => decode(body).map(Aen::Violation),
                _ => Ok(Aen::Other { aen_type }),
            }
        }
        _ => Ok(Aen::Other { aen_type }),
    }
}

/// A completed BMGNIC OEM response: the echoed header and the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OemReply<'a> {
    /// The echoed header; `count` is the number of records answered.
    pub(crate) header: OemHeader,
    records: &'a [u8],
}

impl OemReply<'_> {
    /// Number of records answered.
    pub(crate) fn count(&self) -> usize {
        usize::from(self.header.count)
    }

    /// Record `index` of the answer, if there is one and it decodes.
    pub(crate) fn record<R: Record>(&self, index: usize) -> Option<R> {
        if index >= self.count() {
            return None;
        }
        let at = index.checked_mul(R::LEN)?;
        R::decode(self.records.get(at..)?.get(..R::LEN)?)
    }
}

/// Checks that `resp` answers BMGNIC OEM operation `op` on `object`
/// successfully, with `count` records of `answer_len` bytes, and returns
/// them. A failed command is [`NcsiError::Failed`] with the OEM reason.
pub(crate) fn parse_oem_reply<'a>(
    resp: &Response<'a>,
    op: u8,
    object: u8,
    answer_len: usize,
) -> Result<OemReply<'a>, NcsiError> {
    if resp.command != cmd::OEM {
        return Err(NcsiError::Unexpected);
    }
    let data = resp.result()?;
    let mfr = be32(data, 0).ok_or(NcsiError::Truncated)?;
    let header = data
        .get(4..ncsi_oem::COMMAND_PREFIX)
        .and_then(OemHeader::decode)
        .ok_or(NcsiError::Truncated)?;
    if mfr != ncsi_oem::MANUFACTURER_ID
        || header.version != ncsi_oem::OEM_VERSION
        || header.op != op
        || header.object != object
    {
        return Err(NcsiError::Unexpected);
    }
    let records = data.get(ncsi_oem::COMMAND_PREFIX..).unwrap_or_default();
    let needed = usize::from(header.count).checked_mul(answer_len);
    if needed.is_none_or(|n| n > records.len()) {
        return Err(NcsiError::Truncated);
    }
    Ok(OemReply { header, records })
}

/// What Get Version ID tells the RME.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VersionId {
    /// NC-SI version, packed BCD as DSP0222 encodes it.
    pub(crate) ncsi_version: [u8; 4],
    /// Firmware name, zero-padded.
    pub(crate) firmware_name: [u8; 12],
    /// Firmware version.
    pub(crate) firmware_version: u32,
    /// IANA enterprise number of the manufacturer:
    /// [`ncsi_oem::MANUFACTURER_ID`] for a BMGNIC.
    pub(crate) manufacturer_id: u32,
}

/// Parses the data of a Get Version ID response (after the codes).
pub(crate) fn parse_version_id(data: &[u8]) -> Result<VersionId, NcsiError> {
    let get = |at: usize| be32(data, at).ok_or(NcsiError::Truncated);
    let name = data.get(8..20).ok_or(NcsiError::Truncated)?;
    let mut firmware_name = [0u8; 12];
    firmware_name.copy_from_slice(name);
    Ok(VersionId {
        ncsi_version: get(0)?.to_be_bytes(),
        firmware_name,
        firmware_version: get(20)?,
        manufacturer_id: get(32)?,
    })
}

/// `"1.1.0"` from the NC-SI version bytes: BCD digits, `0xf` nibbles
/// unused (DSP0222 Get Version ID), as a NUL-terminated string.
pub(crate) fn format_version<'a>(v: &[u8; 4], out: &'a mut [u8; 16]) -> &'a [u8] {
    let mut n = 0;
    for (i, b) in v.iter().take(3).enumerate() {
        if i > 0 {
            out[n] = b'.';
            n += 1;
        }
        let (hi, lo) = (b >> 4, b & 0x0f);
        let d = if hi > 9 {
            lo.min(9)
        } else {
            hi * 10 + lo.min(9)
        };
        if d >= 10 {
            out[n] = b'0' + d / 10;
            n += 1;
        }
        out[n] = b'0' + d % 10;
        n += 1;
    }
    out[n] = 0;
    &out[..=n]
}

/// The AEN control bits a Get Capabilities response (data after the
/// codes) says the channel supports.
pub(crate) fn parse_aen_support(data: &[u8]) -> Result<u32, NcsiError> {
    be32(data, 16).ok_or(NcsiError::Truncated)
}

/// Whether the link is up, from the link status word: the first word of
/// a Get Link Status response, or of a Link Status Change AEN.
pub(crate) fn link_up(status: u32) -> bool {
    status & ncsi::LINK_STATUS_LINK_UP != 0
}

/// The link status word of a Get Link Status response's data.
pub(crate) fn parse_link_status(data: &[u8]) -> Result<u32, NcsiError> {
    be32(data, 0).ok_or(NcsiError::Truncated)
}

/// Instance IDs 1 to 255 in turn; 0 is reserved for AENs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IidAllocator {
    last: u8,
}

impl IidAllocator {
    /// An allocator whose first IID is 1.
    pub(crate) const fn new() -> Self {
        Self { last: 0 }
    }

    /// The next IID, never 0.
    pub(crate) fn next_iid(&mut self) -> u8 {
        self.last = if self.last == u8::MAX {
            1
        } else {
            self.last + 1
        };
        self.last
    }
}

/// Commands in flight, by IID, so that each response is paired with the
/// command it answers (same IID and type) and anything else is rejected.
///
/// DSP0222 retries resend a command with the same IID, so a retry is not a
/// new [`Matcher::begin`]. IIDs are handed out in turn, so an IID whose
/// command timed out comes back only after 254 others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Matcher {
    iids: IidAllocator,
    /// Command type in flight under each IID.
    pending: [Option<u8>; 256],
    outstanding: usize,
}

impl Default for Matcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Matcher {
    /// No command in flight.
    pub(crate) const fn new() -> Self {
        Self {
            iids: IidAllocator::new(),
            pending: [None; 256],
            outstanding: 0,
        }
    }

    /// Registers a command of `packet_type` and returns its IID, or
    /// [`NcsiError::NoIid`] if all 255 are in flight.
    pub(crate) fn begin(&mut self, packet_type: u8) -> Result<u8, NcsiError> {
        for _ in 0..u8::MAX {
            let iid = self.iids.next_iid();
            if let Some(slot @ None) = self.pending.get_mut(usize::from(iid)) {
                *slot = Some(packet_type);
                self.outstanding += 1;
                return Ok(iid);
            }
        }
        Err(NcsiError::NoIid)
    }

    /// Pairs `resp` with its command, which is then no longer in flight.
    /// [`NcsiError::Stale`] if no command of that IID and type is.
    pub(crate) fn complete(&mut self, resp: &Response<'_>) -> Result<(), NcsiError> {
        match self.pending.get_mut(usize::from(resp.iid)) {
            Some(slot) if resp.iid != 0 && *slot == Some(resp.command) => {
                *slot = None;
                self.outstanding -= 1;
                Ok(())
            }
            _ => Err(NcsiError::Stale),
        }
    }

    /// Gives up on the command of `iid` (timed out after its retries): a
    /// late response to it is then stale.
    pub(crate) fn cancel(&mut self, iid: u8) {
        if let Some(slot) = self.pending.get_mut(usize::from(iid)) {
            if slot.take().is_some() {
                self.outstanding -= 1;
            }
        }
    }

    /// Number of commands in flight.
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding
    }
}

#[kunit_tests(bmgnic_rme_ncsi)]
mod tests {
    use super::*;
    use crate::ncsi::{
        checksum, padded, CHECKSUM_LEN, ETH_HLEN, ETH_ZLEN, HEADER_LEN, MAX_FRAME_LEN,
        REASON_CHANNEL_NOT_READY, REASON_NONE, REASON_PACKAGE_NOT_READY, RESPONSE_FAILED,
    };
    use crate::ncsi_oem::{
        FlowCountersRecord, FlowKey, FlowRecord, SlotRecord, ACTION_ALLOW, NO_METER, OBJ_FLOW,
        OP_DEL, OP_SET,
    };

    const EP: Endpoint = Endpoint {
        src: [0x02, 0x00, 0x00, 0x00, 0x00, 0xfe],
        channel: CHANNEL_0,
    };
    const NIC_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

    /// A frame as the NIC would send it (responses and AENs use the same
    /// framing as commands).
    fn nic_frame(buf: &mut [u8], iid: u8, packet_type: u8, payload: &[u8]) -> usize {
        let nic = Endpoint {
            src: NIC_MAC,
            channel: CHANNEL_0,
        };
        build_command(buf, &nic, iid, packet_type, payload).unwrap_or(0)
    }

    #[test]
    fn clear_initial_state_frame_is_byte_exact() {
        #[rustfmt::skip]
        const EXPECTED: [u8; ETH_ZLEN] = [
            // Ethernet: broadcast, from the RME, NC-SI.
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x02, 0x00, 0x00, 0x00, 0x00, 0xfe,
            0x88, 0xf8,
            // MC ID 0, revision 1, reserved, IID 1, type 0x00, channel 0,
            // payload length 0, 8 reserved bytes.
            0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            // Checksum: -(0x0001 + 0x0001) = 0xfffffffe.
            0xff, 0xff, 0xff, 0xfe,
            // Padding to 60 bytes.
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        let mut buf = [0xaau8; MAX_FRAME_LEN];
        let step = STARTUP[0];
        assert_eq!(step.packet_type, cmd::CLEAR_INITIAL_STATE);
        let len = build_command(&mut buf, &EP, 1, step.packet_type, step.payload);
        assert_eq!(len, Ok(ETH_ZLEN));
        assert!(buf[..ETH_ZLEN] == EXPECTED);
        // A buffer shorter than the minimum frame is refused, not overrun.
        let mut short = [0u8; ETH_ZLEN - 1];
        assert_eq!(
            build_command(&mut short, &EP, 1, cmd::CLEAR_INITIAL_STATE, &[]),
            Err(NcsiError::TooLong)
        );
    }

    #[test]
    fn checksum_covers_header_and_payload() {
        assert_eq!(checksum(&[0x00, 0x01, 0x00, 0x01]), 0xffff_fffe);
        // An odd trailing byte is the high byte of a zero-padded word.
        assert_eq!(checksum(&[0x12]), 0u32.wrapping_sub(0x1200));
        assert_eq!(checksum(&[]), 0);
        // Every start-up command: the words of header and payload plus the
        // checksum sum to zero, and the payload length is the step's.
        let mut buf = [0u8; MAX_FRAME_LEN];
        for (i, step) in STARTUP.iter().enumerate() {
            let len = build_command(&mut buf, &EP, i as u8 + 1, step.packet_type, step.payload)
                .unwrap_or(0);
            assert!(len >= ETH_ZLEN);
            let plen = step.payload.len();
            assert_eq!(be16(&buf, 20), Some(plen as u16));
            let end = ETH_HLEN + HEADER_LEN + padded(plen);
            let sum = be32(&buf, end).unwrap_or(0);
            assert_eq!(checksum(&buf[ETH_HLEN..end]), sum);
            assert_eq!(
                (!checksum(&buf[ETH_HLEN..end]))
                    .wrapping_add(1)
                    .wrapping_add(sum),
                0
            );
        }
        // AEN Enable: MC ID 0, link (bit 0) and OEM (bit 16) AENs.
        assert_eq!(STARTUP[4].packet_type, cmd::AEN_ENABLE);
        assert!(STARTUP[4].payload == [0, 0, 0, 0, 0x00, 0x01, 0x00, 0x01]);
        // The link state is read once its AENs are on.
        assert_eq!(STARTUP[5].packet_type, cmd::GET_LINK_STATUS);
        // The parser accepts what the builder makes (as a response).
        let mut r = [0u8; ETH_ZLEN];
        let n = nic_frame(&mut r, 9, cmd::AEN_ENABLE | RESPONSE_BIT, &[0, 0, 0, 0]);
        assert!(matches!(parse(&r[..n]), Ok(Packet::Response(_))));
    }

    #[test]
    fn responses_parse_and_bad_frames_are_rejected() -> Result {
        // Every frame here is shorter than 128 bytes.
        let mut buf = [0u8; 128];
        // Get Version ID, completed, as the model answers it.
        let mut payload = [0u8; 40];
        payload[4..8].copy_from_slice(&[0xf1, 0xf1, 0xf0, 0x00]);
        payload[12..18].copy_from_slice(b"BMGNIC");
        payload[24..28].copy_from_slice(&0x0001_0000u32.to_be_bytes());
        payload[36..40].copy_from_slice(&ncsi_oem::MANUFACTURER_ID.to_be_bytes());
        let n = nic_frame(&mut buf, 7, cmd::GET_VERSION_ID | RESPONSE_BIT, &payload);
        let Ok(Packet::Response(resp)) = parse(&buf[..n]) else {
            return Err(EINVAL);
        };
        assert_eq!(
            (resp.iid, resp.command, resp.channel, resp.code, resp.reason),
            (
                7,
                cmd::GET_VERSION_ID,
                CHANNEL_0,
                RESPONSE_COMPLETED,
                REASON_NONE
            )
        );
        assert_eq!(resp.data.len(), 36);
        let version = parse_version_id(resp.result()?)?;
        assert_eq!(version.manufacturer_id, ncsi_oem::MANUFACTURER_ID);
        assert!(&version.firmware_name[..6] == b"BMGNIC");
        assert_eq!(version.firmware_version, 0x0001_0000);

        // A corrupted byte fails the checksum.
        let mut bad = buf;
        bad[ETH_HLEN + HEADER_LEN + 10] ^= 0x40;
        assert_eq!(parse(&bad[..n]), Err(NcsiError::Checksum));
        // A zero checksum is "not computed": accepted.
        let end = ETH_HLEN + HEADER_LEN + 40;
        bad[end..end + 4].fill(0);
        assert!(matches!(parse(&bad[..n]), Ok(Packet::Response(_))));
        // Truncated: inside the payload, inside the checksum, inside the
        // header, inside the Ethernet header.
        for cut in [ETH_HLEN + HEADER_LEN + 20, end + 2, ETH_HLEN + 5, 10] {
            assert_eq!(parse(&buf[..cut]), Err(NcsiError::Truncated));
        }
        // A length field larger than the frame.
        let mut long = buf;
        long[20..22].copy_from_slice(&0x0fffu16.to_be_bytes());
        assert_eq!(parse(&long[..n]), Err(NcsiError::Truncated));
        // Another ethertype, another revision, a command (no response bit).
        let mut other = buf;
        other[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        assert_eq!(parse(&other[..n]), Err(NcsiError::NotNcsi));
        let mut rev = buf;
        rev[15] = 2;
        assert_eq!(parse(&rev[..n]), Err(NcsiError::BadRevision));
        let c = nic_frame(&mut other, 3, cmd::GET_VERSION_ID, &[]);
        assert_eq!(parse(&other[..c]), Err(NcsiError::Unexpected));

        // A failed response carries its reason, mapped to an errno.
        let failed = [0x00, 0x01, 0x00, 0x01];
        let f = nic_frame(&mut other, 4, cmd::ENABLE_CHANNEL | RESPONSE_BIT, &failed);
        let Ok(Packet::Response(resp)) = parse(&other[..f]) else {
            return Err(EINVAL);
        };
        let err = NcsiError::Failed {
            code: RESPONSE_FAILED,
            reason: REASON_INIT_REQUIRED,
        };
        assert_eq!(resp.result(), Err(err));
        // The NIC lost its state: the RME sets it up again.
        assert_eq!(Error::from(err), ENOTCONN);
        Ok(())
    }

    #[test]
    fn errors_map_to_kernel_codes() {
        let failed = |code, reason| Error::from(NcsiError::Failed { code, reason });
        assert_eq!(failed(RESPONSE_FAILED, REASON_PARAMETER_INVALID), EINVAL);
        assert_eq!(failed(RESPONSE_FAILED, REASON_PAYLOAD_LENGTH), EINVAL);
        assert_eq!(failed(RESPONSE_FAILED, ncsi_oem::REASON_BAD_INDEX), EINVAL);
        assert_eq!(failed(RESPONSE_FAILED, ncsi_oem::REASON_BAD_RECORD), EINVAL);
        assert_eq!(failed(RESPONSE_FAILED, ncsi_oem::REASON_BAD_COUNT), EINVAL);
        assert_eq!(failed(RESPONSE_FAILED, ncsi_oem::REASON_BAD_OP), EOPNOTSUPP);
        assert_eq!(
            failed(RESPONSE_UNSUPPORTED, REASON_UNKNOWN_COMMAND),
            EOPNOTSUPP
        );
        assert_eq!(failed(RESPONSE_UNAVAILABLE, REASON_NONE), EAGAIN);
        assert_eq!(failed(RESPONSE_FAILED, REASON_CHANNEL_NOT_READY), EIO);
        assert_eq!(failed(RESPONSE_FAILED, REASON_PACKAGE_NOT_READY), EIO);
        assert_eq!(Error::from(NcsiError::Timeout), ETIMEDOUT);
        assert_eq!(Error::from(NcsiError::Checksum), EIO);
        assert_eq!(Error::from(NcsiError::NoIid), EBUSY);
        assert_eq!(Error::from(NcsiError::TooLong), EINVAL);
    }

    #[test]
    fn oem_miss_aen_parses() {
        let mut key = FlowKey {
            in_port: ncsi_oem::PORT_GUEST,
            ip_proto: 6,
            ethertype: 0x0800,
            l4_src: 40000,
            l4_dst: 443,
            eth_src: [0x52, 0x54, 0, 0xb0, 0, 1],
            ..FlowKey::default()
        };
        key.ip_src[..4].copy_from_slice(&[10, 0, 0, 1]);
        key.ip_dst[..4].copy_from_slice(&[10, 0, 0, 2]);
        let event = MissEvent { key, misses: 3 };
        // Payload as the model sends it: AEN header, manufacturer ID,
        // event, reserved, body.
        let mut payload = [0u8; 4 + ncsi_oem::AEN_PREFIX + MissEvent::LEN];
        payload[3] = ncsi_oem::AEN_OEM;
        payload[4..8].copy_from_slice(&ncsi_oem::MANUFACTURER_ID.to_be_bytes());
        payload[8] = ncsi_oem::EVENT_TABLE_MISS;
        event.encode(&mut payload[12..]);
        let mut buf = [0u8; 128];
        let n = nic_frame(&mut buf, 0, AEN_PACKET_TYPE, &payload);
        assert_eq!(parse(&buf[..n]), Ok(Packet::Aen(Aen::TableMiss(event))));
        // A body cut short.
        let n = nic_frame(&mut buf, 0, AEN_PACKET_TYPE, &payload[..40]);
        assert_eq!(parse(&buf[..n]), Err(NcsiError::Truncated));
        // Another manufacturer's OEM AEN, an unknown event: ignored.
        let mut foreign = payload;
        foreign[4..8].copy_from_slice(&343u32.to_be_bytes());
        let n = nic_frame(&mut buf, 0, AEN_PACKET_TYPE, &foreign);
        let other = Aen::Other {
            aen_type: ncsi_oem::AEN_OEM,
        };
        assert_eq!(parse(&buf[..n]), Ok(Packet::Aen(other)));
        let mut unknown = payload;
        unknown[8] = 0x7e;
        let n = nic_frame(&mut buf, 0, AEN_PACKET_TYPE, &unknown);
        assert_eq!(parse(&buf[..n]), Ok(Packet::Aen(other)));
        // Link Status Change.
        let link = [0, 0, 0, AEN_LINK_STATUS_CHANGE, 0, 0, 0, 0x11, 0, 0, 0, 0];
        let n = nic_frame(&mut buf, 0, AEN_PACKET_TYPE, &link);
        assert_eq!(
            parse(&buf[..n]),
            Ok(Packet::Aen(Aen::LinkStatus { status: 0x11 }))
        );
        // Bit 0 is the link, whatever the speed and duplex bits say.
        assert!(link_up(0x11));
        assert!(!link_up(0x10));
        // Get Link Status data: the link status word, then more.
        assert_eq!(parse_link_status(&[0, 0, 0, 0x11, 0, 0, 0, 0]), Ok(0x11));
        assert_eq!(parse_link_status(&[0, 0, 0]), Err(NcsiError::Truncated));
    }

    #[test]
    fn iids_skip_zero_and_responses_match_their_command() -> Result {
        let mut iids = IidAllocator::new();
        assert_eq!(iids.next_iid(), 1);
        for _ in 0..253 {
            iids.next_iid();
        }
        assert_eq!(iids.next_iid(), 255);
        assert_eq!(iids.next_iid(), 1);

        let mut m = Matcher::new();
        let a = m.begin(cmd::GET_VERSION_ID)?;
        let b = m.begin(cmd::OEM)?;
        assert_eq!((a, b, m.outstanding()), (1, 2, 2));
        let resp = |iid, command| Response {
            iid,
            command,
            channel: CHANNEL_0,
            code: RESPONSE_COMPLETED,
            reason: REASON_NONE,
            data: &[],
        };
        // Right IID, wrong type; unknown IID; IID 0 (AENs).
        assert_eq!(m.complete(&resp(a, cmd::OEM)), Err(NcsiError::Stale));
        assert_eq!(m.complete(&resp(9, cmd::OEM)), Err(NcsiError::Stale));
        assert_eq!(m.complete(&resp(0, cmd::OEM)), Err(NcsiError::Stale));
        assert_eq!(m.complete(&resp(b, cmd::OEM)), Ok(()));
        // A duplicate is stale.
        assert_eq!(m.complete(&resp(b, cmd::OEM)), Err(NcsiError::Stale));
        // A command given up on: its late answer is stale.
        m.cancel(a);
        assert_eq!(
            m.complete(&resp(a, cmd::GET_VERSION_ID)),
            Err(NcsiError::Stale)
        );
        assert_eq!(m.outstanding(), 0);
        // 255 in flight: no IID left; one answered frees one.
        for _ in 0..255 {
            m.begin(cmd::OEM)?;
        }
        assert_eq!(m.begin(cmd::OEM), Err(NcsiError::NoIid));
        assert_eq!(m.complete(&resp(77, cmd::OEM)), Ok(()));
        assert_eq!(m.begin(cmd::GET_LINK_STATUS), Ok(77));
        Ok(())
    }

    #[test]
    fn oem_commands_batch_to_the_payload_limit() -> Result {
        // 11 flows of 124 bytes fit 1480 bytes with the 8-byte prefix; 12
        // would not. DEL answers 32-byte counters for 4-byte slots: 45
        // answers fit with the 12-byte response prefix.
        assert_eq!(batch_limit(FlowRecord::LEN, 0), 11);
        assert!(ncsi_oem::COMMAND_PREFIX + 11 * FlowRecord::LEN <= ncsi::MAX_PAYLOAD);
        assert!(ncsi_oem::COMMAND_PREFIX + 12 * FlowRecord::LEN > ncsi::MAX_PAYLOAD);
        assert_eq!(batch_limit(SlotRecord::LEN, FlowCountersRecord::LEN), 45);
        assert!(ncsi_oem::RESPONSE_PREFIX + 45 * FlowCountersRecord::LEN <= ncsi::MAX_PAYLOAD);
        assert!(ncsi_oem::RESPONSE_PREFIX + 46 * FlowCountersRecord::LEN > ncsi::MAX_PAYLOAD);
        assert_eq!(batch_limit(SlotRecord::LEN, 0), 255);

        let mut flows = KVec::with_capacity(30, GFP_KERNEL)?;
        for i in 0..30u32 {
            let mut f = FlowRecord {
                slot: i,
                priority: 100 + i as u16,
                action: ACTION_ALLOW,
                meter: NO_METER,
                ..FlowRecord::default()
            };
            f.mask.ethertype = 0xffff;
            f.key.ethertype = 0x0800;
            flows.push(f, GFP_KERNEL)?;
        }
        let mut buf = [0u8; MAX_FRAME_LEN];
        let mut sent = 0;
        let mut batches = [0usize; 3];
        for b in &mut batches {
            let (len, n) = build_oem(&mut buf, &EP, 5, OP_SET, OBJ_FLOW, &flows[sent..], 0)?;
            *b = n;
            let plen = ncsi_oem::COMMAND_PREFIX + n * FlowRecord::LEN;
            assert_eq!(len, ETH_HLEN + HEADER_LEN + plen + CHECKSUM_LEN);
            assert!(len <= MAX_FRAME_LEN);
            // Manufacturer ID 0x00007ed9, header, first record.
            let p = &buf[ETH_HLEN + HEADER_LEN..];
            assert!(p[..8] == [0x00, 0x00, 0x7e, 0xd9, 1, OP_SET, OBJ_FLOW, n as u8]);
            assert_eq!(
                FlowRecord::decode(&p[8..8 + FlowRecord::LEN]),
                Some(flows[sent])
            );
            assert!(matches!(parse(&buf[..len]), Err(NcsiError::Unexpected)));
            sent += n;
        }
        assert_eq!(batches, [11, 11, 8]);
        assert_eq!(sent, 30);
        Ok(())
    }

    #[test]
    fn oem_replies_are_checked_and_decoded() -> Result {
        // A DEL answer with two counter records, as the model builds it.
        let mut payload = [0u8; ncsi_oem::RESPONSE_PREFIX + 2 * FlowCountersRecord::LEN];
        payload[4..8].copy_from_slice(&ncsi_oem::MANUFACTURER_ID.to_be_bytes());
        payload[8..12].copy_from_slice(&[1, OP_DEL, OBJ_FLOW, 2]);
        let rec = |slot| FlowCountersRecord {
            slot,
            in_use: true,
            packets: 10 + u64::from(slot),
            bytes: 1000,
            idle_ms: 5,
        };
        rec(3).encode(&mut payload[12..44]);
        rec(4).encode(&mut payload[44..76]);
        let mut buf = [0u8; MAX_FRAME_LEN];
        let n = nic_frame(&mut buf, 2, cmd::OEM | RESPONSE_BIT, &payload);
        let Ok(Packet::Response(resp)) = parse(&buf[..n]) else {
            return Err(EINVAL);
        };
        let reply = parse_oem_reply(&resp, OP_DEL, OBJ_FLOW, FlowCountersRecord::LEN)?;
        assert_eq!(reply.count(), 2);
        assert_eq!(reply.record::<FlowCountersRecord>(1), Some(rec(4)));
        assert_eq!(reply.record::<FlowCountersRecord>(2), None);
        // Not the operation asked.
        assert_eq!(
            parse_oem_reply(&resp, OP_SET, OBJ_FLOW, 0),
            Err(NcsiError::Unexpected)
        );
        // A count larger than the records sent.
        payload[11] = 3;
        let n = nic_frame(&mut buf, 2, cmd::OEM | RESPONSE_BIT, &payload);
        let Ok(Packet::Response(resp)) = parse(&buf[..n]) else {
            return Err(EINVAL);
        };
        assert_eq!(
            parse_oem_reply(&resp, OP_DEL, OBJ_FLOW, FlowCountersRecord::LEN),
            Err(NcsiError::Truncated)
        );
        // Refused: the OEM reason code comes back.
        let refused = [0, 1, 0x80, 0x04, 0, 0, 0x7e, 0xd9, 1, OP_DEL, OBJ_FLOW, 1];
        let n = nic_frame(&mut buf, 2, cmd::OEM | RESPONSE_BIT, &refused);
        let Ok(Packet::Response(resp)) = parse(&buf[..n]) else {
            return Err(EINVAL);
        };
        let err = parse_oem_reply(&resp, OP_DEL, OBJ_FLOW, FlowCountersRecord::LEN);
        assert_eq!(
            err,
            Err(NcsiError::Failed {
                code: RESPONSE_FAILED,
                reason: ncsi_oem::REASON_BAD_INDEX
            })
        );
        Ok(())
    }
}
