// SPDX-License-Identifier: GPL-2.0

//! OpenFlow 1.3 messages: the header, every message the switch side reads
//! or writes, and their framing on a stream.
//!
//! [`decode`] takes one whole message (as [`frame_len`] delimits it on the
//! stream) and returns it or the [`OfError`] to answer with; [`encode`]
//! writes one. Both directions are implemented for every message so that
//! tests and the fuzz target can round-trip them.

use super::action::{decode_actions, decode_instructions, encode_actions, encode_instructions};
use super::action::{Action, Instruction};
use super::buf::{OfError, Reader, Writer};
use super::consts::{err, mp, msg, HEADER_LEN, OFP_VERSION};
use super::oxm::Match;

/// Longest message: the 16-bit length field.
pub const MAX_LEN: usize = u16::MAX as usize;

/// A message's header fields besides its type and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub kind: u8,
    pub length: u16,
    pub xid: u32,
}

impl Header {
    /// Parses the 8-byte header at the start of `buf`.
    pub fn parse(buf: &[u8]) -> Option<Header> {
        let b: &[u8; HEADER_LEN] = buf.first_chunk()?;
        Some(Header {
            version: b[0],
            kind: b[1],
            length: u16::from_be_bytes([b[2], b[3]]),
            xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        })
    }
}

/// The length of the message at the start of `buf`, once its header has
/// arrived; `Err` when the header's length is below the header's own.
pub fn frame_len(buf: &[u8]) -> Option<Result<usize, OfError>> {
    let h = Header::parse(buf)?;
    let len = usize::from(h.length);
    Some(if len < HEADER_LEN {
        Err(OfError::bad_len())
    } else {
        Ok(len)
    })
}

/// The switch's configuration (`ofp_switch_config`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwitchConfig {
    pub flags: u16,
    pub miss_send_len: u16,
}

/// `ofp_port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub port_no: u32,
    pub hw_addr: [u8; 6],
    pub name: String,
    pub config: u32,
    pub state: u32,
    pub curr: u32,
    pub advertised: u32,
    pub supported: u32,
    pub peer: u32,
    pub curr_speed: u32,
    pub max_speed: u32,
}

/// `OFPT_FLOW_MOD`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowMod {
    pub cookie: u64,
    pub cookie_mask: u64,
    pub table_id: u8,
    pub command: u8,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub priority: u16,
    pub buffer_id: u32,
    pub out_port: u32,
    pub out_group: u32,
    pub flags: u16,
    pub matching: Match,
    pub instructions: Vec<Instruction>,
}

/// A meter band (`ofp_meter_band_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterBand {
    /// `OFPMBT_*`.
    pub kind: u16,
    pub rate: u32,
    pub burst_size: u32,
    /// What follows for DSCP remark (`prec_level`) and experimenter bands.
    pub extra: Vec<u8>,
}

/// `OFPT_METER_MOD`, and a meter's configuration in a multipart reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterMod {
    pub command: u16,
    pub flags: u16,
    pub meter_id: u32,
    pub bands: Vec<MeterBand>,
}

/// `OFPT_PACKET_IN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketIn {
    pub buffer_id: u32,
    pub total_len: u16,
    pub reason: u8,
    pub table_id: u8,
    pub cookie: u64,
    pub matching: Match,
    pub data: Vec<u8>,
}

/// `OFPT_FLOW_REMOVED`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRemoved {
    pub cookie: u64,
    pub priority: u16,
    pub reason: u8,
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub packet_count: u64,
    pub byte_count: u64,
    pub matching: Match,
}

/// The selection of flows of a FLOW or AGGREGATE request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowStatsRequest {
    pub table_id: u8,
    pub out_port: u32,
    pub out_group: u32,
    pub cookie: u64,
    pub cookie_mask: u64,
    pub matching: Match,
}

/// One flow of a FLOW reply (`ofp_flow_stats`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowStats {
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub flags: u16,
    pub cookie: u64,
    pub packet_count: u64,
    pub byte_count: u64,
    pub matching: Match,
    pub instructions: Vec<Instruction>,
}

/// `ofp_table_stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableStats {
    pub table_id: u8,
    pub active_count: u32,
    pub lookup_count: u64,
    pub matched_count: u64,
}

/// `ofp_port_stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub port_no: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
}

/// `ofp_meter_stats`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterStats {
    pub meter_id: u32,
    pub flow_count: u32,
    pub packet_in_count: u64,
    pub byte_in_count: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    /// (packets, bytes) over each band's rate.
    pub bands: Vec<(u64, u64)>,
}

/// `ofp_meter_features`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeterFeatures {
    pub max_meter: u32,
    pub band_types: u32,
    pub capabilities: u32,
    pub max_bands: u8,
    pub max_color: u8,
}

/// `ofp_desc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desc {
    pub mfr: String,
    pub hw: String,
    pub sw: String,
    pub serial: String,
    pub dp: String,
}

/// The body of a multipart request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultipartRequest {
    Desc,
    Flow(FlowStatsRequest),
    Aggregate(FlowStatsRequest),
    Table,
    PortStats {
        port_no: u32,
    },
    PortDesc,
    Meter {
        meter_id: u32,
    },
    MeterConfig {
        meter_id: u32,
    },
    MeterFeatures,
    /// A type this switch does not serve: `OFPBRC_BAD_MULTIPART`.
    Other {
        kind: u16,
        body: Vec<u8>,
    },
}

