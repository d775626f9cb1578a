// SPDX-License-Identifier: GPL-2.0

//! The RME's control of one BMGNIC: its objects, the software flow table
//! and the NIC's table as a cache of it, driven over the sideband.
//!
//! Every change goes to the NIC first and is recorded here only once the
//! NIC accepted it, so a refused or timed-out command changes nothing.
//! The NIC's flow table holds a subset of the software table: a table-miss
//! AEN installs the best rule for the missed packet together with every
//! rule that wins over it where they overlap (so that the NIC never applies
//! a rule to a packet a higher-priority rule should get); when the NIC is
//! full, the least recently used rule leaves, with the rules it protects,
//! and its counters, which come back with the deletion, are folded into the
//! software table, so billing loses nothing.

use crate::{
    flow_table::{self, Counters, FlowTable, Rule},
    ncsi_client::{self, cmd, Aen, Endpoint, Response},
    ncsi_oem::{
        self as oem, FlowCountersRecord, FlowKey, IdentityRecord, MeterRecord, MissEvent,
        PolicyRecord, PortCountersRecord, Record, SlotRecord, TableInfoRecord, TenantRecord,
        ViolationEvent, VtepRecord,
    },
    nic_cache::{NicCache, Plan},
    sideband::{AenSink, Sideband},
};
use kernel::{
    impl_has_work,
    net::dev,
    new_mutex, new_work,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc, Mutex,
    },
    workqueue::{self, Work, WorkItem},
};

/// Number of remote VTEPs and meters the NIC holds.
pub(crate) const VTEP_SLOTS: usize = 256;
pub(crate) const METER_SLOTS: usize = 256;

/// What the RME knows of the NIC and keeps for it.
pub(crate) struct State {
    pub(crate) table: FlowTable,
    pub(crate) cache: NicCache,
    next_id: u32,
    pub(crate) identity: IdentityRecord,
    pub(crate) tenant: TenantRecord,
    pub(crate) policy: PolicyRecord,
    pub(crate) vteps: KVec<Option<VtepRecord>>,
    pub(crate) meters: KVec<Option<MeterRecord>>,
    pub(crate) table_info: TableInfoRecord,
    pub(crate) ncsi_version: [u8; 4],
    /// Rules evicted from the NIC to make room.
    pub(crate) evictions: u64,
    /// Table misses the NIC reported.
    pub(crate) misses: u64,
}

/// The RME's control of the BMGNIC behind one sideband.
#[pin_data]
pub(crate) struct Rme {
    #[pin]
    pub(crate) sideband: Sideband,
    #[pin]
    state: Mutex<Option<State>>,
    #[pin]
    aen_work: Work<Rme>,
    /// Set at module exit: AENs are no longer processed.
    stopping: Atomic<bool>,
}

impl_has_work! {
    impl HasWork<Self> for Rme { self.aen_work }
}

/// An event for user space (the `event-ntf` notification).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event {
    TableMiss(MissEvent),
    Violation(ViolationEvent),
    NicTimeout { command: u8 },
}

/// Where events go: the netlink family's multicast group.
pub(crate) trait EventSink {
    fn notify(event: &Event);
}

/// Runs one OEM command of `op` on `object` with `records`, expecting
/// `answer_len` bytes per answered record, and collects the answers.
fn oem_command<R: Record, A: Record>(
    sb: &Sideband,
    op: u8,
    object: u8,
    records: &[R],
    answers: &mut KVec<A>,
) -> Result {
    let mut done = 0;
    loop {
        let rest = &records[done..];
        let mut taken = 0;
        let answer_len = if answers_expected::<A>() { A::LEN } else { 0 };
        sb.command(
            cmd::OEM,
            |buf: &mut [u8], ep: &Endpoint, iid| {
                let (len, n) = ncsi_client::build_oem(buf, ep, iid, op, object, rest, answer_len)?;
                taken = n;
                Ok(len)
            },
            |resp: &Response<'_>| {
                let reply = ncsi_client::parse_oem_reply(resp, op, object, answer_len)
                    .map_err(Error::from)?;
                if answer_len != 0 {
                    for i in 0..reply.count() {
                        let a = reply.record::<A>(i).ok_or(EIO)?;
                        answers.push(a, GFP_KERNEL)?;
                    }
                }
                Ok(())
            },
        )?;
        done += taken;
        if done >= records.len() {
            return Ok(());
        }
    }
}

/// Whether answers of type `A` are expected: the unit record `NoAnswer`
/// says none.
fn answers_expected<A: Record>() -> bool {
    A::LEN != 0
}

/// No answer records (SET).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NoAnswer;

