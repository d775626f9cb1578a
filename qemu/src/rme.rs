// SPDX-License-Identifier: GPL-2.0

//! The RME bank: the tenant's identity, VXLAN tenancy, flow table, meters,
//! policy and billing counters. Reached only through NC-SI OEM commands
//! (`crate::ncsi_oem`); nothing on the PCIe side holds a path to it.

use crate::flow::FlowTable;
use crate::meter::MeterTable;
use crate::ncsi_oem::{
    self as oem, FlowCountersRecord, FlowRecord, IdentityRecord, MeterCountersRecord, MeterRecord,
    OemHeader, PolicyRecord, PortCountersRecord, Record, SlotRecord, TableInfoRecord, TenantRecord,
    VtepRecord,
};
use crate::regs::guest::STAT_COUNT;

/// Something the RME should hear about: what the pipeline reports and
/// [`RmeBank::event_reports`] turns into OEM AENs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A guest packet matched no flow.
    Miss {
        /// The packet's fields.
        key: oem::FlowKey,
    },
    /// The guest sent from an address that is not its own.
    Spoofed {
        /// `ncsi_oem::VIOLATION_SPOOFED_*`.
        kind: u8,
        /// The packet's fields.
        key: oem::FlowKey,
    },
    /// The guest wrote a read-only guest-bank register.
    RoWrite {
        /// The register offset.
        offset: u16,
    },
}

/// Violation AENs allowed per second (they are counted regardless).
const VIOLATION_EVENTS_PER_SEC: u32 = 16;

/// Entries of the remote VTEP table.
pub const VTEP_SLOTS: usize = 256;
/// Entries of the meter table.
pub const METER_SLOTS: usize = 256;

/// RME-only counters, after the guest-visible ones in
/// [`PortCountersRecord`] (names in `ncsi_oem::RME_COUNTER_NAMES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum RmeCounter {
    /// Guest packets that matched no flow.
    TableMisses = 0,
    /// Table-miss AENs sent.
    MissEventsSent,
    /// Table-miss AENs withheld by the rate limit.
    MissEventsSuppressed,
    /// Violation AENs sent.
    ViolationEventsSent,
    /// OEM commands handled.
    NcsiCommands,
    /// OEM commands refused.
    NcsiCommandErrors,
}

/// Number of RME-only counters.
pub const RME_COUNTERS: usize = oem::PORT_COUNTERS - STAT_COUNT;

/// The RME bank.
pub struct RmeBank {
    identity: IdentityRecord,
    tenant: TenantRecord,
    vteps: Vec<Option<VtepRecord>>,
    /// The NIC's flow table (a cache of the RME's larger one).
    pub flows: FlowTable,
    /// Meters referenced by flows.
    pub meters: MeterTable,
    policy: PolicyRecord,
    /// Anti-spoofing on; only an open device (`--open`) starts without it,
    /// until the RME sets an identity.
    spoof_check: bool,
    counters: [u64; RME_COUNTERS],
    /// Misses since the last miss AEN, and when the rate-limit window began.
    misses_unreported: u32,
    violations_unreported: u32,
    event_window_start_ns: u64,
    miss_events_in_window: u32,
    violation_events_in_window: u32,
}

impl RmeBank {
    /// An unconfigured bank: no identity (so every guest frame is spoofed),
    /// no tenant, empty tables, miss policy drop, no events.
    pub fn new(table_size: usize) -> Self {
        Self {
            identity: IdentityRecord {
                mtu_cap: 1500,
                ..IdentityRecord::default()
            },
            tenant: TenantRecord::default(),
            vteps: vec![None; VTEP_SLOTS],
            flows: FlowTable::new(u32::try_from(table_size).unwrap_or(u32::MAX)),
            meters: MeterTable::new(METER_SLOTS as u16),
            policy: PolicyRecord::default(),
            spoof_check: true,
            counters: [0; RME_COUNTERS],
            misses_unreported: 0,
            violations_unreported: 0,
            event_window_start_ns: 0,
            miss_events_in_window: 0,
            violation_events_in_window: 0,
        }
    }

    /// Sets the MAC the guest sees until the RME assigns one (the NIC's
    /// factory address).
    pub fn set_factory_mac(&mut self, mac: [u8; 6]) {
        self.identity.mac = mac;
    }