/// The body of a multipart reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultipartReply {
    Desc(Desc),
    Flow(Vec<FlowStats>),
    Aggregate {
        packet_count: u64,
        byte_count: u64,
        flow_count: u32,
    },
    Table(Vec<TableStats>),
    PortStats(Vec<PortStats>),
    PortDesc(Vec<Port>),
    Meter(Vec<MeterStats>),
    MeterConfig(Vec<MeterMod>),
    MeterFeatures(MeterFeatures),
}

/// A message, without its xid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// HELLO with the versions of its bitmap element (bit n: version n);
    /// 0 when it carries none.
    Hello {
        versions: u32,
    },
    Error {
        kind: u16,
        code: u16,
        data: Vec<u8>,
    },
    EchoRequest(Vec<u8>),
    EchoReply(Vec<u8>),
    Experimenter {
        experimenter: u32,
        exp_type: u32,
        data: Vec<u8>,
    },
    FeaturesRequest,
    FeaturesReply {
        datapath_id: u64,
        n_buffers: u32,
        n_tables: u8,
        capabilities: u32,
    },
    GetConfigRequest,
    GetConfigReply(SwitchConfig),
    SetConfig(SwitchConfig),
    PacketIn(PacketIn),
    FlowRemoved(FlowRemoved),
    PortStatus {
        reason: u8,
        port: Port,
    },
    PacketOut {
        buffer_id: u32,
        in_port: u32,
        actions: Vec<Action>,
        data: Vec<u8>,
    },
    FlowMod(FlowMod),
    MultipartRequest {
        flags: u16,
        body: MultipartRequest,
    },
    MultipartReply {
        flags: u16,
        body: MultipartReply,
    },
    BarrierRequest,
    BarrierReply,
    RoleRequest {
        role: u32,
        generation_id: u64,
    },
    RoleReply {
        role: u32,
        generation_id: u64,
    },
    MeterMod(MeterMod),
    /// A valid message type this switch does not serve (GROUP_MOD,
    /// PORT_MOD, TABLE_MOD, async config, queue config): answered with
    /// the error its type calls for.
    Unsupported {
        kind: u8,
    },
}

fn bad_request(code: u16) -> OfError {
    OfError::new(err::BAD_REQUEST, code)
}

fn decode_port(r: &mut Reader<'_>) -> Result<Port, OfError> {
    let port_no = r.u32()?;
    r.skip(4)?;
    let hw_addr = r.array()?;
    r.skip(2)?;
    Ok(Port {
        port_no,
        hw_addr,
        name: r.string(16)?,
        config: r.u32()?,
        state: r.u32()?,
        curr: r.u32()?,
        advertised: r.u32()?,
        supported: r.u32()?,
        peer: r.u32()?,
        curr_speed: r.u32()?,
        max_speed: r.u32()?,
    })
}

fn encode_port(p: &Port, w: &mut Writer) {
    w.u32(p.port_no).zeros(4).bytes(&p.hw_addr).zeros(2);
    w.string(&p.name, 16);
    for v in [
        p.config,
        p.state,
        p.curr,
        p.advertised,
        p.supported,
        p.peer,
        p.curr_speed,
        p.max_speed,
    ] {
        w.u32(v);
    }
}

fn decode_bands(r: &mut Reader<'_>) -> Result<Vec<MeterBand>, OfError> {
    let bad_band = OfError::new(err::METER_MOD_FAILED, err::meter_mod::BAD_BAND);
    let mut bands = Vec::new();
    while !r.is_empty() {
        let kind = r.u16()?;
        let len = usize::from(r.u16()?);
        if len < 16 || len % 8 != 0 {
            return Err(bad_band);
        }
        let mut b = r.sub(len - 4, bad_band)?;
        bands.push(MeterBand {
            kind,
            rate: b.u32()?,
            burst_size: b.u32()?,
            extra: b.rest().to_vec(),
        });
    }
    Ok(bands)
}

fn encode_bands(bands: &[MeterBand], w: &mut Writer) {
    for band in bands {
        let start = w.len();
        w.u16(band.kind).u16(0).u32(band.rate).u32(band.burst_size);
        w.bytes(&band.extra).pad8();
        if w.len() - start < 16 {
            w.zeros(16 - (w.len() - start));
        }
        w.patch_len(start + 2, start);
    }
}

fn decode_flow_stats_request(r: &mut Reader<'_>) -> Result<FlowStatsRequest, OfError> {
    let table_id = r.u8()?;
    r.skip(3)?;
    let out_port = r.u32()?;
    let out_group = r.u32()?;
    r.skip(4)?;
    Ok(FlowStatsRequest {
        table_id,
        out_port,
        out_group,
        cookie: r.u64()?,
        cookie_mask: r.u64()?,
        matching: Match::decode(r)?,
    })
}

fn encode_flow_stats_request(q: &FlowStatsRequest, w: &mut Writer) {
    w.u8(q.table_id)
        .zeros(3)
        .u32(q.out_port)
        .u32(q.out_group)
        .zeros(4);
    w.u64(q.cookie).u64(q.cookie_mask);
    q.matching.encode(w);
}