impl Record for NoAnswer {
    const LEN: usize = 0;
    fn encode(&self, _out: &mut [u8]) {}
    fn decode(_b: &[u8]) -> Option<Self> {
        Some(Self)
    }
}

/// SETs `records` of `object`.
fn oem_set<R: Record>(sb: &Sideband, object: u8, records: &[R]) -> Result {
    let mut none = KVec::<NoAnswer>::new();
    oem_command(sb, oem::OP_SET, object, records, &mut none)
}

/// GETs the single record of `object`.
fn oem_get_one<A: Record + Copy>(sb: &Sideband, object: u8) -> Result<A> {
    let mut answers = KVec::new();
    oem_command::<NoAnswer, A>(sb, oem::OP_GET, object, &[], &mut answers)?;
    answers.first().copied().ok_or(EIO)
}

impl Rme {
    /// Control over `sideband`, whose MAC the commands come from.
    pub(crate) fn new(
        sideband: ARef<dev::Device>,
        mac: [u8; 6],
    ) -> Result<impl PinInit<Self, Error>> {
        let sideband = Sideband::new(sideband, mac)?;
        Ok(try_pin_init!(Self {
            sideband <- sideband,
            state <- new_mutex!(None, "bmgnic_rme_state"),
            aen_work <- new_work!("bmgnic_rme_aen"),
            stopping: Atomic::new(false),
        }? Error))
    }

    /// Brings the channel up as a BMC does (DSP0222 start-up), learns the
    /// NIC's table size and current objects, and turns on the events the
    /// RME acts on.
    pub(crate) fn start(&self) -> Result {
        let sb = &self.sideband;
        let mut version = [0u8; 4];
        for step in ncsi_client::STARTUP.iter() {
            sb.command(
                step.packet_type,
                |buf: &mut [u8], ep: &Endpoint, iid| {
                    ncsi_client::build_command(buf, ep, iid, step.packet_type, step.payload)
                },
                |resp: &Response<'_>| {
                    let data = resp.result().map_err(Error::from)?;
                    if step.packet_type == cmd::GET_VERSION_ID {
                        let v = ncsi_client::parse_version_id(data).map_err(Error::from)?;
                        if v.manufacturer_id != oem::MANUFACTURER_ID {
                            pr_err!(
                                "sideband peer is not a BMGNIC (manufacturer {})\n",
                                v.manufacturer_id
                            );
                            return Err(ENODEV);
                        }
                        version = v.ncsi_version;
                    }
                    Ok(())
                },
            )?;
        }
        let table_info: TableInfoRecord = oem_get_one(sb, oem::OBJ_TABLE_INFO)?;
        let identity: IdentityRecord = oem_get_one(sb, oem::OBJ_IDENTITY)?;
        let tenant: TenantRecord = oem_get_one(sb, oem::OBJ_TENANT)?;
        let mut policy: PolicyRecord = oem_get_one(sb, oem::OBJ_POLICY)?;
        // The RME installs rules on misses and reports violations.
        policy.events = oem::EVENTS_TABLE_MISS | oem::EVENTS_VIOLATION;
        if policy.miss_events_per_sec < 1000 {
            policy.miss_events_per_sec = 1000;
        }
        oem_set(sb, oem::OBJ_POLICY, &[policy])?;
        let mut cache = NicCache::from_table_info(&table_info)?;
        // Whatever the NIC holds from before is not ours: clear it.
        if table_info.flows_used > 0 {
            let mut all = KVec::with_capacity(table_info.flow_slots as usize, GFP_KERNEL)?;
            for slot in 0..table_info.flow_slots {
                all.push(SlotRecord { slot }, GFP_KERNEL)?;
            }
            let mut gone = KVec::<FlowCountersRecord>::new();
            oem_command(sb, oem::OP_DEL, oem::OBJ_FLOW, &all, &mut gone)?;
            cache = NicCache::from_table_info(&table_info)?;
        }
        let mut vteps = KVec::with_capacity(VTEP_SLOTS, GFP_KERNEL)?;
        let mut meters = KVec::with_capacity(METER_SLOTS, GFP_KERNEL)?;
        for _ in 0..VTEP_SLOTS {
            vteps.push(None, GFP_KERNEL)?;
        }
        for _ in 0..METER_SLOTS {
            meters.push(None, GFP_KERNEL)?;
        }
        *self.state.lock() = Some(State {
            table: FlowTable::new(),
            cache,
            next_id: 1,
            identity,
            tenant,
            policy,
            vteps,
            meters,
            table_info,
            ncsi_version: version,
            evictions: 0,
            misses: 0,
        });
        pr_info!(
            "NC-SI channel up: version {:02x}{:02x}{:02x}, {} NIC flow slots\n",
            version[0],
            version[1],
            version[2],
            table_info.flow_slots
        );
        Ok(())
    }

    /// Runs `f` on the state; `ENODEV` before [`Self::start`] succeeded.
    pub(crate) fn with_state<R>(
        &self,
        f: impl FnOnce(&Sideband, &mut State) -> Result<R>,
    ) -> Result<R> {
        let mut guard = self.state.lock();
        let state = (*guard).as_mut().ok_or(ENODEV)?;
        f(&self.sideband, state)
    }

    /// Stops AEN processing and waits for it (module exit).
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Relaxed);
        self.aen_work.flush();
    }

    /// Processes queued AENs: installs rules for misses, forwards events.
    fn process_aens<S: EventSink>(&self) {
        let mut aens = match KVec::with_capacity(Sideband::AEN_QUEUE, GFP_KERNEL) {
            Ok(v) => v,
            Err(_) => return,
        };
        self.sideband.take_aens(&mut aens);
        for aen in aens.iter() {
            match aen {
                Aen::TableMiss(miss) => {
                    let r = self.with_state(|sb, st| {
                        st.misses += u64::from(miss.misses);
                        install_for(sb, st, &miss.key)
                    });
                    if let Err(e) = r {
                        if e == ETIMEDOUT {
                            S::notify(&Event::NicTimeout { command: cmd::OEM });
                        }
                    }
                    S::notify(&Event::TableMiss(*miss));
                }
                Aen::Violation(v) => S::notify(&Event::Violation(*v)),
                _ => {}
            }
        }
    }
}

