// SPDX-License-Identifier: GPL-2.0

//! The OpenFlow 1.3 switch agent: one flow table, meters and ports over
//! the RME module, driven by messages from a controller, the module's
//! events and the clock. No I/O here: [`Switch::handle`],
//! [`Switch::on_event`] and [`Switch::tick`] return the messages to send,
//! so the whole agent is tested against an in-memory module.
//!
//! The agent keeps what OpenFlow knows of a flow (cookie, match,
//! instructions, timeouts, flags, counters already folded) and the id of
//! the module rule that enforces it. A changed flow gets its new rule
//! before the old one goes, so the NIC never passes a packet that both
//! would drop. When the controller goes away nothing is removed: the
//! module and the NIC keep enforcing every rule (fail-secure), and the
//! next connection finds the same flows and counters.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::mapping::{
    self, map_flow, map_meter, miss_match, TenantView, PORT_FABRIC, PORT_HOST, TUNNEL_PORT_BASE,
};
use crate::openflow::action::{Action, Instruction};
use crate::openflow::buf::OfError;
use crate::openflow::consts::{
    cap, config, err, flow_mod as fm, meter, mp, packet_in, port, port_status, removed, role,
    GROUP_ANY, NO_BUFFER, TABLE_ALL,
};
use crate::openflow::message::{
    Desc, FlowMod, FlowRemoved, FlowStats, FlowStatsRequest, Message, MeterFeatures, MeterMod,
    MeterStats, MultipartReply, MultipartRequest, PacketIn, Port, PortStats, SwitchConfig,
    TableStats,
};
use crate::openflow::oxm::{Field, Match};
use crate::rme::{errno, DevState, FlowSpec, Provisioning, Rme, RmeError, RmeEvent};

/// What the switch says about itself.
#[derive(Clone, Debug)]
pub struct Identity {
    pub datapath_id: u64,
    /// Remote VTEPs the RME configured: tunnel ports `TUNNEL_PORT_BASE + i`.
    pub vteps: Vec<u8>,
    pub serial: String,
}

/// A flow as OpenFlow sees it, and the module rule that enforces it.
#[derive(Clone, Debug)]
struct Flow {
    cookie: u64,
    priority: u16,
    matching: Match,
    instructions: Vec<Instruction>,
    idle_timeout: u16,
    hard_timeout: u16,
    flags: u16,
    rule: u32,
    spec: FlowSpec,
    installed: Instant,
    /// Counters of rules this flow had before (a modify replaces the
    /// rule), folded in.
    base: (u64, u64),
    /// The module's counters at the last poll, and when they last moved.
    seen: (u64, u64),
    active: Instant,
}

impl Flow {
    fn counters(&self) -> (u64, u64) {
        (self.base.0 + self.seen.0, self.base.1 + self.seen.1)
    }

    fn outputs_to(&self, p: u32) -> bool {
        p == port::ANY
            || self.instructions.iter().any(|i| match i {
                Instruction::ApplyActions(a) | Instruction::WriteActions(a) => a
                    .iter()
                    .any(|a| matches!(a, Action::Output { port, .. } if *port == p)),
                _ => false,
            })
    }

    fn removed(&self, reason: u8, now: Instant) -> Message {
        let d = now.duration_since(self.installed);
        let (packet_count, byte_count) = self.counters();
        Message::FlowRemoved(FlowRemoved {
            cookie: self.cookie,
            priority: self.priority,
            reason,
            table_id: 0,
            duration_sec: d.as_secs() as u32,
            duration_nsec: d.subsec_nanos(),
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            packet_count,
            byte_count,
            matching: self.matching.clone(),
        })
    }
}

/// The value and mask bytes of a field, for subset tests.
fn field_bits(f: &Field) -> (Vec<u8>, Vec<u8>) {
    let mut w = crate::openflow::buf::Writer::new();
    f.encode(&mut w);
    let body = &w.buf[4..];
    let has_mask = w.buf[2] & 1 != 0;
    if has_mask {
        let (v, m) = body.split_at(body.len() / 2);
        (v.to_vec(), m.to_vec())
    } else {
        (body.to_vec(), vec![0xff; body.len()])
    }
}

/// Whether every packet `flow` matches is matched by `filter` (OpenFlow's
/// non-strict selection of modify and delete).
fn covered_by(flow: &Match, filter: &Match) -> bool {
    filter.fields.iter().all(|r| {
        let Some(f) = flow.fields.iter().find(|f| f.id() == r.id()) else {
            return false;
        };
        let ((fv, fm), (rv, rm)) = (field_bits(f), field_bits(r));
        fv.len() == rv.len()
            && fv
                .iter()
                .zip(&fm)
                .zip(rv.iter().zip(&rm))
                .all(|((fv, fm), (rv, rm))| fm & rm == *rm && fv & rm == *rv)
    })
}

/// A flow's identity in the table: its priority and its match, fields in
/// a canonical order with masked values (an all-ones mask is an exact
/// match), so that two matches of the same packets are the same key.
type FlowKey = (u16, Vec<((u16, u8), Vec<u8>, Vec<u8>)>);