    /// Opens an unconfigured device for use without an RME: frames pass
    /// unencapsulated and unchecked until the RME sets an identity.
    pub fn open(&mut self) {
        self.spoof_check = false;
        self.policy.miss_policy = oem::MISS_ALLOW;
    }

    /// Whether anti-spoofing is enforced.
    pub fn spoof_check_enabled(&self) -> bool {
        self.spoof_check
    }

    /// The guest identity.
    pub fn identity(&self) -> &IdentityRecord {
        &self.identity
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantRecord {
        &self.tenant
    }

    /// A remote VTEP.
    pub fn vtep(&self, index: u16) -> Option<&VtepRecord> {
        self.vteps.get(usize::from(index)).and_then(Option::as_ref)
    }

    /// The policy.
    pub fn policy(&self) -> &PolicyRecord {
        &self.policy
    }

    /// Whether the tenant is quarantined.
    pub fn quarantined(&self) -> bool {
        self.policy.quarantined
    }

    /// Increments an RME-only counter.
    pub fn count(&mut self, counter: RmeCounter, n: u64) {
        let c = &mut self.counters[counter as usize];
        *c = c.wrapping_add(n);
    }

    /// An RME-only counter.
    pub fn counter(&self, counter: RmeCounter) -> u64 {
        self.counters[counter as usize]
    }

    /// Turns pipeline events into OEM AEN bodies `(event, body)`, within
    /// the RME-set rate limits. A withheld report is not lost: the next one
    /// carries the number of misses or violations since the last report.
    pub fn event_reports(&mut self, events: &[Event], now_ns: u64) -> Vec<(u8, Vec<u8>)> {
        const SECOND: u64 = 1_000_000_000;
        if now_ns.saturating_sub(self.event_window_start_ns) >= SECOND {
            self.event_window_start_ns = now_ns;
            self.miss_events_in_window = 0;
            self.violation_events_in_window = 0;
        }
        let mut reports = Vec::new();
        for event in events {
            match *event {
                Event::Miss { key } => {
                    self.misses_unreported = self.misses_unreported.saturating_add(1);
                    if self.policy.events & oem::EVENTS_TABLE_MISS == 0 {
                        continue;
                    }
                    if self.miss_events_in_window >= self.policy.miss_events_per_sec {
                        self.count(RmeCounter::MissEventsSuppressed, 1);
                        continue;
                    }
                    let body = oem::MissEvent {
                        key,
                        misses: self.misses_unreported,
                    };
                    self.misses_unreported = 0;
                    self.miss_events_in_window += 1;
                    self.count(RmeCounter::MissEventsSent, 1);
                    reports.push((oem::EVENT_TABLE_MISS, encode(&body)));
                }
                Event::Spoofed { .. } | Event::RoWrite { .. } => {
                    self.violations_unreported = self.violations_unreported.saturating_add(1);
                    if self.policy.events & oem::EVENTS_VIOLATION == 0
                        || self.violation_events_in_window >= VIOLATION_EVENTS_PER_SEC
                    {
                        continue;
                    }
                    let body = match *event {
                        Event::Spoofed { kind, key } => oem::ViolationEvent {
                            kind,
                            count: self.violations_unreported,
                            key,
                        },
                        Event::RoWrite { offset } => oem::ViolationEvent {
                            kind: oem::VIOLATION_RO_WRITE,
                            count: self.violations_unreported,
                            key: oem::FlowKey {
                                l4_dst: offset,
                                ..oem::FlowKey::default()
                            },
                        },
                        Event::Miss { .. } => continue,
                    };
                    self.violations_unreported = 0;
                    self.violation_events_in_window += 1;
                    self.count(RmeCounter::ViolationEventsSent, 1);
                    reports.push((oem::EVENT_VIOLATION, encode(&body)));
                }
            }
        }
        reports
    }

    /// Sets `records` of `object` as one OEM SET command would, for tests,
    /// benchmarks and fuzzing that configure the bank without NC-SI framing.
    pub fn apply<R: Record>(&mut self, object: u8, records: &[R], now_ns: u64) -> Result<(), u16> {
        let mut bytes = vec![0u8; R::LEN * records.len()];
        for (r, chunk) in records.iter().zip(bytes.chunks_mut(R::LEN)) {
            r.encode(chunk);
        }
        let header = OemHeader {
            version: oem::OEM_VERSION,
            op: oem::OP_SET,
            object,
            count: u8::try_from(records.len()).map_err(|_| oem::REASON_BAD_COUNT)?,
        };
        self.handle_oem(&header, &bytes, &mut Vec::new(), &[0; STAT_COUNT], now_ns)
            .map(|_| ())
    }

    /// Executes one BMGNIC OEM command. Appends the answered records to
    /// `out` and returns their number, or an OEM reason code. A refused
    /// command changes nothing: records are all decoded and checked, and
    /// the answer is known to fit one response ([`ANSWER_ROOM`], else
    /// `REASON_BAD_COUNT`), before any is applied. `guest_stats` are the
    /// device's guest-visible counters (for port counters); `now_ns` stamps
    /// flow and meter state.
    pub fn handle_oem(
        &mut self,
        header: &OemHeader,
        records: &[u8],
        out: &mut Vec<u8>,
        guest_stats: &[u64; STAT_COUNT],
        now_ns: u64,
    ) -> Result<u8, u16> {
        self.count(RmeCounter::NcsiCommands, 1);
        let result = self.dispatch(header, records, out, guest_stats, now_ns);
        if result.is_err() {
            self.count(RmeCounter::NcsiCommandErrors, 1);
        }
        result
    }

    fn dispatch(
        &mut self,
        h: &OemHeader,
        records: &[u8],
        out: &mut Vec<u8>,
        guest_stats: &[u64; STAT_COUNT],
        now_ns: u64,
    ) -> Result<u8, u16> {
        if h.version != oem::OEM_VERSION {
            return Err(oem::REASON_BAD_VERSION);
        }
        match (h.object, h.op) {
            (oem::OBJ_IDENTITY, oem::OP_GET) => answer_one(out, &self.identity),
            (oem::OBJ_IDENTITY, oem::OP_SET) => {
                let [id] = decode_exact::<IdentityRecord, 1>(h, records)?;
                if !(crate::regs::guest::MTU_MIN..=crate::regs::guest::MTU_MAX)
                    .contains(&u32::from(id.mtu_cap))
                {
                    return Err(oem::REASON_BAD_RECORD);
                }
                self.identity = id;
                self.spoof_check = true;
                Ok(0)
            }
            (oem::OBJ_TENANT, oem::OP_GET) => answer_one(out, &self.tenant),
            (oem::OBJ_TENANT, oem::OP_SET) => {
                let [t] = decode_exact::<TenantRecord, 1>(h, records)?;
                // Tenancy changes are rare and worth an operator's log line.
                log::info!("RME set tenant vni {}", t.vni);
                self.tenant = t;
                Ok(0)
            }
            (oem::OBJ_VTEP, oem::OP_SET) => {
                let vteps = decode_all::<VtepRecord>(h, records)?;
                if vteps.iter().any(|v| usize::from(v.index) >= VTEP_SLOTS) {
                    return Err(oem::REASON_BAD_INDEX);
                }
                for v in vteps {
                    self.vteps[usize::from(v.index)] = Some(v);
                }
                Ok(0)
            }
            (oem::OBJ_VTEP, oem::OP_GET | oem::OP_DEL) => {
                let indices = decode_all::<SlotRecord>(h, records)?;
                if indices.iter().any(|s| s.slot as usize >= VTEP_SLOTS) {
                    return Err(oem::REASON_BAD_INDEX);
                }
                fits::<VtepRecord>(indices.len())?;
                let mut n = 0;
                for s in indices {
                    let i = s.slot as usize;
                    let v = self.vteps[i].unwrap_or(VtepRecord {
                        index: i as u16,
                        ..VtepRecord::default()
                    });
                    if h.op == oem::OP_DEL {
                        self.vteps[i] = None;
                    }
                    n += append(out, &v);
                }
                Ok(n)
            }
            (oem::OBJ_FLOW, oem::OP_SET) => {
                let flows = decode_all::<FlowRecord>(h, records)?;
                for f in &flows {
                    self.check_flow(f)?;
                }
                for f in flows {
                    self.flows.set(f).map_err(|_| oem::REASON_BAD_RECORD)?;
                }
                Ok(0)
            }
            (oem::OBJ_FLOW, oem::OP_GET) => {
                let slots = self.decode_slots(h, records)?;
                fits::<FlowRecord>(slots.len())?;
                let mut n = 0;
                for s in slots {
                    let f = self.flows.get(s).copied().unwrap_or(FlowRecord {
                        slot: s,
                        ..FlowRecord::default()
                    });
                    n += append(out, &f);
                }
                Ok(n)
            }
            (oem::OBJ_FLOW, oem::OP_DEL) => {
                let slots = self.decode_slots(h, records)?;
                fits::<FlowCountersRecord>(slots.len())?;
                let mut n = 0;
                for s in slots {
                    // The final counters travel back with the deletion so
                    // that the RME folds them into its own: no packet of
                    // a departing entry goes unbilled.
                    let c = self.flows.del(s, now_ns).unwrap_or(FlowCountersRecord {
                        slot: s,
                        ..FlowCountersRecord::default()
                    });
                    n += append(out, &c);
                }
                Ok(n)
            }
            (oem::OBJ_FLOW_COUNTERS, oem::OP_GET) => {
                let slots = self.decode_slots(h, records)?;
                fits::<FlowCountersRecord>(slots.len())?;
                let mut n = 0;
                for s in slots {
                    let c = self
                        .flows
                        .counters(s, now_ns)
                        .unwrap_or(FlowCountersRecord {
                            slot: s,
                            ..FlowCountersRecord::default()
                        });
                    n += append(out, &c);
                }
                Ok(n)
            }
            (oem::OBJ_METER, oem::OP_SET) => {
                let meters = decode_all::<MeterRecord>(h, records)?;
                if meters.iter().any(|m| usize::from(m.index) >= METER_SLOTS) {
                    return Err(oem::REASON_BAD_INDEX);
                }
                // Checked before any is applied: a refused command changes
                // nothing.
                if meters
                    .iter()
                    .any(|m| m.flags & !oem::METER_FLAGS_KNOWN != 0)
                {
                    return Err(oem::REASON_BAD_RECORD);
                }
                for m in meters {
                    self.meters
                        .set(&m, now_ns)
                        .map_err(|_| oem::REASON_BAD_INDEX)?;
                }
                Ok(0)
            }
            (oem::OBJ_METER, oem::OP_GET | oem::OP_DEL) => {
                let indices = decode_all::<SlotRecord>(h, records)?;
                if indices.iter().any(|s| s.slot as usize >= METER_SLOTS) {
                    return Err(oem::REASON_BAD_INDEX);
                }
                fits::<MeterRecord>(indices.len())?;
                let mut n = 0;
                for s in indices {
                    let index = s.slot as u16;
                    let m = self.meters.get(index).unwrap_or(MeterRecord {
                        index,
                        ..MeterRecord::default()
                    });
                    if h.op == oem::OP_DEL {
                        let _ = self.meters.del(index);
                    }
                    n += append(out, &m);
                }
                Ok(n)
            }
            (oem::OBJ_METER_COUNTERS, oem::OP_GET) => {
                let indices = decode_all::<SlotRecord>(h, records)?;
                if indices.iter().any(|s| s.slot as usize >= METER_SLOTS) {
                    return Err(oem::REASON_BAD_INDEX);
                }
                fits::<MeterCountersRecord>(indices.len())?;
                let mut n = 0;
                for s in indices {
                    n += append(out, &self.meters.counters(s.slot as u16));
                }
                Ok(n)
            }
            (oem::OBJ_PORT_COUNTERS, oem::OP_GET) => {
                decode_exact::<SlotRecord, 0>(h, records)?;
                let mut counters = [0u64; oem::PORT_COUNTERS];
                counters[..STAT_COUNT].copy_from_slice(guest_stats);
                counters[STAT_COUNT..].copy_from_slice(&self.counters);
                answer_one(out, &PortCountersRecord { counters })
            }
            (oem::OBJ_POLICY, oem::OP_GET) => answer_one(out, &self.policy),
            (oem::OBJ_POLICY, oem::OP_SET) => {
                let [p] = decode_exact::<PolicyRecord, 1>(h, records)?;
                self.policy = p;
                Ok(0)
            }
            (oem::OBJ_TABLE_INFO, oem::OP_GET) => {
                decode_exact::<SlotRecord, 0>(h, records)?;
                let info = TableInfoRecord {
                    flow_slots: self.flows.capacity(),
                    flows_used: self.flows.len(),
                    vteps: VTEP_SLOTS as u16,
                    meters: METER_SLOTS as u16,
                };
                answer_one(out, &info)
            }
            (
                oem::OBJ_IDENTITY
                | oem::OBJ_TENANT
                | oem::OBJ_VTEP
                | oem::OBJ_FLOW
                | oem::OBJ_METER
                | oem::OBJ_METER_COUNTERS
                | oem::OBJ_FLOW_COUNTERS
                | oem::OBJ_PORT_COUNTERS
                | oem::OBJ_POLICY
                | oem::OBJ_TABLE_INFO,
                _,
            ) => Err(oem::REASON_BAD_OP),
            _ => Err(oem::REASON_UNKNOWN_OBJECT),
        }
    }

    fn check_flow(&self, f: &FlowRecord) -> Result<(), u16> {
        if f.slot >= self.flows.capacity() {
            return Err(oem::REASON_BAD_INDEX);
        }
        crate::flow::validate(f).map_err(|_| oem::REASON_BAD_RECORD)?;
        if f.meter != oem::NO_METER && usize::from(f.meter) >= METER_SLOTS {
            return Err(oem::REASON_BAD_INDEX);
        }
        if f.action == oem::ACTION_ENCAP && usize::from(f.vtep) >= VTEP_SLOTS {
            return Err(oem::REASON_BAD_INDEX);
        }
        Ok(())
    }

    fn decode_slots(&self, h: &OemHeader, records: &[u8]) -> Result<Vec<u32>, u16> {
        let slots = decode_all::<SlotRecord>(h, records)?;
        if slots.iter().any(|s| s.slot >= self.flows.capacity()) {
            return Err(oem::REASON_BAD_INDEX);
        }
        Ok(slots.into_iter().map(|s| s.slot).collect())
    }
}

/// Bytes of answered records one OEM response holds.
pub const ANSWER_ROOM: usize = bmgnic_wire::ncsi::MAX_PAYLOAD - oem::RESPONSE_PREFIX;

// Commands answering one record need no check: the largest fits.
const _: () = assert!(<PortCountersRecord as Record>::LEN <= ANSWER_ROOM);

/// Refuses a command whose `n` answers of `R` would not fit one response,
/// before it changes anything (a DEL that answered an error after deleting
/// would leave the RME's view of the table wrong).
fn fits<R: Record>(n: usize) -> Result<(), u16> {
    if n.saturating_mul(R::LEN) > ANSWER_ROOM {
        return Err(oem::REASON_BAD_COUNT);
    }
    Ok(())
}

/// Decodes exactly `header.count` records filling `records`.
fn decode_all<R: Record>(h: &OemHeader, records: &[u8]) -> Result<Vec<R>, u16> {
    if records.len() != usize::from(h.count) * R::LEN {
        return Err(oem::REASON_BAD_COUNT);
    }
    records
        .chunks_exact(R::LEN)
        .map(|chunk| R::decode(chunk).ok_or(oem::REASON_BAD_RECORD))
        .collect()
}

/// Decodes exactly `N` records.
fn decode_exact<R: Record, const N: usize>(h: &OemHeader, records: &[u8]) -> Result<[R; N], u16> {
    if usize::from(h.count) != N {
        return Err(oem::REASON_BAD_COUNT);
    }
    let all = decode_all::<R>(h, records)?;
    <[R; N]>::try_from(all).map_err(|_| oem::REASON_BAD_COUNT)
}

fn encode<R: Record>(r: &R) -> Vec<u8> {
    let mut v = vec![0u8; R::LEN];
    r.encode(&mut v);
    v
}

fn append<R: Record>(out: &mut Vec<u8>, r: &R) -> u8 {
    let at = out.len();
    out.resize(at + R::LEN, 0);
    r.encode(&mut out[at..]);
    1
}

fn answer_one<R: Record>(out: &mut Vec<u8>, r: &R) -> Result<u8, u16> {
    Ok(append(out, r))
}
