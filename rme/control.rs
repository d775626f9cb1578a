// SPDX-License-Identifier: GPL-2.0

//! The RME's control of one BMGNIC: its objects, the software flow table
//! and the NIC's table as a cache of it, driven over the sideband.
//!
//! Every change of an object (identity, tenant, VTEP, meter, policy) goes
//! to the NIC first and is recorded here only once the NIC accepted it.
//! A refused command changed nothing. A timed-out one may or may not have
//! been applied by the NIC (NC-SI cannot tell): the request fails, the
//! software table keeps its old contents, and the NIC's table converges
//! on it: a slot whose DEL or SET timed out is marked unsettled and
//! deleted again (DEL is idempotent) before the next operation, and until
//! then is neither installed nor free. What an entry counted between a
//! lost DEL answer and the retry is lost to billing; nothing else is.
//! The NIC's flow table is a cache of the software table: a table-miss AEN
//! installs an exact-match entry for the missed packet's flow with the
//! action, meter and VTEP of the best rule for it (an exact entry can never
//! take packets a higher-priority rule should get, whatever else the cache
//! holds); when the NIC is full, the least recently used entry leaves. Each
//! entry's counters, read back with its deletion or a refresh, are folded
//! into its rule's, so billing loses nothing.

use crate::{
    flow_table::{self, Counters, FlowTable, Rule},
    ncsi::cmd,
    ncsi_client::{self, Aen, Endpoint, Response},
    ncsi_oem::{
        self as oem, FlowCountersRecord, FlowKey, FlowRecord, IdentityRecord, MeterCountersRecord,
        MeterRecord, MissEvent, PolicyRecord, PortCountersRecord, Record, SlotRecord,
        TableInfoRecord, TenantRecord, ViolationEvent, VtepRecord,
    },
    nic_cache::{NicCache, Plan},
    sideband::{AenSink, Sideband},
};
use kernel::{
    impl_has_work,
    net::dev,
    new_mutex, new_spinlock, new_work,
    prelude::*,
    rbtree::{RBTree, RBTreeNode},
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc, Mutex, SpinLock,
    },
    time::{Instant, Monotonic},
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
    /// NIC entries (the IDs the cache knows them by): their rule and key.
    entries: RBTree<u32, NicEntry>,
    next_entry: u32,
    /// Slots whose DEL or SET timed out, to delete again.
    unsettled: KVec<u32>,
    /// Last NC-SI reads of the flow, port and meter counters, and what the
    /// port and meter reads returned: unprivileged readers get them at
    /// most once per [`UNPRIVILEGED_READ_INTERVAL_MS`].
    counters_read_at: Option<Instant<Monotonic>>,
    port_read_at: Option<Instant<Monotonic>>,
    port_counters: PortCountersRecord,
    meters_read_at: Option<Instant<Monotonic>>,
    meter_counters: KVec<MeterCountersRecord>,
}

/// How often unprivileged DEV_GET and FLOW_GET requests cause NC-SI reads;
/// in between they get what the last read returned. A loop of them cannot
/// keep the sideband (and the state lock the AEN work needs) busy.
pub(crate) const UNPRIVILEGED_READ_INTERVAL_MS: i64 = 1000;

/// What a tenancy was billed when it ended ([`State::end_tenancy`]).
pub(crate) struct Tenancy {
    /// Rules removed at the end.
    pub(crate) flows: u32,
    /// Every rule's traffic during the tenancy.
    pub(crate) billed: Counters,
    /// The NIC's port counters at the end.
    pub(crate) port: PortCountersRecord,
}

/// Whether a read last done at `at` is recent enough for an unprivileged
/// reader.
fn recent(at: Option<Instant<Monotonic>>) -> bool {
    at.is_some_and(|t| t.elapsed().as_millis() < UNPRIVILEGED_READ_INTERVAL_MS)
}

/// An exact-match entry in the NIC, standing for one flow of a rule.
#[derive(Clone, Copy, Debug)]
struct NicEntry {
    rule: u32,
    key: FlowKey,
}