fn decode_multipart_request(kind: u16, r: &mut Reader<'_>) -> Result<MultipartRequest, OfError> {
    let fixed = |r: &Reader<'_>, n: usize| {
        if r.remaining() == n {
            Ok(())
        } else {
            Err(OfError::bad_len())
        }
    };
    Ok(match kind {
        mp::DESC => {
            fixed(r, 0)?;
            MultipartRequest::Desc
        }
        mp::FLOW => MultipartRequest::Flow(decode_flow_stats_request(r)?),
        mp::AGGREGATE => MultipartRequest::Aggregate(decode_flow_stats_request(r)?),
        mp::TABLE => {
            fixed(r, 0)?;
            MultipartRequest::Table
        }
        mp::PORT_STATS => {
            fixed(r, 8)?;
            MultipartRequest::PortStats { port_no: r.u32()? }
        }
        mp::PORT_DESC => {
            fixed(r, 0)?;
            MultipartRequest::PortDesc
        }
        mp::METER | mp::METER_CONFIG => {
            fixed(r, 8)?;
            let meter_id = r.u32()?;
            if kind == mp::METER {
                MultipartRequest::Meter { meter_id }
            } else {
                MultipartRequest::MeterConfig { meter_id }
            }
        }
        mp::METER_FEATURES => {
            fixed(r, 0)?;
            MultipartRequest::MeterFeatures
        }
        _ => MultipartRequest::Other {
            kind,
            body: r.rest().to_vec(),
        },
    })
}

fn multipart_request_kind(body: &MultipartRequest) -> u16 {
    match body {
        MultipartRequest::Desc => mp::DESC,
        MultipartRequest::Flow(_) => mp::FLOW,
        MultipartRequest::Aggregate(_) => mp::AGGREGATE,
        MultipartRequest::Table => mp::TABLE,
        MultipartRequest::PortStats { .. } => mp::PORT_STATS,
        MultipartRequest::PortDesc => mp::PORT_DESC,
        MultipartRequest::Meter { .. } => mp::METER,
        MultipartRequest::MeterConfig { .. } => mp::METER_CONFIG,
        MultipartRequest::MeterFeatures => mp::METER_FEATURES,
        MultipartRequest::Other { kind, .. } => *kind,
    }
}

fn encode_multipart_request(body: &MultipartRequest, w: &mut Writer) {
    match body {
        MultipartRequest::Flow(q) | MultipartRequest::Aggregate(q) => {
            encode_flow_stats_request(q, w)
        }
        MultipartRequest::PortStats { port_no: id }
        | MultipartRequest::Meter { meter_id: id }
        | MultipartRequest::MeterConfig { meter_id: id } => {
            w.u32(*id).zeros(4);
        }
        MultipartRequest::Other { body, .. } => {
            w.bytes(body);
        }
        MultipartRequest::Desc
        | MultipartRequest::Table
        | MultipartRequest::PortDesc
        | MultipartRequest::MeterFeatures => {}
    }
}

fn multipart_reply_kind(body: &MultipartReply) -> u16 {
    match body {
        MultipartReply::Desc(_) => mp::DESC,
        MultipartReply::Flow(_) => mp::FLOW,
        MultipartReply::Aggregate { .. } => mp::AGGREGATE,
        MultipartReply::Table(_) => mp::TABLE,
        MultipartReply::PortStats(_) => mp::PORT_STATS,
        MultipartReply::PortDesc(_) => mp::PORT_DESC,
        MultipartReply::Meter(_) => mp::METER,
        MultipartReply::MeterConfig(_) => mp::METER_CONFIG,
        MultipartReply::MeterFeatures(_) => mp::METER_FEATURES,
    }
}

fn encode_multipart_reply(body: &MultipartReply, w: &mut Writer) {
    match body {
        MultipartReply::Desc(d) => {
            w.string(&d.mfr, 256).string(&d.hw, 256).string(&d.sw, 256);
            w.string(&d.serial, 32).string(&d.dp, 256);
        }
        MultipartReply::Flow(flows) => {
            for f in flows {
                let start = w.len();
                w.u16(0).u8(f.table_id).zeros(1).u32(f.duration_sec);
                w.u32(f.duration_nsec).u16(f.priority).u16(f.idle_timeout);
                w.u16(f.hard_timeout).u16(f.flags).zeros(4);
                w.u64(f.cookie).u64(f.packet_count).u64(f.byte_count);
                f.matching.encode(w);
                encode_instructions(&f.instructions, w);
                w.patch_len(start, start);
            }
        }
        MultipartReply::Aggregate {
            packet_count,
            byte_count,
            flow_count,
        } => {
            w.u64(*packet_count)
                .u64(*byte_count)
                .u32(*flow_count)
                .zeros(4);
        }
        MultipartReply::Table(tables) => {
            for t in tables {
                w.u8(t.table_id).zeros(3).u32(t.active_count);
                w.u64(t.lookup_count).u64(t.matched_count);
            }
        }
        MultipartReply::PortStats(ports) => {
            for p in ports {
                w.u32(p.port_no).zeros(4);
                for v in [
                    p.rx_packets,
                    p.tx_packets,
                    p.rx_bytes,
                    p.tx_bytes,
                    p.rx_dropped,
                    p.tx_dropped,
                    p.rx_errors,
                    p.tx_errors,
                ] {
                    w.u64(v);
                }
                // rx_frame_err, rx_over_err, rx_crc_err, collisions.
                w.zeros(32).u32(p.duration_sec).u32(p.duration_nsec);
            }
        }
        MultipartReply::PortDesc(ports) => {
            for p in ports {
                encode_port(p, w);
            }
        }
        MultipartReply::Meter(meters) => {
            for m in meters {
                let start = w.len();
                w.u32(m.meter_id).u16(0).zeros(6).u32(m.flow_count);
                w.u64(m.packet_in_count).u64(m.byte_in_count);
                w.u32(m.duration_sec).u32(m.duration_nsec);
                for (packets, bytes) in &m.bands {
                    w.u64(*packets).u64(*bytes);
                }
                w.patch_len(start + 4, start);
            }
        }
        MultipartReply::MeterConfig(meters) => {
            for m in meters {
                let start = w.len();
                w.u16(0).u16(m.flags).u32(m.meter_id);
                encode_bands(&m.bands, w);
                w.patch_len(start, start);
            }
        }
        MultipartReply::MeterFeatures(f) => {
            w.u32(f.max_meter).u32(f.band_types).u32(f.capabilities);
            w.u8(f.max_bands).u8(f.max_color).zeros(2);
        }
    }
}