fn flow_key(priority: u16, m: &Match) -> FlowKey {
    let mut fields: Vec<_> = m
        .fields
        .iter()
        .map(|f| {
            let (value, mask) = field_bits(f);
            (f.id(), value, mask)
        })
        .collect();
    fields.sort_unstable();
    (priority, fields)
}

fn flow_mod_failed(code: u16) -> OfError {
    OfError::new(err::FLOW_MOD_FAILED, code)
}

/// A module refusal, as the OpenFlow error of a flow mod.
fn flow_error(e: &RmeError) -> OfError {
    log::warn!("the RME module refused a rule: {e}");
    match e.errno {
        errno::ENOSPC => flow_mod_failed(err::flow_mod::TABLE_FULL),
        _ => flow_mod_failed(err::flow_mod::UNKNOWN),
    }
}

/// The switch side of OpenFlow over one RME module.
pub struct Switch<R: Rme> {
    rme: R,
    identity: Identity,
    config: SwitchConfig,
    flows: Vec<Flow>,
    /// Where each flow is in `flows`, by its key: an ADD finds the flow
    /// it replaces without a scan of the table.
    index: HashMap<FlowKey, usize>,
    meters: BTreeMap<u32, MeterMod>,
    tenant: TenantView,
    /// Highest generation id of a master or slave role request.
    generation: Option<u64>,
    role: u32,
    /// The host and fabric ports' states at the last poll (quarantine,
    /// fabric link).
    port_states: Option<[u32; 2]>,
    started: Instant,
    /// What the RME provisioned: applied again to a reloaded module.
    provisioning: Provisioning,
}

impl<R: Rme> Switch<R> {
    pub fn new(rme: R, identity: Identity, vni: Option<u32>) -> Self {
        Self {
            rme,
            identity,
            config: SwitchConfig {
                flags: 0,
                miss_send_len: config::DEFAULT_MISS_SEND_LEN,
            },
            flows: Vec::new(),
            index: HashMap::new(),
            meters: BTreeMap::new(),
            tenant: TenantView { vni },
            generation: None,
            role: role::EQUAL,
            port_states: None,
            started: Instant::now(),
            provisioning: Provisioning::default(),
        }
    }

    /// The RME's provisioning, which the daemon applied before any
    /// controller, for the switch to apply again to a reloaded module.
    pub fn with_provisioning(mut self, provisioning: Provisioning) -> Self {
        self.provisioning = provisioning;
        self
    }

    /// The module, for tests and the daemon's own queries.
    pub fn rme(&mut self) -> &mut R {
        &mut self.rme
    }