/// The mask of an exact match on `key`: every field the NIC matches that
/// has a meaning for the key's ethertype and protocol (the prerequisites
/// `ncsi_oem::check_flow` enforces).
pub(crate) fn exact_mask(key: &FlowKey) -> FlowKey {
    let mut m = FlowKey {
        in_port: 0xff,
        ethertype: 0xffff,
        vlan_tci: 0xffff,
        eth_src: [0xff; 6],
        eth_dst: [0xff; 6],
        ..FlowKey::default()
    };
    let addr_len = match key.ethertype {
        oem::ETHERTYPE_IPV4 | oem::ETHERTYPE_ARP => 4,
        oem::ETHERTYPE_IPV6 => 16,
        _ => 0,
    };
    if addr_len > 0 {
        m.ip_proto = 0xff;
        m.ip_src[..addr_len].fill(0xff);
        m.ip_dst[..addr_len].fill(0xff);
    }
    let ports = matches!(
        (key.ethertype, key.ip_proto),
        (oem::ETHERTYPE_IPV4, oem::IPPROTO_ICMP)
            | (oem::ETHERTYPE_IPV6, oem::IPPROTO_ICMPV6)
            | (
                oem::ETHERTYPE_IPV4 | oem::ETHERTYPE_IPV6,
                oem::IPPROTO_TCP | oem::IPPROTO_UDP | oem::IPPROTO_SCTP
            )
    );
    if ports {
        m.l4_src = 0xffff;
        m.l4_dst = 0xffff;
    }
    m
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
    /// The sideband came back: the work brings the channel up again
    /// before it handles AENs.
    channel_down: Atomic<bool>,
    /// The NIC's fabric link, as the last Get Link Status or Link Status
    /// Change AEN said.
    #[pin]
    link: SpinLock<LinkState>,
    /// Where events for user space go (the netlink family's group): the
    /// control logic does not depend on how they are delivered.
    notify: fn(&Event),
}

impl_has_work! {
    impl HasWork<Self> for Rme { self.aen_work }
}

/// The fabric link as last known, and how many Link Status Change AENs
/// have set it: a start-up's Get Link Status answered before an AEN that
/// is processed first must not overwrite the AEN's newer state.
struct LinkState {
    up: bool,
    aens: u64,
}

/// An event for user space (the `event-ntf` notification).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event {
    /// A packet missed the NIC; `rule` is the software table's rule for
    /// it (installed in the NIC), if one matched.
    TableMiss {
        miss: MissEvent,
        rule: Option<u32>,
    },
    Violation(ViolationEvent),
    NicTimeout {
        command: u8,
    },
    /// The NIC's fabric link went up or down.
    Link {
        up: bool,
    },
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

/// DELs from the NIC, one by one, every object of `object` set in
/// `slots` (indexed by its slot), forgetting each once the NIC did: a
/// failure leaves the rest set, in the NIC and here alike.
fn oem_del_all<A: Record>(sb: &Sideband, object: u8, slots: &mut KVec<Option<A>>) -> Result {
    for (index, slot) in slots.iter_mut().enumerate() {
        if slot.is_some() {
            let mut gone = KVec::<A>::new();
            oem_command(
                sb,
                oem::OP_DEL,
                object,
                &[SlotRecord { slot: index as u32 }],
                &mut gone,
            )?;
            *slot = None;
        }
    }
    Ok(())
}

impl Rme {
    /// Control over `sideband`, whose MAC the commands come from.
    /// Events for user space go to `notify`, from any context.
    pub(crate) fn new(
        sideband: ARef<dev::Device>,
        mac: [u8; 6],
        notify: fn(&Event),
    ) -> Result<impl PinInit<Self, Error>> {
        let sideband = Sideband::new(sideband, mac)?;
        Ok(try_pin_init!(Self {
            sideband <- sideband,
            state <- new_mutex!(None, "bmgnic_rme_state"),
            aen_work <- new_work!("bmgnic_rme_aen"),
            stopping: Atomic::new(false),
            channel_down: Atomic::new(false),
            link <- new_spinlock!(LinkState { up: false, aens: 0 }, "bmgnic_rme_link"),
            notify,
        }? Error))
    }

    /// Brings the channel up as a BMC does (DSP0222 start-up), learns the
    /// NIC's table size and current objects, and turns on the events the
    /// RME acts on.
    pub(crate) fn start(&self) -> Result {
        let version = self.channel_up(false)?;
        self.load(version)
    }