/// Reads records of a multipart reply, each `len_at` bytes into it
/// holding its own 16-bit length.
fn records<'a>(r: &mut Reader<'a>, len_at: usize, min: usize) -> Result<Vec<Reader<'a>>, OfError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let head = r.rest();
        let len = head
            .get(len_at..len_at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or(OfError::bad_len())?;
        if len < min || len > head.len() {
            return Err(OfError::bad_len());
        }
        let (rec, tail) = head.split_at(len);
        *r = Reader::new(tail, OfError::bad_len());
        out.push(Reader::new(rec, OfError::bad_len()));
    }
    Ok(out)
}

fn decode_multipart_reply(kind: u16, r: &mut Reader<'_>) -> Result<MultipartReply, OfError> {
    Ok(match kind {
        mp::DESC => MultipartReply::Desc(Desc {
            mfr: r.string(256)?,
            hw: r.string(256)?,
            sw: r.string(256)?,
            serial: r.string(32)?,
            dp: r.string(256)?,
        }),
        mp::FLOW => {
            let mut flows = Vec::new();
            for mut f in records(r, 0, 56)? {
                f.skip(2)?;
                let table_id = f.u8()?;
                f.skip(1)?;
                let (duration_sec, duration_nsec) = (f.u32()?, f.u32()?);
                let (priority, idle_timeout, hard_timeout, flags) =
                    (f.u16()?, f.u16()?, f.u16()?, f.u16()?);
                f.skip(4)?;
                let (cookie, packet_count, byte_count) = (f.u64()?, f.u64()?, f.u64()?);
                let matching = Match::decode(&mut f)?;
                flows.push(FlowStats {
                    table_id,
                    duration_sec,
                    duration_nsec,
                    priority,
                    idle_timeout,
                    hard_timeout,
                    flags,
                    cookie,
                    packet_count,
                    byte_count,
                    matching,
                    instructions: decode_instructions(&mut f)?,
                });
            }
            MultipartReply::Flow(flows)
        }
        mp::AGGREGATE => {
            let (packet_count, byte_count, flow_count) = (r.u64()?, r.u64()?, r.u32()?);
            r.skip(4)?;
            MultipartReply::Aggregate {
                packet_count,
                byte_count,
                flow_count,
            }
        }
        mp::TABLE => {
            let mut tables = Vec::new();
            while !r.is_empty() {
                let table_id = r.u8()?;
                r.skip(3)?;
                tables.push(TableStats {
                    table_id,
                    active_count: r.u32()?,
                    lookup_count: r.u64()?,
                    matched_count: r.u64()?,
                });
            }
            MultipartReply::Table(tables)
        }
        mp::PORT_STATS => {
            let mut ports = Vec::new();
            while !r.is_empty() {
                let port_no = r.u32()?;
                r.skip(4)?;
                let mut c = [0u64; 8];
                for v in &mut c {
                    *v = r.u64()?;
                }
                r.skip(32)?;
                ports.push(PortStats {
                    port_no,
                    rx_packets: c[0],
                    tx_packets: c[1],
                    rx_bytes: c[2],
                    tx_bytes: c[3],
                    rx_dropped: c[4],
                    tx_dropped: c[5],
                    rx_errors: c[6],
                    tx_errors: c[7],
                    duration_sec: r.u32()?,
                    duration_nsec: r.u32()?,
                });
            }
            MultipartReply::PortStats(ports)
        }
        mp::PORT_DESC => {
            let mut ports = Vec::new();
            while !r.is_empty() {
                ports.push(decode_port(r)?);
            }
            MultipartReply::PortDesc(ports)
        }
        mp::METER => {
            let mut meters = Vec::new();
            for mut m in records(r, 4, 40)? {
                let meter_id = m.u32()?;
                m.skip(8)?;
                let flow_count = m.u32()?;
                let (packet_in_count, byte_in_count) = (m.u64()?, m.u64()?);
                let (duration_sec, duration_nsec) = (m.u32()?, m.u32()?);
                let mut bands = Vec::new();
                while !m.is_empty() {
                    bands.push((m.u64()?, m.u64()?));
                }
                meters.push(MeterStats {
                    meter_id,
                    flow_count,
                    packet_in_count,
                    byte_in_count,
                    duration_sec,
                    duration_nsec,
                    bands,
                });
            }
            MultipartReply::Meter(meters)
        }
        mp::METER_CONFIG => {
            let mut meters = Vec::new();
            for mut m in records(r, 0, 8)? {
                m.skip(2)?;
                let flags = m.u16()?;
                let meter_id = m.u32()?;
                meters.push(MeterMod {
                    command: 0,
                    flags,
                    meter_id,
                    bands: decode_bands(&mut m)?,
                });
            }
            MultipartReply::MeterConfig(meters)
        }
        mp::METER_FEATURES => {
            let f = MeterFeatures {
                max_meter: r.u32()?,
                band_types: r.u32()?,
                capabilities: r.u32()?,
                max_bands: r.u8()?,
                max_color: r.u8()?,
            };
            r.skip(2)?;
            MultipartReply::MeterFeatures(f)
        }
        _ => return Err(bad_request(err::request::BAD_MULTIPART)),
    })
}