impl WorkItem for Rme {
    type Pointer = Arc<Rme>;

    fn run(this: Arc<Rme>) {
        if !this.stopping.load(Relaxed) {
            this.process_aens::<crate::netlink::Notifier>();
        }
    }
}

impl AenSink for Rme {
    fn sideband(&self) -> &Sideband {
        &self.sideband
    }

    fn aens_queued(this: &Arc<Self>) {
        if !this.stopping.load(Relaxed) {
            // Already queued is fine: one run drains every AEN.
            let _ = workqueue::system().enqueue(this.clone());
        }
    }
}

/// Sends the flow DEL of `slots` and returns their final counters.
fn nic_del(sb: &Sideband, slots: &[u32]) -> Result<KVec<FlowCountersRecord>> {
    let mut recs = KVec::with_capacity(slots.len(), GFP_KERNEL)?;
    for &slot in slots {
        recs.push(SlotRecord { slot }, GFP_KERNEL)?;
    }
    let mut answers = KVec::with_capacity(slots.len(), GFP_KERNEL)?;
    oem_command(sb, oem::OP_DEL, oem::OBJ_FLOW, &recs, &mut answers)?;
    Ok(answers)
}

/// Takes `rule` out of the NIC if it is there, folding its counters.
pub(crate) fn uninstall(sb: &Sideband, st: &mut State, rule: u32) -> Result {
    let Some(slot) = st.cache.evict_rule(rule)? else {
        return Ok(());
    };
    let answers = nic_del(sb, &[slot])?;
    for c in answers.iter().filter(|c| c.slot == slot) {
        let folded = st.cache.fold(slot, c)?;
        st.table.account(folded.rule, folded.packets, folded.bytes);
    }
    Ok(())
}

/// Installs rule `id` (already in the table) in the NIC, after the rules
/// that win over it; evicts least recently used rules, with the rules that
/// rely on them, when the NIC is full.
fn install_rule(sb: &Sideband, st: &mut State, id: u32, depth: u32) -> Result {
    let Some((rule, _)) = st.table.get(id).map(|(r, c)| (*r, c)) else {
        return Err(ENOENT);
    };
    if depth == 0 {
        // Rules that win over this one where they overlap go in first.
        for dep in st.table.shadowing(&rule)?.iter() {
            if st.cache.slot_of(*dep).is_none() {
                install_rule(sb, st, *dep, depth + 1)?;
            }
        }
    }
    match st.cache.install(id)? {
        Plan::Present { .. } => Ok(()),
        Plan::Install { slot } => oem_set(sb, oem::OBJ_FLOW, &[rule.record_at(slot)]),
        Plan::Evict { slot, evicted } => {
            st.evictions += 1;
            let answers = nic_del(sb, &[slot])?;
            for c in answers.iter().filter(|c| c.slot == slot) {
                let folded = st.cache.fold(slot, c)?;
                st.table.account(folded.rule, folded.packets, folded.bytes);
            }
            oem_set(sb, oem::OBJ_FLOW, &[rule.record_at(slot)])?;
            // Installed rules the evicted one won over would now take its
            // packets: they leave too.
            if let Some((gone, _)) = st.table.get(evicted).map(|(r, c)| (*r, c)) {
                let mut relying = KVec::new();
                for (other, _) in st.cache.iter() {
                    if let Some((r, _)) = st.table.get(other) {
                        if other != id
                            && flow_table::wins_over(&gone, r)
                            && flow_table::overlaps(&gone, r)
                        {
                            relying.push(other, GFP_KERNEL)?;
                        }
                    }
                }
                for other in relying.iter() {
                    uninstall(sb, st, *other)?;
                }
            }
            Ok(())
        }
    }
}