    /// Runs the DSP0222 start-up sequence (select, clear initial state,
    /// version, capabilities, enable channel and AENs) on the sideband;
    /// returns the NC-SI version. With `announce`, a fabric link that its
    /// Get Link Status finds changed is announced: the channel was down or
    /// the NIC lost its state, and no AEN could have said so.
    fn channel_up(&self, announce: bool) -> Result<[u8; 4]> {
        let sb = &self.sideband;
        sb.forget_peer();
        let aens_before = self.link.lock().aens;
        let mut version = [0u8; 4];
        let mut polled = None;
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
                    if step.packet_type == cmd::GET_LINK_STATUS {
                        let status = ncsi_client::parse_link_status(data).map_err(Error::from)?;
                        polled = Some(ncsi_client::link_up(status));
                    }
                    if step.packet_type == cmd::GET_CAPABILITIES {
                        let aens = ncsi_client::parse_aen_support(data).map_err(Error::from)?;
                        // Table misses come as OEM AENs: without them the
                        // NIC's table could never be filled.
                        if aens & oem::AEN_ENABLE_OEM == 0 {
                            pr_err!("the NIC offers no OEM AENs (AEN support {:#x})\n", aens);
                            return Err(ENODEV);
                        }
                    }
                    Ok(())
                },
            )?;
            // Outside the sideband's lock, which the command held.
            if let Some(up) = polled.take() {
                self.link_polled(up, aens_before, announce);
            }
        }
        Ok(version)
    }

    fn load(&self, version: [u8; 4]) -> Result {
        let sb = &self.sideband;
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
            entries: RBTree::new(),
            next_entry: 1,
            unsettled: KVec::new(),
            counters_read_at: None,
            port_read_at: None,
            port_counters: PortCountersRecord {
                counters: [0; oem::PORT_COUNTERS],
            },
            meters_read_at: None,
            meter_counters: KVec::new(),
        });
        let mut text = [0u8; 16];
        let text = crate::ncsi_client::format_version(&version, &mut text);
        pr_info!(
            "NC-SI channel up: NC-SI {}, {} NIC flow slots\n",
            CStr::from_bytes_with_nul(text).unwrap_or(c"?"),
            table_info.flow_slots
        );
        Ok(())
    }

    /// Runs `f` on the state; `ENODEV` before [`Self::start`] succeeded,
    /// `ENETDOWN` while the sideband device is gone.
    pub(crate) fn with_state<R>(
        &self,
        f: impl FnOnce(&Sideband, &mut State) -> Result<R>,
    ) -> Result<R> {
        let mut guard = self.state.lock();
        let state = (*guard).as_mut().ok_or(ENODEV)?;
        // Without a sideband nothing can reach the NIC: refuse rather than
        // let the software table drift from what the NIC enforces.
        if self.sideband.device().is_none() {
            return Err(ENETDOWN);
        }
        let result = state
            .settle(&self.sideband)
            .and_then(|()| f(&self.sideband, state));
        if result.as_ref().is_err_and(|e| *e == ENOTCONN) {
            // The NIC answered "initialization required": it was reset or
            // replaced and holds none of the RME's configuration. Restore
            // it now; this request fails, the next one finds the NIC set.
            match self.restore(state) {
                Ok(()) => pr_warn!("the NIC lost its state: configuration restored\n"),
                Err(e) => pr_err!("the NIC lost its state; restoring it failed: {:?}\n", e),
            }
        }
        result
    }

    /// Sets a NIC that lost its state up again from what the RME keeps:
    /// channel start-up, identity, tenant, VTEPs, meters and policy. The
    /// NIC's table starts empty: the software table's rules come back on
    /// their flows' next misses. What the old NIC counted since the last
    /// read is lost to billing.
    fn restore(&self, state: &mut State) -> Result {
        let sb = &self.sideband;
        self.channel_up(true)?;
        let table_info: TableInfoRecord = oem_get_one(sb, oem::OBJ_TABLE_INFO)?;
        state.cache = NicCache::from_table_info(&table_info)?;
        state.table_info = table_info;
        state.entries = RBTree::new();
        state.unsettled.clear();
        if state.identity.mac != [0; 6] {
            oem_set(sb, oem::OBJ_IDENTITY, &[state.identity])?;
        }
        if state.tenant.vni != 0 {
            oem_set(sb, oem::OBJ_TENANT, &[state.tenant])?;
        }
        for v in state.vteps.iter().flatten() {
            oem_set(sb, oem::OBJ_VTEP, &[*v])?;
        }
        for m in state.meters.iter().flatten() {
            oem_set(sb, oem::OBJ_METER, &[*m])?;
        }
        oem_set(sb, oem::OBJ_POLICY, &[state.policy])
    }

    /// A Link Status Change AEN: the newest word on the link.
    fn link_aen(&self, up: bool) {
        let was = {
            let mut link = self.link.lock();
            link.aens += 1;
            core::mem::replace(&mut link.up, up)
        };
        self.link_changed(was, up);
    }

    /// A start-up's Get Link Status, sent when `aens_before` AENs had set
    /// the link: stale if one came since. A change is announced if asked.
    fn link_polled(&self, up: bool, aens_before: u64, announce: bool) {
        let was = {
            let mut link = self.link.lock();
            if link.aens != aens_before {
                return;
            }
            core::mem::replace(&mut link.up, up)
        };
        if announce {
            self.link_changed(was, up);
        }
    }

    /// Tells user space that the fabric link went from `was` to `up`, if
    /// it did.
    fn link_changed(&self, was: bool, up: bool) {
        if was != up {
            pr_info!("fabric link {}\n", if up { "up" } else { "down" });
            (self.notify)(&Event::Link { up });
        }
    }

    /// Whether the NIC's fabric port has link.
    pub(crate) fn fabric_link(&self) -> bool {
        self.link.lock().up
    }

    /// The sideband is back: bring the NC-SI channel up again from process
    /// context (the work item). The NIC kept its RME bank meanwhile, so the
    /// software table and the cache stay as they are.
    pub(crate) fn sideband_back(this: &Arc<Self>) {
        this.channel_down.store(true, Relaxed);
        if !this.stopping.load(Relaxed) {
            let _ = workqueue::system().enqueue(this.clone());
        }
    }

    /// Stops AEN processing and waits for it (module exit).
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Relaxed);
        self.aen_work.flush();
    }

    /// Processes queued AENs: installs rules for misses, forwards events.
    /// The misses queued together are installed together
    /// ([`State::install_for_all`]), then reported in their order.
    fn process_aens(&self) {
        let mut aens = match KVVec::with_capacity(Sideband::AEN_QUEUE, GFP_KERNEL) {
            Ok(v) => v,
            Err(_) => return,
        };
        self.sideband.take_aens(&mut aens);
        let mut misses = KVec::new();
        for aen in aens.iter() {
            if let Aen::TableMiss(miss) = aen {
                if misses.push(miss.key, GFP_KERNEL).is_err() {
                    break;
                }
            }
        }
        // A pass with no miss (violations, link) touches no state, as
        // before misses were batched.
        let installed = if misses.is_empty() {
            Ok(KVec::new())
        } else {
            self.with_state(|sb, st| {
                for aen in aens.iter() {
                    if let Aen::TableMiss(miss) = aen {
                        st.misses += u64::from(miss.misses);
                    }
                }
                st.install_for_all(sb, &misses)
            })
        };
        // One timeout event for the batch, however many flows it failed.
        let timed_out = match &installed {
            Ok(rules) => rules.iter().any(|r| matches!(r, Err(e) if *e == ETIMEDOUT)),
            Err(e) => *e == ETIMEDOUT,
        };
        if timed_out {
            (self.notify)(&Event::NicTimeout { command: cmd::OEM });
        }
        let mut rules = installed.as_ref().ok().map(|r| r.iter());
        for aen in aens.iter() {
            match aen {
                Aen::TableMiss(miss) => {
                    let rule = match rules.as_mut().and_then(|r| r.next()) {
                        Some(Ok(rule)) => *rule,
                        _ => None,
                    };
                    (self.notify)(&Event::TableMiss { miss: *miss, rule });
                }
                Aen::Violation(v) => (self.notify)(&Event::Violation(*v)),
                Aen::LinkStatus { status } => {
                    self.link_aen(ncsi_client::link_up(*status));
                }
                _ => {}
            }
        }
    }
}