/// Decodes one whole message (`buf` is exactly its header's length).
/// Returns its xid with it, or the xid (when the header could be read)
/// with the error to answer.
pub fn decode(buf: &[u8]) -> Result<(u32, Message), (u32, OfError)> {
    let Some(h) = Header::parse(buf) else {
        return Err((0, OfError::bad_len()));
    };
    let fail = |e: OfError| (h.xid, e);
    if usize::from(h.length) != buf.len() {
        return Err(fail(OfError::bad_len()));
    }
    // HELLO negotiates the version; anything else must be 1.3.
    if h.version != OFP_VERSION && h.kind != msg::HELLO {
        return Err(fail(bad_request(err::request::BAD_VERSION)));
    }
    let mut r = Reader::new(&buf[HEADER_LEN..], OfError::bad_len());
    decode_body(h, &mut r).map(|m| (h.xid, m)).map_err(fail)
}

fn empty(r: &Reader<'_>, m: Message) -> Result<Message, OfError> {
    if r.is_empty() {
        Ok(m)
    } else {
        Err(OfError::bad_len())
    }
}

fn decode_body(h: Header, r: &mut Reader<'_>) -> Result<Message, OfError> {
    Ok(match h.kind {
        msg::HELLO => {
            // Elements: type, length, body padded to 8; only the version
            // bitmap (type 1) is defined. A HELLO of an older version has
            // none, and may even carry other bytes.
            let mut versions = 0;
            while r.remaining() >= 4 && h.version >= OFP_VERSION {
                let kind = r.u16()?;
                let len = usize::from(r.u16()?);
                if len < 4 {
                    return Err(OfError::new(err::HELLO_FAILED, err::hello::INCOMPATIBLE));
                }
                let mut e = r.sub(len - 4, OfError::bad_len())?;
                r.skip((len.next_multiple_of(8) - len).min(r.remaining()))?;
                if kind == 1 {
                    versions = e.u32()?;
                }
            }
            Message::Hello { versions }
        }
        msg::ERROR => Message::Error {
            kind: r.u16()?,
            code: r.u16()?,
            data: r.rest().to_vec(),
        },
        msg::ECHO_REQUEST => Message::EchoRequest(r.rest().to_vec()),
        msg::ECHO_REPLY => Message::EchoReply(r.rest().to_vec()),
        msg::EXPERIMENTER => Message::Experimenter {
            experimenter: r.u32()?,
            exp_type: r.u32()?,
            data: r.rest().to_vec(),
        },
        msg::FEATURES_REQUEST => empty(r, Message::FeaturesRequest)?,
        msg::FEATURES_REPLY => {
            let datapath_id = r.u64()?;
            let n_buffers = r.u32()?;
            let n_tables = r.u8()?;
            r.skip(3)?;
            let capabilities = r.u32()?;
            r.skip(4)?;
            empty(
                r,
                Message::FeaturesReply {
                    datapath_id,
                    n_buffers,
                    n_tables,
                    capabilities,
                },
            )?
        }
        msg::GET_CONFIG_REQUEST => empty(r, Message::GetConfigRequest)?,
        msg::GET_CONFIG_REPLY | msg::SET_CONFIG => {
            let c = SwitchConfig {
                flags: r.u16()?,
                miss_send_len: r.u16()?,
            };
            let m = if h.kind == msg::SET_CONFIG {
                Message::SetConfig(c)
            } else {
                Message::GetConfigReply(c)
            };
            empty(r, m)?
        }
        msg::PACKET_IN => {
            let buffer_id = r.u32()?;
            let total_len = r.u16()?;
            let reason = r.u8()?;
            let table_id = r.u8()?;
            let cookie = r.u64()?;
            let matching = Match::decode(r)?;
            r.skip(2)?;
            Message::PacketIn(PacketIn {
                buffer_id,
                total_len,
                reason,
                table_id,
                cookie,
                matching,
                data: r.rest().to_vec(),
            })
        }
        msg::FLOW_REMOVED => {
            let cookie = r.u64()?;
            let priority = r.u16()?;
            let reason = r.u8()?;
            let table_id = r.u8()?;
            let (duration_sec, duration_nsec) = (r.u32()?, r.u32()?);
            let (idle_timeout, hard_timeout) = (r.u16()?, r.u16()?);
            let (packet_count, byte_count) = (r.u64()?, r.u64()?);
            let matching = Match::decode(r)?;
            empty(
                r,
                Message::FlowRemoved(FlowRemoved {
                    cookie,
                    priority,
                    reason,
                    table_id,
                    duration_sec,
                    duration_nsec,
                    idle_timeout,
                    hard_timeout,
                    packet_count,
                    byte_count,
                    matching,
                }),
            )?
        }
        msg::PORT_STATUS => {
            let reason = r.u8()?;
            r.skip(7)?;
            let port = decode_port(r)?;
            empty(r, Message::PortStatus { reason, port })?
        }
        msg::PACKET_OUT => {
            let buffer_id = r.u32()?;
            let in_port = r.u32()?;
            let actions_len = usize::from(r.u16()?);
            r.skip(6)?;
            let mut a = r.sub(actions_len, OfError::bad_len())?;
            Message::PacketOut {
                buffer_id,
                in_port,
                actions: decode_actions(&mut a)?,
                data: r.rest().to_vec(),
            }
        }
        msg::FLOW_MOD => {
            let cookie = r.u64()?;
            let cookie_mask = r.u64()?;
            let table_id = r.u8()?;
            let command = r.u8()?;
            let (idle_timeout, hard_timeout, priority) = (r.u16()?, r.u16()?, r.u16()?);
            let (buffer_id, out_port, out_group) = (r.u32()?, r.u32()?, r.u32()?);
            let flags = r.u16()?;
            r.skip(2)?;
            let matching = Match::decode(r)?;
            Message::FlowMod(FlowMod {
                cookie,
                cookie_mask,
                table_id,
                command,
                idle_timeout,
                hard_timeout,
                priority,
                buffer_id,
                out_port,
                out_group,
                flags,
                matching,
                instructions: decode_instructions(r)?,
            })
        }
        msg::MULTIPART_REQUEST | msg::MULTIPART_REPLY => {
            let kind = r.u16()?;
            let flags = r.u16()?;
            r.skip(4)?;
            if h.kind == msg::MULTIPART_REQUEST {
                Message::MultipartRequest {
                    flags,
                    body: decode_multipart_request(kind, r)?,
                }
            } else {
                Message::MultipartReply {
                    flags,
                    body: decode_multipart_reply(kind, r)?,
                }
            }
        }
        msg::BARRIER_REQUEST => empty(r, Message::BarrierRequest)?,
        msg::BARRIER_REPLY => empty(r, Message::BarrierReply)?,
        msg::ROLE_REQUEST | msg::ROLE_REPLY => {
            let role = r.u32()?;
            r.skip(4)?;
            let generation_id = r.u64()?;
            let m = if h.kind == msg::ROLE_REQUEST {
                Message::RoleRequest {
                    role,
                    generation_id,
                }
            } else {
                Message::RoleReply {
                    role,
                    generation_id,
                }
            };
            empty(r, m)?
        }
        msg::METER_MOD => {
            let command = r.u16()?;
            let flags = r.u16()?;
            let meter_id = r.u32()?;
            Message::MeterMod(MeterMod {
                command,
                flags,
                meter_id,
                bands: decode_bands(r)?,
            })
        }
        msg::GROUP_MOD
        | msg::PORT_MOD
        | msg::TABLE_MOD
        | 22 // QUEUE_GET_CONFIG_REQUEST
        | msg::GET_ASYNC_REQUEST
        | msg::SET_ASYNC => Message::Unsupported { kind: h.kind },
        _ => return Err(bad_request(err::request::BAD_TYPE)),
    })
}