/// Installs the best rule for a packet that missed the NIC's table.
pub(crate) fn install_for(sb: &Sideband, st: &mut State, key: &FlowKey) -> Result {
    let Some(id) = st.table.lookup(key).map(|r| r.id) else {
        // No rule: the miss policy stands.
        return Ok(());
    };
    install_rule(sb, st, id, 0)
}

impl State {
    /// Adds `rule` under a new ID; installs it at once where an installed
    /// rule it wins over would otherwise take its packets.
    pub(crate) fn add_flow(&mut self, sb: &Sideband, mut rule: Rule) -> Result<u32> {
        let id = self.next_id;
        rule.id = id;
        self.table.insert(rule)?;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let mut shadowed = false;
        for (other, _) in self.cache.iter() {
            if let Some((r, _)) = self.table.get(other) {
                if flow_table::wins_over(&rule, r) && flow_table::overlaps(&rule, r) {
                    shadowed = true;
                    break;
                }
            }
        }
        if shadowed {
            if let Err(e) = install_rule(sb, self, id, 0) {
                let _ = self.table.remove(id);
                return Err(e);
            }
        }
        Ok(id)
    }

    /// Removes rule `id`; returns its final counters, NIC traffic folded in.
    pub(crate) fn del_flow(&mut self, sb: &Sideband, id: u32) -> Result<Counters> {
        if self.table.get(id).is_none() {
            return Err(ENOENT);
        }
        uninstall(sb, self, id)?;
        let (_, counters) = self.table.remove(id)?;
        Ok(counters)
    }

    /// Reads the NIC counters of every installed rule into the table.
    pub(crate) fn refresh_counters(&mut self, sb: &Sideband) -> Result {
        let mut slots = KVec::new();
        for (_, slot) in self.cache.iter() {
            slots.push(SlotRecord { slot }, GFP_KERNEL)?;
        }
        if slots.is_empty() {
            return Ok(());
        }
        let mut answers = KVec::<FlowCountersRecord>::with_capacity(slots.len(), GFP_KERNEL)?;
        oem_command(
            sb,
            oem::OP_GET,
            oem::OBJ_FLOW_COUNTERS,
            &slots,
            &mut answers,
        )?;
        for c in answers.iter() {
            if let Some(f) = self.cache.absorb(c.slot, c)? {
                self.table.account(f.rule, f.packets, f.bytes);
            }
        }
        Ok(())
    }

    /// Sets the guest identity.
    pub(crate) fn set_identity(&mut self, sb: &Sideband, id: IdentityRecord) -> Result {
        oem_set(sb, oem::OBJ_IDENTITY, &[id])?;
        self.identity = id;
        Ok(())
    }

    /// Sets the tenant.
    pub(crate) fn set_tenant(&mut self, sb: &Sideband, t: TenantRecord) -> Result {
        oem_set(sb, oem::OBJ_TENANT, &[t])?;
        self.tenant = t;
        Ok(())
    }

    /// Sets a remote VTEP.
    pub(crate) fn set_vtep(&mut self, sb: &Sideband, v: VtepRecord) -> Result {
        let slot = self.vteps.get_mut(usize::from(v.index)).ok_or(EINVAL)?;
        oem_set(sb, oem::OBJ_VTEP, &[v])?;
        *slot = Some(v);
        Ok(())
    }

    /// Sets a meter.
    pub(crate) fn set_meter(&mut self, sb: &Sideband, m: MeterRecord) -> Result {
        let slot = self.meters.get_mut(usize::from(m.index)).ok_or(EINVAL)?;
        oem_set(sb, oem::OBJ_METER, &[m])?;
        *slot = Some(m);
        Ok(())
    }

    /// Sets the policy (the RME keeps its events on).
    pub(crate) fn set_policy(&mut self, sb: &Sideband, mut p: PolicyRecord) -> Result {
        p.events = oem::EVENTS_TABLE_MISS | oem::EVENTS_VIOLATION;
        oem_set(sb, oem::OBJ_POLICY, &[p])?;
        self.policy = p;
        Ok(())
    }

    /// Reads the NIC's port counters (billing).
    pub(crate) fn port_counters(&self, sb: &Sideband) -> Result<PortCountersRecord> {
        oem_get_one(sb, oem::OBJ_PORT_COUNTERS)
    }
}