impl WorkItem for Rme {
    type Pointer = Arc<Rme>;

    fn run(this: Arc<Rme>) {
        if this.stopping.load(Relaxed) {
            return;
        }
        if this.channel_down.xchg(false, Relaxed) {
            match this.channel_up(true) {
                Ok(_) => pr_info!("sideband back: NC-SI channel up again\n"),
                Err(e) => {
                    pr_err!("sideband back, but NC-SI start-up failed: {:?}\n", e);
                    // Tried again when the device comes up next time.
                }
            }
        }
        this.process_aens();
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

/// Flow entries on their way to the NIC in one OEM SET.
///
/// # Invariants
///
/// `records[i]` is the record of NIC entry `entries[i]`, placed in the
/// cache and not yet sent; `flows` holds the index, among the caller's
/// keys, of every flow those records install; at most
/// [`InstallBatch::LIMIT`] records.
struct InstallBatch {
    records: KVec<FlowRecord>,
    entries: KVec<u32>,
    flows: KVec<usize>,
}

impl InstallBatch {
    /// Records per batch: what one OEM SET carries.
    const LIMIT: usize = ncsi_client::batch_limit(FlowRecord::LEN, 0);

    fn new() -> Result<Self> {
        Ok(Self {
            records: KVec::with_capacity(Self::LIMIT, GFP_KERNEL)?,
            entries: KVec::with_capacity(Self::LIMIT, GFP_KERNEL)?,
            flows: KVec::with_capacity(Self::LIMIT, GFP_KERNEL)?,
        })
    }

    /// Whether the batch already installs `record`'s exact key.
    fn has(&self, record: &FlowRecord) -> bool {
        self.records
            .iter()
            .any(|r| r.key == record.key && r.mask == record.mask)
    }

    /// Counts flow `at` as installed by the batch.
    fn join(&mut self, at: usize) -> Result {
        self.flows.push(at, GFP_KERNEL)?;
        Ok(())
    }

    /// Adds the record of `entry`, already placed in the cache.
    fn push(&mut self, entry: u32, record: FlowRecord) -> Result {
        // Within the capacity reserved by `new`: a full batch is sent
        // before another record joins.
        self.records.push(record, GFP_KERNEL)?;
        self.entries.push(entry, GFP_KERNEL)?;
        Ok(())
    }

    fn full(&self) -> bool {
        self.records.len() >= Self::LIMIT
    }

    fn clear(&mut self) {
        self.records.clear();
        self.entries.clear();
        self.flows.clear();
    }
}

impl State {
    /// Adds what the NIC counted for `entry` to its rule.
    fn account_entry(&mut self, entry: u32, packets: u64, bytes: u64) {
        match self.entries.get(&entry) {
            Some(e) => {
                let rule = e.rule;
                self.table.account(rule, packets, bytes);
            }
            None => {
                self.table.account(0, packets, bytes);
            }
        }
    }

    /// Deletes the entry at `slot` in the NIC and folds its final counters
    /// into its rule. If the DEL fails, the slot is left to [`Self::settle`].
    fn drain_slot(&mut self, sb: &Sideband, slot: u32) -> Result {
        let answers = match nic_del(sb, &[slot]) {
            Ok(answers) => answers,
            Err(e) => {
                self.unsettle(slot)?;
                return Err(e);
            }
        };
        self.fold_del(slot, &answers)
    }

    /// Folds the answer of a flow DEL of `slot` into its rule's counters.
    fn fold_del(&mut self, slot: u32, answers: &[FlowCountersRecord]) -> Result {
        for c in answers.iter().filter(|c| c.slot == slot) {
            let folded = self.cache.fold(slot, c)?;
            self.account_entry(folded.rule, folded.packets, folded.bytes);
        }
        Ok(())
    }

    /// Marks `slot` for another DEL.
    fn unsettle(&mut self, slot: u32) -> Result {
        if !self.unsettled.contains(&slot) {
            self.unsettled.push(slot, GFP_KERNEL)?;
        }
        Ok(())
    }

    /// Deletes again the slots whose DEL or SET failed, so that the NIC
    /// holds exactly what the cache says; stops at the first failure.
    pub(crate) fn settle(&mut self, sb: &Sideband) -> Result {
        while let Some(&slot) = self.unsettled.last() {
            let answers = nic_del(sb, &[slot])?;
            self.unsettled.pop();
            self.fold_del(slot, &answers)?;
        }
        Ok(())
    }

    /// Undoes the placement of `entry` after a failed SET or DEL: its slot
    /// is deleted again before the next operation.
    fn abandon_install(&mut self, entry: u32) {
        if let Ok(Some(slot)) = self.cache.cancel_install(entry) {
            let _ = self.unsettle(slot);
        }
    }

    /// The NIC entries for which `pick` holds.
    fn entries_where(&self, pick: impl Fn(&NicEntry) -> bool) -> Result<KVec<u32>> {
        let mut ids = KVec::new();
        for (&id, e) in self.entries.iter() {
            if pick(e) {
                ids.push(id, GFP_KERNEL)?;
            }
        }
        Ok(ids)
    }

    /// Takes NIC entries out, folding their final counters.
    fn uninstall_entries(&mut self, sb: &Sideband, ids: &[u32]) -> Result {
        for &entry in ids {
            if let Some(slot) = self.cache.evict_rule(entry)? {
                self.drain_slot(sb, slot)?;
            }
            self.entries.remove(&entry);
        }
        Ok(())
    }

    /// Installs exact entries for the flows of `keys` (table misses), each
    /// with its best rule's action, and returns each key's rule ID, `None`
    /// when no rule matches, or why its install failed.
    ///
    /// Entries for free slots go to the NIC together, as many per OEM SET
    /// as one command carries, so a burst of misses costs a command per
    /// batch rather than per flow; a flow whose exact key is already in
    /// the batch is installed once. When the NIC is full, the least
    /// recently used entry is evicted first (a DEL, then a SET of its
    /// slot), after the batch so far is sent. A failed command fails the
    /// flows it carried: their slots are deleted again before the next
    /// operation ([`Self::settle`]), so the NIC holds no entry the cache
    /// does not know, and the flows come back on their next miss.
    pub(crate) fn install_for_all(
        &mut self,
        sb: &Sideband,
        keys: &[FlowKey],
    ) -> Result<KVec<Result<Option<u32>>>> {
        let mut results = KVec::with_capacity(keys.len(), GFP_KERNEL)?;
        let mut batch = InstallBatch::new()?;
        for key in keys {
            let at = results.len();
            // Within the capacity reserved above.
            results.push(Ok(None), GFP_KERNEL)?;
            if let Err(e) = self.plan_install(sb, key, at, &mut batch, &mut results) {
                // Out of memory midway: what is placed in the cache goes
                // to the NIC, so that both agree.
                self.flush_installs(sb, &mut batch, &mut results);
                return Err(e);
            }
        }
        self.flush_installs(sb, &mut batch, &mut results);
        Ok(results)
    }

    /// Plans the install of flow `at` of `key` into `batch`, sending the
    /// batch when it is full or an eviction must go first; sets the flow's
    /// result.
    fn plan_install(
        &mut self,
        sb: &Sideband,
        key: &FlowKey,
        at: usize,
        batch: &mut InstallBatch,
        results: &mut [Result<Option<u32>>],
    ) -> Result {
        let Some(rule) = self.table.lookup(key).copied() else {
            // No rule: the NIC's miss policy stands.
            return Ok(());
        };
        let mask = exact_mask(key);
        let mut record = rule.record_at(0);
        record.key = key.masked(&mask);
        record.mask = mask;
        let result = &mut results[at];
        *result = Ok(Some(rule.id));
        if batch.has(&record) {
            return batch.join(at);
        }
        let entry = self.next_entry;
        let node = RBTreeNode::new(
            entry,
            NicEntry {
                rule: rule.id,
                key: record.key,
            },
            GFP_KERNEL,
        )?;
        let plan = match self.cache.install(entry) {
            Ok(plan) => plan,
            Err(e) => {
                *result = Err(e);
                return Ok(());
            }
        };
        self.next_entry = self.next_entry.wrapping_add(1).max(1);
        match plan {
            Plan::Present { .. } => return Ok(()),
            Plan::Install { slot } => record.slot = slot,
            Plan::Evict { slot, evicted } => {
                // The DEL may not overtake SETs it would undo.
                self.flush_installs(sb, batch, results);
                self.evictions += 1;
                if let Err(e) = self.drain_slot(sb, slot) {
                    self.abandon_install(entry);
                    results[at] = Err(e);
                    return Ok(());
                }
                self.entries.remove(&evicted);
                record.slot = slot;
            }
        }
        self.entries.insert(node);
        batch.push(entry, record)?;
        batch.join(at)?;
        if batch.full() {
            self.flush_installs(sb, batch, results);
        }
        Ok(())
    }

    /// Sends the batch's SET; if it fails, its entries are abandoned and
    /// every flow it carried fails with it.
    fn flush_installs(
        &mut self,
        sb: &Sideband,
        batch: &mut InstallBatch,
        results: &mut [Result<Option<u32>>],
    ) {
        if batch.records.is_empty() {
            return;
        }
        if let Err(e) = oem_set(sb, oem::OBJ_FLOW, &batch.records) {
            for &entry in batch.entries.iter() {
                self.abandon_install(entry);
                self.entries.remove(&entry);
            }
            for &at in batch.flows.iter() {
                if let Some(r) = results.get_mut(at) {
                    *r = Err(e);
                }
            }
        }
        batch.clear();
    }

    /// The NIC slot of one of rule `id`'s entries, if any.
    pub(crate) fn slot_of_rule(&self, id: u32) -> Option<u32> {
        self.entries
            .iter()
            .find(|(_, e)| e.rule == id)
            .and_then(|(&entry, _)| self.cache.slot_of(entry))
    }

    /// Adds `rule` under a new ID. NIC entries of flows it now wins leave
    /// the NIC, so that their next packet installs them with it. If one
    /// cannot be taken out, the rule is removed again and the request
    /// fails: the entries already gone come back on their next miss, with
    /// the rules as they were.
    pub(crate) fn add_flow(&mut self, sb: &Sideband, mut rule: Rule) -> Result<u32> {
        let id = self.next_id;
        rule.id = id;
        self.table.insert(rule)?;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let table = &self.table;
        let taken = self.entries_where(|e| {
            e.key.masked(&rule.mask) == rule.key
                && table
                    .get(e.rule)
                    .is_none_or(|(old, _)| flow_table::wins_over(&rule, old))
        })?;
        if let Err(e) = self.uninstall_entries(sb, &taken) {
            let _ = self.table.remove(id);
            return Err(e);
        }
        Ok(id)
    }

    /// Removes rule `id`; returns its final counters, NIC traffic folded in.
    pub(crate) fn del_flow(&mut self, sb: &Sideband, id: u32) -> Result<Counters> {
        if self.table.get(id).is_none() {
            return Err(ENOENT);
        }
        let gone = self.entries_where(|e| e.rule == id)?;
        self.uninstall_entries(sb, &gone)?;
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
                self.account_entry(f.rule, f.packets, f.bytes);
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

    /// Ends the tenancy: every rule is removed (the NIC's counts folded
    /// in), the NIC forgets the VTEPs and meters, and the identity (no
    /// MAC, no address: nothing from the guest passes) and the tenant are
    /// cleared. Returns what the tenancy was billed: the software table's
    /// totals since the last end of a tenancy (rules removed earlier
    /// included), and the NIC's port counters once the last rule is gone.
    /// The policy stays; the next tenant starts from an empty table.
    ///
    /// A failure part-way leaves what is not yet cleared in place (and in
    /// the software state, which stays what the NIC holds): the request
    /// can be repeated.
    pub(crate) fn end_tenancy(&mut self, sb: &Sideband) -> Result<Tenancy> {
        let mut ids = KVec::with_capacity(self.table.len(), GFP_KERNEL)?;
        let mut next = 1;
        while let Some((rule, _)) = self.table.next_from(next) {
            ids.push(rule.id, GFP_KERNEL)?;
            next = match rule.id.checked_add(1) {
                Some(n) => n,
                None => break,
            };
        }
        for id in ids.iter() {
            self.del_flow(sb, *id)?;
        }
        let billed = self.table.totals();
        let port: PortCountersRecord = oem_get_one(sb, oem::OBJ_PORT_COUNTERS)?;
        oem_del_all(sb, oem::OBJ_VTEP, &mut self.vteps)?;
        oem_del_all(sb, oem::OBJ_METER, &mut self.meters)?;
        // The next tenant's meters start from zero: no reader sees this
        // tenant's counts again.
        self.meter_counters.clear();
        self.meters_read_at = None;
        let nobody = IdentityRecord {
            mtu_cap: self.identity.mtu_cap,
            ..IdentityRecord::default()
        };
        self.set_identity(sb, nobody)?;
        self.set_tenant(sb, TenantRecord::default())?;
        self.table = FlowTable::new();
        Ok(Tenancy {
            flows: ids.len() as u32,
            billed,
            port,
        })
    }

    /// Sets the policy (the RME keeps its events on).
    pub(crate) fn set_policy(&mut self, sb: &Sideband, mut p: PolicyRecord) -> Result {
        p.events = oem::EVENTS_TABLE_MISS | oem::EVENTS_VIOLATION;
        oem_set(sb, oem::OBJ_POLICY, &[p])?;
        self.policy = p;
        Ok(())
    }

    /// Reads the NIC's port counters (billing); for an unprivileged
    /// reader, what a read less than a second ago returned.
    pub(crate) fn port_counters(
        &mut self,
        sb: &Sideband,
        admin: bool,
    ) -> Result<PortCountersRecord> {
        if admin || !recent(self.port_read_at) {
            self.port_counters = oem_get_one(sb, oem::OBJ_PORT_COUNTERS)?;
            self.port_read_at = Some(Instant::now());
        }
        Ok(self.port_counters)
    }

    /// Reads the NIC counters of every set meter; for an unprivileged
    /// reader, only if the last read is a second old.
    pub(crate) fn fresh_meter_counters(&mut self, sb: &Sideband, admin: bool) -> Result {
        if !admin && recent(self.meters_read_at) {
            return Ok(());
        }
        let mut indices = KVec::new();
        for m in self.meters.iter().flatten() {
            indices.push(
                SlotRecord {
                    slot: u32::from(m.index),
                },
                GFP_KERNEL,
            )?;
        }
        let mut answers = KVec::with_capacity(indices.len(), GFP_KERNEL)?;
        if !indices.is_empty() {
            oem_command(
                sb,
                oem::OP_GET,
                oem::OBJ_METER_COUNTERS,
                &indices,
                &mut answers,
            )?;
        }
        self.meter_counters = answers;
        self.meters_read_at = Some(Instant::now());
        Ok(())
    }

    /// The counters of meter `index` as last read from the NIC, if it was
    /// set there then.
    pub(crate) fn meter_counters(&self, index: u16) -> Option<MeterCountersRecord> {
        self.meter_counters
            .iter()
            .find(|c| c.index == index && c.in_use)
            .copied()
    }

    /// Reads the NIC counters of every installed rule into the table; for
    /// an unprivileged reader, only if the last read is a second old.
    pub(crate) fn fresh_counters(&mut self, sb: &Sideband, admin: bool) -> Result {
        if admin || !recent(self.counters_read_at) {
            self.refresh_counters(sb)?;
            self.counters_read_at = Some(Instant::now());
        }
        Ok(())
    }
}

#[kunit_tests(bmgnic_rme_control)]
mod tests {
    use super::*;

    fn key(ethertype: u16, ip_proto: u8) -> FlowKey {
        FlowKey {
            ethertype,
            ip_proto,
            eth_src: [0x52, 0x54, 0, 0xb0, 0, 1],
            eth_dst: [0xff; 6],
            ip_src: [10, 10, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
            ip_dst: [10, 10, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8],
            l4_src: 40000,
            l4_dst: 5201,
            ..FlowKey::default()
        }
    }

    #[test]
    fn exact_entries_pass_the_nic_checks_for_every_kind_of_packet() {
        for (ethertype, proto) in [
            (oem::ETHERTYPE_IPV4, oem::IPPROTO_TCP),
            (oem::ETHERTYPE_IPV4, oem::IPPROTO_ICMP),
            (oem::ETHERTYPE_IPV4, 47),
            (oem::ETHERTYPE_ARP, 1),
            (oem::ETHERTYPE_IPV6, oem::IPPROTO_ICMPV6),
            (oem::ETHERTYPE_IPV6, oem::IPPROTO_UDP),
            (0x88b5, 0),
        ] {
            let k = key(ethertype, proto);
            let m = exact_mask(&k);
            assert_eq!(
                oem::check_flow(oem::ACTION_ALLOW, &k.masked(&m), &m),
                Ok(())
            );
            // The entry matches the packet it was made for.
            assert_eq!(k.masked(&m), k.masked(&m).masked(&m));
        }
    }

    #[test]
    fn exact_entries_match_what_has_a_meaning_for_the_packet() {
        let tcp = exact_mask(&key(oem::ETHERTYPE_IPV4, oem::IPPROTO_TCP));
        assert_eq!(
            (tcp.l4_src, tcp.l4_dst, tcp.ip_proto),
            (0xffff, 0xffff, 0xff)
        );
        assert_eq!(&tcp.ip_src[..4], &[0xff; 4]);
        assert_eq!(&tcp.ip_src[4..], &[0; 12]);
        // GRE has no ports; ARP's addresses are IPv4-sized.
        let gre = exact_mask(&key(oem::ETHERTYPE_IPV4, 47));
        assert_eq!((gre.l4_src, gre.l4_dst), (0, 0));
        let v6 = exact_mask(&key(oem::ETHERTYPE_IPV6, oem::IPPROTO_UDP));
        assert_eq!(v6.ip_dst, [0xff; 16]);
        let other = exact_mask(&key(0x88b5, 0));
        assert_eq!(
            (other.ip_proto, other.ip_src, other.l4_dst),
            (0, [0; 16], 0)
        );
        assert_eq!(other.eth_src, [0xff; 6]);
    }
}