/// The wire type of a message.
pub fn kind(m: &Message) -> u8 {
    match m {
        Message::Hello { .. } => msg::HELLO,
        Message::Error { .. } => msg::ERROR,
        Message::EchoRequest(_) => msg::ECHO_REQUEST,
        Message::EchoReply(_) => msg::ECHO_REPLY,
        Message::Experimenter { .. } => msg::EXPERIMENTER,
        Message::FeaturesRequest => msg::FEATURES_REQUEST,
        Message::FeaturesReply { .. } => msg::FEATURES_REPLY,
        Message::GetConfigRequest => msg::GET_CONFIG_REQUEST,
        Message::GetConfigReply(_) => msg::GET_CONFIG_REPLY,
        Message::SetConfig(_) => msg::SET_CONFIG,
        Message::PacketIn(_) => msg::PACKET_IN,
        Message::FlowRemoved(_) => msg::FLOW_REMOVED,
        Message::PortStatus { .. } => msg::PORT_STATUS,
        Message::PacketOut { .. } => msg::PACKET_OUT,
        Message::FlowMod(_) => msg::FLOW_MOD,
        Message::MultipartRequest { .. } => msg::MULTIPART_REQUEST,
        Message::MultipartReply { .. } => msg::MULTIPART_REPLY,
        Message::BarrierRequest => msg::BARRIER_REQUEST,
        Message::BarrierReply => msg::BARRIER_REPLY,
        Message::RoleRequest { .. } => msg::ROLE_REQUEST,
        Message::RoleReply { .. } => msg::ROLE_REPLY,
        Message::MeterMod(_) => msg::METER_MOD,
        Message::Unsupported { kind } => *kind,
    }
}