    /// Number of OpenFlow flows.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    fn push_flow(&mut self, flow: Flow) {
        self.index
            .insert(flow_key(flow.priority, &flow.matching), self.flows.len());
        self.flows.push(flow);
    }

    /// Removes flow `i`; the last flow takes its place. Removing several
    /// in descending order of position is therefore safe.
    fn remove_flow(&mut self, i: usize) -> Flow {
        let flow = self.flows.swap_remove(i);
        self.index.remove(&flow_key(flow.priority, &flow.matching));
        if let Some(moved) = self.flows.get(i) {
            self.index
                .insert(flow_key(moved.priority, &moved.matching), i);
        }
        flow
    }

    /// Answers one decoded message with `xid`; `raw` is the message as
    /// received (errors quote it). A message that found the module
    /// reloaded and was refused for it (its request failed with ESTALE) is
    /// handled again, from `raw`, once the switch's state is installed in
    /// the new module; one that went through (a delete whose rules went
    /// with the old module) keeps its replies.
    pub fn handle(
        &mut self,
        xid: u32,
        msg: Message,
        raw: &[u8],
        now: Instant,
    ) -> Vec<(u32, Message)> {
        let mut out = self.catch_up(now);
        let mut replies = self.handle_message(xid, msg, raw, now);
        if self.rme.take_reload() {
            out.extend(self.reinstall(now));
            let refused = replies
                .iter()
                .any(|(_, m)| matches!(m, Message::Error { .. }));
            if refused {
                if let Ok((_, msg)) = crate::openflow::message::decode(raw) {
                    replies = self.handle_message(xid, msg, raw, now);
                }
            }
        }
        let mut out: Vec<(u32, Message)> = out.into_iter().map(|m| (0, m)).collect();
        out.extend(replies);
        out
    }

    /// [`Switch::reinstall`] when the module was found reloaded.
    fn catch_up(&mut self, now: Instant) -> Vec<Message> {
        if self.rme.take_reload() {
            self.reinstall(now)
        } else {
            Vec::new()
        }
    }

    /// Installs the switch's state in a module that was reloaded, which
    /// holds none of it: the provisioning, the meters, then each flow as a
    /// new rule whose counters continue from the old rule's last reading
    /// (traffic after that reading went with the old module). A flow the
    /// new module refuses is removed, with a FLOW_REMOVED (reason DELETE)
    /// when asked for: what cannot be enforced is not kept, and nothing
    /// opens. If the module goes again meanwhile, the rest waits for it.
    fn reinstall(&mut self, now: Instant) -> Vec<Message> {
        log::warn!(
            "installing {} flows and {} meters in the reloaded bmgnic_rme",
            self.flows.len(),
            self.meters.len()
        );
        let gone = |e: &RmeError| matches!(e.errno, errno::ESTALE | errno::ENODEV);
        let vni = self.tenant.vni.unwrap_or(0);
        if let Err(e) = self.rme.provision(&self.provisioning, vni) {
            log::warn!("provisioning the reloaded module: {e}");
            if gone(&e) {
                return Vec::new();
            }
        }
        for (id, m) in &self.meters {
            let result = map_meter(m).map(|spec| self.rme.meter_set(&spec));
            if let Ok(Err(e)) = result {
                log::warn!("meter {id} in the reloaded module: {e}");
                if gone(&e) {
                    return Vec::new();
                }
            }
        }
        let mut out = Vec::new();
        for i in (0..self.flows.len()).rev() {
            let flow = &mut self.flows[i];
            flow.base = flow.counters();
            flow.seen = (0, 0);
            let spec = flow.spec;
            match self.rme.flow_add(&spec) {
                Ok(rule) => self.flows[i].rule = rule,
                Err(e) if gone(&e) => {
                    log::warn!("the module went again: {e}");
                    break;
                }
                Err(e) => {
                    let flow = self.remove_flow(i);
                    log::warn!(
                        "flow (cookie {:#x}) refused by the reloaded module, removed: {e}",
                        flow.cookie
                    );
                    if flow.flags & fm::FLAG_SEND_FLOW_REM != 0 {
                        out.push(flow.removed(removed::DELETE, now));
                    }
                }
            }
        }
        out
    }

    fn handle_message(
        &mut self,
        xid: u32,
        msg: Message,
        raw: &[u8],
        now: Instant,
    ) -> Vec<(u32, Message)> {
        let reply = |m| vec![(xid, m)];
        let error = |e: OfError| vec![(xid, crate::openflow::message::error_for(raw, e))];
        match msg {
            Message::Hello { .. } | Message::EchoReply(_) | Message::Error { .. } => vec![],
            Message::EchoRequest(d) => reply(Message::EchoReply(d)),
            Message::FeaturesRequest => reply(Message::FeaturesReply {
                datapath_id: self.identity.datapath_id,
                n_buffers: 0,
                n_tables: 1,
                capabilities: cap::FLOW_STATS | cap::TABLE_STATS | cap::PORT_STATS,
            }),
            Message::GetConfigRequest => reply(Message::GetConfigReply(self.config)),
            Message::SetConfig(c) => {
                self.config = SwitchConfig {
                    flags: c.flags & config::FRAG_MASK,
                    miss_send_len: c.miss_send_len,
                };
                vec![]
            }
            Message::BarrierRequest => reply(Message::BarrierReply),
            Message::RoleRequest {
                role: r,
                generation_id,
            } => match self.role_request(r, generation_id) {
                Ok(m) => reply(m),
                Err(e) => error(e),
            },
            Message::FlowMod(f) => match self.flow_mod(f, now) {
                Ok(msgs) => msgs.into_iter().map(|m| (0, m)).collect(),
                Err(e) => error(e),
            },
            Message::MeterMod(m) => match self.meter_mod(m, now) {
                Ok(msgs) => msgs.into_iter().map(|m| (0, m)).collect(),
                Err(e) => error(e),
            },
            Message::MultipartRequest { body, .. } => match self.multipart(body, now) {
                Ok(bodies) => {
                    let n = bodies.len();
                    bodies
                        .into_iter()
                        .enumerate()
                        .map(|(i, body)| {
                            let flags = if i + 1 < n { mp::FLAG_MORE } else { 0 };
                            (xid, Message::MultipartReply { flags, body })
                        })
                        .collect()
                }
                Err(e) => error(e),
            },
            Message::PacketOut { .. } => {
                // The NIC has no path from the RME into the tenant's
                // traffic, by design.
                error(OfError::new(err::BAD_REQUEST, err::request::EPERM))
            }
            Message::Experimenter { .. } => error(OfError::new(
                err::BAD_REQUEST,
                err::request::BAD_EXPERIMENTER,
            )),
            Message::Unsupported { kind } => error(match kind {
                crate::openflow::consts::msg::PORT_MOD => {
                    OfError::new(err::PORT_MOD_FAILED, err::port_mod::EPERM)
                }
                _ => OfError::new(err::BAD_REQUEST, err::request::BAD_TYPE),
            }),
            // Messages only a switch sends.
            Message::FeaturesReply { .. }
            | Message::GetConfigReply(_)
            | Message::PacketIn(_)
            | Message::FlowRemoved(_)
            | Message::PortStatus { .. }
            | Message::MultipartReply { .. }
            | Message::BarrierReply
            | Message::RoleReply { .. } => {
                error(OfError::new(err::BAD_REQUEST, err::request::BAD_TYPE))
            }
        }
    }

    fn role_request(&mut self, r: u32, generation_id: u64) -> Result<Message, OfError> {
        match r {
            role::NOCHANGE => {}
            role::EQUAL => self.role = r,
            role::MASTER | role::SLAVE => {
                // OpenFlow 1.3 §6.3.7: a stale generation id is refused.
                if let Some(g) = self.generation {
                    if (generation_id.wrapping_sub(g) as i64) < 0 {
                        return Err(OfError::new(err::ROLE_REQUEST_FAILED, err::role::STALE));
                    }
                }
                self.generation = Some(generation_id);
                self.role = r;
            }
            _ => return Err(OfError::new(err::ROLE_REQUEST_FAILED, err::role::BAD_ROLE)),
        }
        Ok(Message::RoleReply {
            role: self.role,
            generation_id: self.generation.unwrap_or(0),
        })
    }

    fn check_writable(&self) -> Result<(), OfError> {
        if self.role == role::SLAVE {
            return Err(OfError::new(err::BAD_REQUEST, err::request::IS_SLAVE));
        }
        Ok(())
    }

    /// Sets the tenant's VNI the first time a flow encapsulates with it.
    fn adopt_vni(&mut self, vni: Option<u32>) -> Result<(), OfError> {
        let Some(vni) = vni else { return Ok(()) };
        if self.tenant.vni == Some(vni) {
            return Ok(());
        }
        self.rme.tenant_vni_set(vni).map_err(|e| flow_error(&e))?;
        self.tenant.vni = Some(vni);
        Ok(())
    }

    fn install(&mut self, f: &FlowMod) -> Result<(u32, FlowSpec), OfError> {
        let mapped = map_flow(
            &f.matching,
            f.priority,
            &f.instructions,
            &self.tenant,
            |id| self.meters.contains_key(&id),
        )?;
        self.adopt_vni(mapped.vni)?;
        let rule = self
            .rme
            .flow_add(&mapped.spec)
            .map_err(|e| flow_error(&e))?;
        Ok((rule, mapped.spec))
    }

    /// Removes a flow's rule and returns the flow with its final counters.
    fn uninstall(&mut self, mut flow: Flow) -> Flow {
        match self.rme.flow_del(flow.rule) {
            Ok(c) => flow.seen = c,
            Err(e) => log::warn!("removing rule {}: {e}", flow.rule),
        }
        flow
    }

    fn flow_mod(&mut self, f: FlowMod, now: Instant) -> Result<Vec<Message>, OfError> {
        self.check_writable()?;
        if f.buffer_id != NO_BUFFER && matches!(f.command, fm::ADD | fm::MODIFY | fm::MODIFY_STRICT)
        {
            return Err(OfError::new(err::BAD_REQUEST, err::request::BUFFER_UNKNOWN));
        }
        let known = fm::FLAG_SEND_FLOW_REM
            | fm::FLAG_CHECK_OVERLAP
            | fm::FLAG_RESET_COUNTS
            | fm::FLAG_NO_PKT_COUNTS
            | fm::FLAG_NO_BYT_COUNTS;
        if f.flags & !known != 0 {
            return Err(flow_mod_failed(err::flow_mod::BAD_FLAGS));
        }
        match f.command {
            fm::ADD => {
                if f.table_id != 0 {
                    return Err(flow_mod_failed(err::flow_mod::BAD_TABLE_ID));
                }
                self.add(f, now)?;
                Ok(vec![])
            }
            fm::MODIFY | fm::MODIFY_STRICT => {
                if f.table_id != 0 {
                    return Err(flow_mod_failed(err::flow_mod::BAD_TABLE_ID));
                }
                self.modify(f, now)?;
                Ok(vec![])
            }
            fm::DELETE | fm::DELETE_STRICT => {
                if f.table_id != 0 && f.table_id != TABLE_ALL {
                    return Err(flow_mod_failed(err::flow_mod::BAD_TABLE_ID));
                }
                Ok(self.delete(&f, now))
            }
            _ => Err(flow_mod_failed(err::flow_mod::BAD_COMMAND)),
        }
    }

    fn add(&mut self, f: FlowMod, now: Instant) -> Result<(), OfError> {
        let same = self.index.get(&flow_key(f.priority, &f.matching)).copied();
        if f.flags & fm::FLAG_CHECK_OVERLAP != 0 && same.is_none() {
            let overlaps = self.flows.iter().any(|g| {
                g.priority == f.priority
                    && (covered_by(&g.matching, &f.matching)
                        || covered_by(&f.matching, &g.matching))
            });
            if overlaps {
                return Err(flow_mod_failed(err::flow_mod::OVERLAP));
            }
        }
        let (rule, spec) = self.install(&f)?;
        let flow = Flow {
            cookie: f.cookie,
            priority: f.priority,
            matching: f.matching,
            instructions: f.instructions,
            idle_timeout: f.idle_timeout,
            hard_timeout: f.hard_timeout,
            flags: f.flags,
            rule,
            spec,
            installed: now,
            base: (0, 0),
            seen: (0, 0),
            active: now,
        };
        match same {
            // An identical flow is replaced, counters and all (§6.4).
            Some(i) => {
                let old = std::mem::replace(&mut self.flows[i], flow);
                self.uninstall(old);
            }
            None => self.push_flow(flow),
        }
        Ok(())
    }

    fn selected(&self, f: &FlowMod, strict: bool) -> Vec<usize> {
        let cookie =
            |i: &usize| (self.flows[*i].cookie & f.cookie_mask) == (f.cookie & f.cookie_mask);
        if strict {
            let same = self.index.get(&flow_key(f.priority, &f.matching));
            return same.copied().filter(cookie).into_iter().collect();
        }
        (0..self.flows.len())
            .filter(|i| covered_by(&self.flows[*i].matching, &f.matching) && cookie(i))
            .collect()
    }

    fn modify(&mut self, f: FlowMod, now: Instant) -> Result<(), OfError> {
        let strict = f.command == fm::MODIFY_STRICT;
        for i in self.selected(&f, strict) {
            let g = &self.flows[i];
            let probe = FlowMod {
                matching: g.matching.clone(),
                priority: g.priority,
                ..f.clone()
            };
            let (rule, spec) = self.install(&probe)?;
            let old_rule = std::mem::replace(&mut self.flows[i].rule, rule);
            let final_counters = match self.rme.flow_del(old_rule) {
                Ok(c) => c,
                Err(e) => {
                    log::warn!("removing replaced rule {old_rule}: {e}");
                    self.flows[i].seen
                }
            };
            let g = &mut self.flows[i];
            g.spec = spec;
            g.instructions = f.instructions.clone();
            if f.flags & fm::FLAG_RESET_COUNTS != 0 {
                g.base = (0, 0);
            } else {
                g.base.0 += final_counters.0;
                g.base.1 += final_counters.1;
            }
            g.seen = (0, 0);
            g.active = now;
        }
        Ok(())
    }

    fn delete(&mut self, f: &FlowMod, now: Instant) -> Vec<Message> {
        let strict = f.command == fm::DELETE_STRICT;
        // The NIC has no groups: no flow outputs to one.
        if f.out_group != GROUP_ANY {
            return vec![];
        }
        let mut gone: Vec<usize> = self
            .selected(f, strict)
            .into_iter()
            .filter(|&i| self.flows[i].outputs_to(f.out_port))
            .collect();
        gone.sort_unstable_by(|a, b| b.cmp(a));
        let mut out = Vec::new();
        for i in gone {
            let flow = self.remove_flow(i);
            let flow = self.uninstall(flow);
            if flow.flags & fm::FLAG_SEND_FLOW_REM != 0 {
                out.push(flow.removed(removed::DELETE, now));
            }
        }
        out
    }

    fn meter_mod(&mut self, m: MeterMod, now: Instant) -> Result<Vec<Message>, OfError> {
        self.check_writable()?;
        let fail = |code| OfError::new(err::METER_MOD_FAILED, code);
        match m.command {
            meter::ADD | meter::MODIFY => {
                let exists = self.meters.contains_key(&m.meter_id);
                if m.command == meter::ADD && exists {
                    return Err(fail(err::meter_mod::METER_EXISTS));
                }
                if m.command == meter::MODIFY && !exists {
                    return Err(fail(err::meter_mod::UNKNOWN_METER));
                }
                let spec = map_meter(&m)?;
                self.rme.meter_set(&spec).map_err(|e| {
                    log::warn!("the RME module refused meter {}: {e}", m.meter_id);
                    fail(err::meter_mod::UNKNOWN)
                })?;
                self.meters.insert(m.meter_id, m);
                Ok(vec![])
            }
            meter::DELETE => {
                let ids: Vec<u32> = if m.meter_id == meter::ALL {
                    self.meters.keys().copied().collect()
                } else if self.meters.contains_key(&m.meter_id) {
                    vec![m.meter_id]
                } else {
                    return Err(fail(err::meter_mod::UNKNOWN_METER));
                };
                let mut out = Vec::new();
                for id in ids {
                    // Flows that use a deleted meter go with it (§5.7).
                    let users: Vec<usize> = (0..self.flows.len())
                        .rev()
                        .filter(|&i| self.flows[i].spec.meter == Some(id as u8))
                        .collect();
                    for i in users {
                        let flow = self.remove_flow(i);
                        let flow = self.uninstall(flow);
                        if flow.flags & fm::FLAG_SEND_FLOW_REM != 0 {
                            out.push(flow.removed(removed::METER_DELETE, now));
                        }
                    }
                    self.meters.remove(&id);
                }
                Ok(out)
            }
            _ => Err(fail(err::meter_mod::BAD_COMMAND)),
        }
    }

    /// Reads the module's counters of every flow into `seen`.
    fn refresh(&mut self, now: Instant) -> Result<(), RmeError> {
        let infos = self.rme.flow_dump()?;
        let by_id: BTreeMap<u32, (u64, u64)> =
            infos.iter().map(|f| (f.id, (f.packets, f.bytes))).collect();
        for f in &mut self.flows {
            if let Some(&c) = by_id.get(&f.rule) {
                if c.0 != f.seen.0 {
                    f.active = now;
                }
                f.seen = c;
            }
        }
        Ok(())
    }

    fn ports(&self, dev: &DevState) -> Vec<Port> {
        let speed = 10_000_000;
        let port = |port_no, hw_addr, name: String, config, state| Port {
            port_no,
            hw_addr,
            name,
            config,
            state,
            curr: port_status::FEATURE_10GB_FD,
            advertised: 0,
            supported: port_status::FEATURE_10GB_FD,
            peer: 0,
            curr_speed: speed,
            max_speed: speed,
        };
        let mut out = vec![
            port(PORT_HOST, dev.guest_mac, "host".into(), 0, host_state(dev)),
            port(PORT_FABRIC, [0; 6], "fabric".into(), 0, fabric_state(dev)),
        ];
        for &v in &self.identity.vteps {
            out.push(port(
                TUNNEL_PORT_BASE + u32::from(v),
                [0; 6],
                format!("vtep{v}"),
                0,
                port_status::STATE_LIVE,
            ));
        }
        out
    }

    fn multipart(
        &mut self,
        body: MultipartRequest,
        now: Instant,
    ) -> Result<Vec<MultipartReply>, OfError> {
        let unavailable = |e: RmeError| {
            log::warn!("the RME module did not answer: {e}");
            OfError::new(err::BAD_REQUEST, err::request::EPERM)
        };
        Ok(match body {
            MultipartRequest::Desc => vec![MultipartReply::Desc(Desc {
                mfr: "bmgnic".into(),
                hw: "BMGNIC (emulated), RME bmgnic_rme".into(),
                sw: concat!("bmgnic-rmed ", env!("CARGO_PKG_VERSION")).into(),
                serial: self.identity.serial.clone(),
                dp: "bare-metal server NIC".into(),
            })],
            MultipartRequest::Flow(FlowStatsRequest { table_id, .. })
            | MultipartRequest::Aggregate(FlowStatsRequest { table_id, .. })
                if table_id != 0 && table_id != TABLE_ALL =>
            {
                return Err(OfError::new(err::BAD_REQUEST, err::request::BAD_TABLE_ID));
            }
            MultipartRequest::Flow(q) => {
                self.refresh(now).map_err(unavailable)?;
                let flows = self
                    .select_stats(&q)
                    .map(|f| stats_of(f, now))
                    .collect::<Vec<_>>();
                // Split so that no reply exceeds a message.
                let mut out = Vec::new();
                let mut chunk = Vec::new();
                let mut size = 16;
                for s in flows {
                    let n = 56 + 8 * (s.matching.fields.len() + 1) * 3 + 64 * s.instructions.len();
                    if size + n > 60_000 && !chunk.is_empty() {
                        out.push(MultipartReply::Flow(std::mem::take(&mut chunk)));
                        size = 16;
                    }
                    size += n;
                    chunk.push(s);
                }
                out.push(MultipartReply::Flow(chunk));
                out
            }
            MultipartRequest::Aggregate(q) => {
                self.refresh(now).map_err(unavailable)?;
                let (mut packet_count, mut byte_count, mut flow_count) = (0, 0, 0);
                for f in self.select_stats(&q) {
                    let (p, b) = f.counters();
                    packet_count += p;
                    byte_count += b;
                    flow_count += 1;
                }
                vec![MultipartReply::Aggregate {
                    packet_count,
                    byte_count,
                    flow_count,
                }]
            }
            MultipartRequest::Table => {
                self.refresh(now).map_err(unavailable)?;
                let dev = self.rme.dev_get().map_err(unavailable)?;
                let matched: u64 = self.flows.iter().map(|f| f.counters().0).sum();
                vec![MultipartReply::Table(vec![TableStats {
                    table_id: 0,
                    active_count: self.flows.len() as u32,
                    lookup_count: matched + dev.counters.table_misses,
                    matched_count: matched,
                }])]
            }
            MultipartRequest::PortStats { port_no } => {
                let dev = self.rme.dev_get().map_err(unavailable)?;
                let c = dev.counters;
                let d = now.duration_since(self.started);
                let stats = |port_no, rx: (u64, u64), tx: (u64, u64)| PortStats {
                    port_no,
                    rx_packets: rx.0,
                    rx_bytes: rx.1,
                    tx_packets: tx.0,
                    tx_bytes: tx.1,
                    duration_sec: d.as_secs() as u32,
                    duration_nsec: d.subsec_nanos(),
                    ..Default::default()
                };
                // The host port receives what the guest sends; the fabric
                // port sends it on.
                let all = [
                    stats(
                        PORT_HOST,
                        (c.tx_packets, c.tx_bytes),
                        (c.rx_packets, c.rx_bytes),
                    ),
                    stats(
                        PORT_FABRIC,
                        (c.rx_packets, c.rx_bytes),
                        (c.tx_packets, c.tx_bytes),
                    ),
                ];
                let chosen: Vec<PortStats> = all
                    .into_iter()
                    .filter(|s| port_no == port::ANY || s.port_no == port_no)
                    .collect();
                if chosen.is_empty() && mapping::tunnel_index(port_no).is_none() {
                    return Err(OfError::new(err::BAD_REQUEST, err::request::BAD_PORT));
                }
                vec![MultipartReply::PortStats(chosen)]
            }
            MultipartRequest::PortDesc => {
                let dev = self.rme.dev_get().map_err(unavailable)?;
                vec![MultipartReply::PortDesc(self.ports(&dev))]
            }
            MultipartRequest::Meter { meter_id } => {
                let ids = self.meter_ids(meter_id)?;
                let counts = self.rme.meter_counters().map_err(unavailable)?;
                let d = now.duration_since(self.started);
                vec![MultipartReply::Meter(
                    ids.into_iter()
                        .map(|id| {
                            // OpenFlow meter ids 1-255 are the NIC's
                            // meters of the same index (mapping.rs).
                            let c = counts.get(&(id as u8)).copied().unwrap_or_default();
                            MeterStats {
                                meter_id: id,
                                flow_count: self
                                    .flows
                                    .iter()
                                    .filter(|f| f.spec.meter == Some(id as u8))
                                    .count() as u32,
                                packet_in_count: c.passed_packets + c.dropped_packets,
                                byte_in_count: c.passed_bytes + c.dropped_bytes,
                                duration_sec: d.as_secs() as u32,
                                duration_nsec: d.subsec_nanos(),
                                // The one band, a drop band: what it dropped.
                                bands: vec![(c.dropped_packets, c.dropped_bytes)],
                            }
                        })
                        .collect(),
                )]
            }
            MultipartRequest::MeterConfig { meter_id } => {
                let ids = self.meter_ids(meter_id)?;
                vec![MultipartReply::MeterConfig(
                    ids.iter()
                        .filter_map(|id| self.meters.get(id).cloned())
                        .collect(),
                )]
            }
            MultipartRequest::MeterFeatures => vec![MultipartReply::MeterFeatures(MeterFeatures {
                max_meter: mapping::MAX_METER,
                band_types: 1 << meter::BAND_DROP,
                capabilities: u32::from(
                    meter::FLAG_KBPS | meter::FLAG_PKTPS | meter::FLAG_BURST | meter::FLAG_STATS,
                ),
                max_bands: 1,
                max_color: 0,
            })],
            MultipartRequest::Other { .. } => {
                return Err(OfError::new(err::BAD_REQUEST, err::request::BAD_MULTIPART))
            }
        })
    }

    fn meter_ids(&self, meter_id: u32) -> Result<Vec<u32>, OfError> {
        if meter_id == meter::ALL {
            Ok(self.meters.keys().copied().collect())
        } else if self.meters.contains_key(&meter_id) {
            Ok(vec![meter_id])
        } else {
            Err(OfError::new(
                err::METER_MOD_FAILED,
                err::meter_mod::UNKNOWN_METER,
            ))
        }
    }

    fn select_stats<'a>(&'a self, q: &'a FlowStatsRequest) -> impl Iterator<Item = &'a Flow> + 'a {
        self.flows.iter().filter(move |f| {
            covered_by(&f.matching, &q.matching)
                && (f.cookie & q.cookie_mask) == (q.cookie & q.cookie_mask)
                && f.outputs_to(q.out_port)
                && q.out_group == GROUP_ANY
        })
    }

    /// A module event: a miss of both the NIC and the software table
    /// becomes a PACKET_IN (with the headers the NIC saw); a link change
    /// a PORT_STATUS now rather than at the next tick; a module loaded
    /// again gets the switch's state.
    pub fn on_event(&mut self, event: &RmeEvent) -> Vec<Message> {
        if *event == RmeEvent::ModuleLoaded {
            if let Err(e) = self.rme.reattach() {
                log::warn!("looking up the loaded module: {e}");
            }
        }
        let mut out = self.catch_up(Instant::now());
        out.extend(self.on_module_event(event));
        out
    }

    fn on_module_event(&mut self, event: &RmeEvent) -> Vec<Message> {
        match event {
            RmeEvent::TableMiss {
                matching,
                installed: false,
                ..
            } => {
                let data = synthesize_frame(matching);
                let total_len = data.len() as u16;
                let keep = usize::from(self.config.miss_send_len).min(data.len());
                vec![Message::PacketIn(PacketIn {
                    buffer_id: NO_BUFFER,
                    total_len,
                    reason: packet_in::NO_MATCH,
                    table_id: 0,
                    cookie: u64::MAX,
                    matching: miss_match(matching),
                    data: data[..keep].to_vec(),
                })]
            }
            RmeEvent::Link { .. } => self.port_changes(),
            _ => vec![],
        }
    }

    /// Once a second: flow timeouts (FLOW_REMOVED) and port changes
    /// (PORT_STATUS).
    pub fn tick(&mut self, now: Instant) -> Vec<Message> {
        let mut out = self.catch_up(now);
        if self.flows.iter().any(|f| f.idle_timeout != 0) {
            if let Err(e) = self.refresh(now) {
                log::warn!("reading flow counters: {e}");
            }
        }
        let expired: Vec<(usize, u8)> = self
            .flows
            .iter()
            .enumerate()
            .rev()
            .filter_map(|(i, f)| {
                let hard = f.hard_timeout != 0
                    && now.duration_since(f.installed)
                        >= Duration::from_secs(f.hard_timeout.into());
                let idle = f.idle_timeout != 0
                    && now.duration_since(f.active) >= Duration::from_secs(f.idle_timeout.into());
                if hard {
                    Some((i, removed::HARD_TIMEOUT))
                } else if idle {
                    Some((i, removed::IDLE_TIMEOUT))
                } else {
                    None
                }
            })
            .collect();
        for (i, reason) in expired {
            let flow = self.remove_flow(i);
            let flow = self.uninstall(flow);
            if flow.flags & fm::FLAG_SEND_FLOW_REM != 0 {
                out.push(flow.removed(reason, now));
            }
        }
        out.extend(self.port_changes());
        out
    }

    /// A PORT_STATUS for each physical port whose state changed since the
    /// last look (none at the first).
    fn port_changes(&mut self) -> Vec<Message> {
        let dev = match self.rme.dev_get() {
            Ok(dev) => dev,
            Err(e) => {
                log::warn!("reading the device state: {e}");
                return Vec::new();
            }
        };
        let states = [host_state(&dev), fabric_state(&dev)];
        let before = self.port_states.replace(states);
        let Some(before) = before else {
            return Vec::new();
        };
        let ports = self.ports(&dev);
        states
            .iter()
            .zip(before)
            .zip(ports)
            .filter(|((now, before), _)| **now != *before)
            .map(|(_, port)| {
                if port.port_no == PORT_FABRIC {
                    log::info!(
                        "fabric link {}",
                        if dev.fabric_link { "up" } else { "down" }
                    );
                }
                Message::PortStatus {
                    reason: port_status::MODIFY,
                    port,
                }
            })
            .collect()
    }
}