/// Encodes `m` with `xid`. `None` if it would exceed [`MAX_LEN`] (a
/// multipart reply must be split by the caller first).
pub fn encode(xid: u32, m: &Message) -> Option<Vec<u8>> {
    let mut w = Writer::new();
    w.u8(OFP_VERSION).u8(kind(m)).u16(0).u32(xid);
    match m {
        Message::Hello { versions } => {
            if *versions != 0 {
                w.u16(1).u16(8).u32(*versions);
            }
        }
        Message::Error { kind, code, data } => {
            w.u16(*kind).u16(*code).bytes(data);
        }
        Message::EchoRequest(d) | Message::EchoReply(d) => {
            w.bytes(d);
        }
        Message::Experimenter {
            experimenter,
            exp_type,
            data,
        } => {
            w.u32(*experimenter).u32(*exp_type).bytes(data);
        }
        Message::FeaturesRequest
        | Message::GetConfigRequest
        | Message::BarrierRequest
        | Message::BarrierReply
        | Message::Unsupported { .. } => {}
        Message::FeaturesReply {
            datapath_id,
            n_buffers,
            n_tables,
            capabilities,
        } => {
            w.u64(*datapath_id).u32(*n_buffers).u8(*n_tables).zeros(3);
            w.u32(*capabilities).zeros(4);
        }
        Message::GetConfigReply(c) | Message::SetConfig(c) => {
            w.u16(c.flags).u16(c.miss_send_len);
        }
        Message::PacketIn(p) => {
            w.u32(p.buffer_id)
                .u16(p.total_len)
                .u8(p.reason)
                .u8(p.table_id);
            w.u64(p.cookie);
            p.matching.encode(&mut w);
            w.zeros(2).bytes(&p.data);
        }
        Message::FlowRemoved(f) => {
            w.u64(f.cookie).u16(f.priority).u8(f.reason).u8(f.table_id);
            w.u32(f.duration_sec).u32(f.duration_nsec);
            w.u16(f.idle_timeout).u16(f.hard_timeout);
            w.u64(f.packet_count).u64(f.byte_count);
            f.matching.encode(&mut w);
        }
        Message::PortStatus { reason, port } => {
            w.u8(*reason).zeros(7);
            encode_port(port, &mut w);
        }
        Message::PacketOut {
            buffer_id,
            in_port,
            actions,
            data,
        } => {
            w.u32(*buffer_id).u32(*in_port);
            let at = w.len();
            w.u16(0).zeros(6);
            let start = w.len();
            encode_actions(actions, &mut w);
            w.patch_len(at, start);
            w.bytes(data);
        }
        Message::FlowMod(f) => {
            w.u64(f.cookie)
                .u64(f.cookie_mask)
                .u8(f.table_id)
                .u8(f.command);
            w.u16(f.idle_timeout).u16(f.hard_timeout).u16(f.priority);
            w.u32(f.buffer_id)
                .u32(f.out_port)
                .u32(f.out_group)
                .u16(f.flags);
            w.zeros(2);
            f.matching.encode(&mut w);
            encode_instructions(&f.instructions, &mut w);
        }
        Message::MultipartRequest { flags, body } => {
            w.u16(multipart_request_kind(body)).u16(*flags).zeros(4);
            encode_multipart_request(body, &mut w);
        }
        Message::MultipartReply { flags, body } => {
            w.u16(multipart_reply_kind(body)).u16(*flags).zeros(4);
            encode_multipart_reply(body, &mut w);
        }
        Message::RoleRequest {
            role,
            generation_id,
        }
        | Message::RoleReply {
            role,
            generation_id,
        } => {
            w.u32(*role).zeros(4).u64(*generation_id);
        }
        Message::MeterMod(m) => {
            w.u16(m.command).u16(m.flags).u32(m.meter_id);
            encode_bands(&m.bands, &mut w);
        }
    }
    if w.len() > MAX_LEN {
        return None;
    }
    w.patch_len(2, 0);
    Some(w.buf)
}