/// The fabric port's OpenFlow state: live while its cable is in.
fn fabric_state(dev: &DevState) -> u32 {
    if dev.fabric_link {
        port_status::STATE_LIVE
    } else {
        port_status::STATE_LINK_DOWN
    }
}

/// The host port's OpenFlow state: a quarantined tenant is blocked.
fn host_state(dev: &DevState) -> u32 {
    if dev.quarantined {
        port_status::STATE_BLOCKED
    } else {
        port_status::STATE_LIVE
    }
}

fn stats_of(f: &Flow, now: Instant) -> FlowStats {
    let d = now.duration_since(f.installed);
    let (packet_count, byte_count) = f.counters();
    FlowStats {
        table_id: 0,
        duration_sec: d.as_secs() as u32,
        duration_nsec: d.subsec_nanos(),
        priority: f.priority,
        idle_timeout: f.idle_timeout,
        hard_timeout: f.hard_timeout,
        flags: f.flags,
        cookie: f.cookie,
        packet_count,
        byte_count,
        matching: f.matching.clone(),
        instructions: f.instructions.clone(),
    }
}

/// An Ethernet frame with the headers of a table miss (the NIC reports
/// headers, not the packet): what a controller's packet parser reads.
fn synthesize_frame(m: &crate::rme::FlowMatch) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&m.eth_dst.map_or([0; 6], |d| d.0));
    f.extend_from_slice(&m.eth_src.map_or([0; 6], |s| s.0));
    let ethertype = m.ethertype.unwrap_or(0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    if ethertype == 0x0800 {
        let proto = m.ip_proto.unwrap_or(0);
        let l4_len: u16 = match proto {
            6 => 20,
            17 => 8,
            _ => 0,
        };
        let total = 20 + l4_len;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
        ip.extend_from_slice(&m.ip_src.map_or([0; 4], |p| p.addr));
        ip.extend_from_slice(&m.ip_dst.map_or([0; 4], |p| p.addr));
        let mut sum: u32 = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        f.extend_from_slice(&ip);
        let (sp, dp) = (m.l4_src.unwrap_or(0), m.l4_dst.unwrap_or(0));
        match proto {
            6 => {
                f.extend_from_slice(&sp.to_be_bytes());
                f.extend_from_slice(&dp.to_be_bytes());
                f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
            }
            17 => {
                f.extend_from_slice(&sp.to_be_bytes());
                f.extend_from_slice(&dp.to_be_bytes());
                f.extend_from_slice(&8u16.to_be_bytes());
                f.extend_from_slice(&[0, 0]);
            }
            _ => {}
        }
    }
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}