/// The error message answering a request: the offending message's first
/// 64 bytes as data, as OpenFlow asks.
pub fn error_for(request: &[u8], e: OfError) -> Message {
    Message::Error {
        kind: e.kind,
        code: e.code,
        data: request[..request.len().min(64)].to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::consts::{flow_mod, meter, port};
    use super::super::oxm::{Field, Masked};
    use super::*;

    fn round_trip(m: Message) {
        let bytes = encode(0x1234, &m).expect("fits");
        assert_eq!(frame_len(&bytes), Some(Ok(bytes.len())));
        assert_eq!(decode(&bytes), Ok((0x1234, m)));
    }

    fn flow_mod() -> FlowMod {
        FlowMod {
            cookie: 0xc0ffee,
            cookie_mask: 0,
            table_id: 0,
            command: flow_mod::ADD,
            idle_timeout: 10,
            hard_timeout: 0,
            priority: 100,
            buffer_id: super::super::consts::NO_BUFFER,
            out_port: port::ANY,
            out_group: super::super::consts::GROUP_ANY,
            flags: flow_mod::FLAG_SEND_FLOW_REM,
            matching: Match::new(vec![
                Field::InPort(1),
                Field::EthType(0x0800),
                Field::IpProto(6),
                Field::TcpDst(22),
            ]),
            instructions: vec![Instruction::ApplyActions(vec![])],
        }
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(Message::Hello { versions: 1 << 4 });
        round_trip(Message::EchoRequest(b"ping".to_vec()));
        round_trip(Message::FeaturesReply {
            datapath_id: 0x0000_5254_00b0_0001,
            n_buffers: 0,
            n_tables: 1,
            capabilities: 7,
        });
        round_trip(Message::SetConfig(SwitchConfig {
            flags: 0,
            miss_send_len: 128,
        }));
        round_trip(Message::FlowMod(flow_mod()));
        round_trip(Message::MeterMod(MeterMod {
            command: meter::ADD,
            flags: meter::FLAG_KBPS | meter::FLAG_STATS,
            meter_id: 1,
            bands: vec![MeterBand {
                kind: meter::BAND_DROP,
                rate: 10_000,
                burst_size: 0,
                extra: vec![0; 4],
            }],
        }));
        round_trip(Message::PacketIn(PacketIn {
            buffer_id: super::super::consts::NO_BUFFER,
            total_len: 60,
            reason: 0,
            table_id: 0,
            cookie: u64::MAX,
            matching: Match::new(vec![Field::InPort(1)]),
            data: vec![0xab; 60],
        }));
        round_trip(Message::RoleRequest {
            role: 2,
            generation_id: 9,
        });
        round_trip(Message::MultipartRequest {
            flags: 0,
            body: MultipartRequest::Flow(FlowStatsRequest {
                table_id: 0xff,
                out_port: port::ANY,
                out_group: super::super::consts::GROUP_ANY,
                cookie: 0,
                cookie_mask: 0,
                matching: Match::default(),
            }),
        });
        let f = flow_mod();
        round_trip(Message::MultipartReply {
            flags: 0,
            body: MultipartReply::Flow(vec![FlowStats {
                table_id: 0,
                duration_sec: 1,
                duration_nsec: 2,
                priority: f.priority,
                idle_timeout: f.idle_timeout,
                hard_timeout: 0,
                flags: f.flags,
                cookie: f.cookie,
                packet_count: 3,
                byte_count: 4,
                matching: f.matching.clone(),
                instructions: f.instructions.clone(),
            }]),
        });
        round_trip(Message::MultipartReply {
            flags: 0,
            body: MultipartReply::PortStats(vec![PortStats {
                port_no: 1,
                rx_packets: 5,
                tx_bytes: 6,
                ..Default::default()
            }]),
        });
        round_trip(Message::MultipartReply {
            flags: 0,
            body: MultipartReply::Meter(vec![MeterStats {
                meter_id: 1,
                flow_count: 2,
                packet_in_count: 3,
                byte_in_count: 4,
                duration_sec: 5,
                duration_nsec: 6,
                bands: vec![(7, 8)],
            }]),
        });
        round_trip(Message::MultipartReply {
            flags: 0,
            body: MultipartReply::Desc(Desc {
                mfr: "bmgnic".into(),
                hw: "BMGNIC".into(),
                sw: "bmgnic-rmed".into(),
                serial: "1".into(),
                dp: "rack".into(),
            }),
        });
        round_trip(Message::PortStatus {
            reason: 2,
            port: Port {
                port_no: 1,
                hw_addr: [2, 0, 0, 0, 0, 1],
                name: "host".into(),
                config: 0,
                state: 4,
                curr: 0,
                advertised: 0,
                supported: 0,
                peer: 0,
                curr_speed: 10_000_000,
                max_speed: 10_000_000,
            },
        });
    }

    #[test]
    fn fixed_sizes_match_the_specification() {
        let len = |m: &Message| encode(0, m).map(|b| b.len());
        assert_eq!(len(&Message::FeaturesRequest), Some(8));
        assert_eq!(
            len(&Message::FeaturesReply {
                datapath_id: 0,
                n_buffers: 0,
                n_tables: 0,
                capabilities: 0
            }),
            Some(32)
        );
        assert_eq!(len(&Message::Hello { versions: 16 }), Some(16));
        let mut empty = flow_mod();
        empty.matching = Match::default();
        empty.instructions.clear();
        // ofp_flow_mod is 56 bytes with its empty 8-byte match.
        assert_eq!(len(&Message::FlowMod(empty)), Some(56));
    }

    #[test]
    fn errors_carry_the_xid() {
        let mut bytes = encode(7, &Message::BarrierRequest).unwrap();
        bytes[0] = 0x01;
        assert_eq!(
            decode(&bytes),
            Err((7, OfError::new(err::BAD_REQUEST, err::request::BAD_VERSION)))
        );
        let mut bytes = encode(8, &Message::BarrierRequest).unwrap();
        bytes[1] = 200;
        assert_eq!(
            decode(&bytes),
            Err((8, OfError::new(err::BAD_REQUEST, err::request::BAD_TYPE)))
        );
        let bytes = encode(9, &Message::FeaturesRequest).unwrap();
        assert_eq!(decode(&bytes[..7]), Err((0, OfError::bad_len())));
        let mut long = bytes.clone();
        long.extend_from_slice(&[0; 4]);
        long[3] = 12;
        assert_eq!(decode(&long), Err((9, OfError::bad_len())));
    }

    /// What the fuzz target checks, on one input.
    fn reencodes_stably(data: &[u8]) {
        let mut rest = data;
        while let Some(Ok(len)) = frame_len(rest) {
            if len > rest.len() {
                break;
            }
            let (one, tail) = rest.split_at(len);
            rest = tail;
            if let Ok((xid, m)) = decode(one) {
                let first = encode(xid, &m).expect("fits");
                let (_, again) = decode(&first).expect("our encoding decodes");
                assert_eq!(encode(xid, &again), Some(first));
            }
        }
    }

    #[test]
    fn names_reencode_to_themselves() {
        // The fuzzer's find: PORT_DESC replies whose port names fill their
        // 16 bytes with no terminator, one with bytes of no encoding.
        let hex = [
            "0413009000005d03000d7a7a7a7a7a7a407a7a7a7a7a7a7a7a7a7a7a7a7a7a7a",
            "7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a5a7a7a7a7a7a7a307a7a7a7a7a3030",
            "3030303030303030303030303030303030303030303030303030307a7a7a7a7a",
            "7a7a267a7a7a7a7a8685d7858585a2fc5d0300041300127a307a7a7a7a7a3030",
            "3030303030303030303030303030303030303030303030303030307a7a7a7a7a",
            "7a7a267a7a7a7a7a8685d7858585a2fc5d030004130012080013004000091208",
            "0013004000041303085d000000003f003f02",
        ]
        .concat();
        let data: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        reencodes_stably(&data);
        // A full name loses its last byte, the terminator's place.
        let mut port = [0u8; 64];
        port[16..32].fill(b'z');
        let mut raw = vec![
            4,
            msg::MULTIPART_REPLY,
            0,
            80,
            0,
            0,
            0,
            1,
            0,
            13,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        raw.extend_from_slice(&port);
        let Ok((
            _,
            Message::MultipartReply {
                body: MultipartReply::PortDesc(ports),
                ..
            },
        )) = decode(&raw)
        else {
            panic!("not a PORT_DESC reply");
        };
        assert_eq!(ports[0].name, "z".repeat(15));
    }

    #[test]
    fn a_truncated_flow_mod_is_refused() {
        let mut f = flow_mod();
        f.matching
            .fields
            .push(Field::Ipv4Dst(Masked::exact([10, 0, 0, 2])));
        let bytes = encode(1, &Message::FlowMod(f)).unwrap();
        for cut in (8..bytes.len()).step_by(3) {
            let mut short = bytes[..cut].to_vec();
            short[2..4].copy_from_slice(&(cut as u16).to_be_bytes());
            assert!(decode(&short).is_err(), "cut at {cut}");
        }
    }
}
