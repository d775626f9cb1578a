// SPDX-License-Identifier: GPL-2.0

//! What the daemon asks of the `bmgnic_rme` module, in the module's terms:
//! flows, meters, the device's state and its events. [`Rme`] is the trait
//! the OpenFlow agent drives; [`crate::nl::Netlink`] implements it over the
//! `bmgnic` generic netlink family, tests with an in-memory table.
//!
//! [`NicConfig`] is the tenant's whole NIC configuration, as JSON, so that
//! a checkpointed guest can be restored or migrated with its NIC identity.

use bmgnic_wire::ncsi_oem::{ACTION_ALLOW, ACTION_DROP, ACTION_ENCAP, MAX_GUEST_ADDRS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// What the module's flow rule does with a matching packet.
///
/// JSON: `"drop"`, `"allow"` or `{"encap": {"vtep": 1}}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FlowAction {
    Drop,
    Allow,
    /// Encapsulate in VXLAN toward the remote VTEP of this index.
    Encap {
        vtep: u8,
    },
}

/// The module's `action` enum carries the NIC's action codes, which it
/// passes through: the wire crate's `ACTION_*`.
impl FlowAction {
    pub fn to_attr(self) -> u8 {
        match self {
            FlowAction::Drop => ACTION_DROP,
            FlowAction::Allow => ACTION_ALLOW,
            FlowAction::Encap { .. } => ACTION_ENCAP,
        }
    }
}

/// An IP address and prefix length, as the module matches it.
///
/// JSON: `"10.0.0.0/24"` (CIDR text; a bare address is a /32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    pub addr: [u8; 4],
    pub len: u8,
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.len)
    }
}

impl std::str::FromStr for IpPrefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().ok().filter(|l| *l <= 32)),
            None => (s, Some(32)),
        };
        match (addr.parse::<Ipv4Addr>(), len) {
            (Ok(addr), Some(len)) => Ok(IpPrefix {
                addr: addr.octets(),
                len,
            }),
            _ => Err(format!("{s:?} is not an IPv4 prefix (a.b.c.d/len)")),
        }
    }
}

impl Serialize for IpPrefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpPrefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A rule's match; `None` fields are wildcards (left out of the JSON).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowMatch {
    /// 0: from the guest (host port), 1: from the fabric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_port: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ethertype: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan_tci: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_proto: Option<u8>,
    /// Address and mask; JSON `{"mac": "..", "mask": ".."}`.
    #[serde(skip_serializing_if = "Option::is_none", with = "text::mac_masked")]
    pub eth_src: Option<([u8; 6], [u8; 6])>,
    #[serde(skip_serializing_if = "Option::is_none", with = "text::mac_masked")]
    pub eth_dst: Option<([u8; 6], [u8; 6])>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_src: Option<IpPrefix>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_dst: Option<IpPrefix>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l4_src: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l4_dst: Option<u16>,
}

/// A rule of the module's software table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    pub priority: u16,
    pub action: FlowAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<u8>,
    /// `match` in the JSON, as in the module's family.
    #[serde(rename = "match", default)]
    pub matching: FlowMatch,
}

/// A rule as the module reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowInfo {
    pub id: u32,
    pub spec: FlowSpec,
    pub packets: u64,
    pub bytes: u64,
}

/// A token-bucket meter of the NIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterSpec {
    pub index: u8,
    /// Bytes (or packets) per second.
    pub rate: u64,
    /// Bucket depth in bytes (or packets).
    pub burst: u32,
    /// The rate and burst count packets, not bytes; JSON `"unit":
    /// "bytes"|"packets"`, the module's `meter-unit`.
    #[serde(rename = "unit", with = "text::meter_unit")]
    pub packets: bool,
}

/// A meter's counters in the NIC: what it let through and what it
/// dropped, since it was set there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeterCounters {
    pub passed_packets: u64,
    pub passed_bytes: u64,
    pub dropped_packets: u64,
    pub dropped_bytes: u64,
}

/// The device's counters (the module's `counters` nest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DevCounters {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub drops: u64,
    pub table_misses: u64,
}

/// What `dev-get` reports that the agent uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevState {
    pub guest_mac: [u8; 6],
    pub quarantined: bool,
    pub counters: DevCounters,
    pub nic_flow_slots: u32,
    pub sw_flows: u32,
    /// Whether the NIC's fabric port has link.
    pub fabric_link: bool,
}

impl Default for DevState {
    /// A NIC with its fabric cable in and nothing else known.
    fn default() -> Self {
        Self {
            guest_mac: [0; 6],
            quarantined: false,
            counters: DevCounters::default(),
            nic_flow_slots: 0,
            sw_flows: 0,
            fabric_link: true,
        }
    }
}

/// What a tenancy was billed when it ended (`tenant-reset`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tenancy {
    /// Rules removed at the end.
    pub flows: u32,
    /// Every rule's traffic during the tenancy.
    pub packets: u64,
    pub bytes: u64,
    /// The NIC's port counters at the end.
    pub counters: DevCounters,
}

/// An event of the module's `events` group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RmeEvent {
    /// A packet missed the NIC's table: its headers, and whether the
    /// software table had a rule for it (which the module then installed).
    TableMiss {
        count: u32,
        matching: FlowMatch,
        installed: bool,
    },
    /// A guest violation (spoofing, a read-only register write).
    Violation { count: u32 },
    /// The NIC stopped answering.
    NicTimeout,
    /// The NIC's fabric link went up or down.
    Link { up: bool },
    /// `bmgnic_rme` was loaded (again): a new module, which holds none of
    /// the rules, meters and VTEPs given to the one before.
    ModuleLoaded,
}

/// A request the module refused: its errno and extack message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RmeError {
    /// Positive errno (`ENOSPC`, `EINVAL`, ...).
    pub errno: i32,
    pub message: Option<String>,
}

impl RmeError {
    pub fn new(errno: i32, message: impl Into<String>) -> Self {
        Self {
            errno,
            message: Some(message.into()),
        }
    }
}

impl fmt::Display for RmeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let err = std::io::Error::from_raw_os_error(self.errno);
        match &self.message {
            Some(m) => write!(f, "{err}: {m}"),
            None => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for RmeError {}

/// errno values the agent tells apart.
pub mod errno {
    pub const ENOENT: i32 = 2;
    pub const EIO: i32 = 5;
    pub const EBUSY: i32 = 16;
    pub const ENODEV: i32 = 19;
    pub const EINVAL: i32 = 22;
    pub const ENOSPC: i32 = 28;
    pub const EOPNOTSUPP: i32 = 95;
    /// A request that named the state of a module since reloaded.
    pub const ESTALE: i32 = 116;
}

/// The guest's identity (the module's `identity` set): what the NIC's
/// anti-spoofing lets it send as.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    #[serde(with = "text::mac")]
    pub mac: [u8; 6],
    /// 0 when never set; applying it then keeps the NIC's.
    pub mtu_cap: u32,
    #[serde(default)]
    pub ipv4: Vec<Ipv4Addr>,
    #[serde(default)]
    pub ipv6: Vec<Ipv6Addr>,
}

/// The tenant's VNI and this server's VTEP (the module's `tenant` set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub vni: u32,
    #[serde(with = "text::mac")]
    pub local_mac: [u8; 6],
    pub local_ip: Ipv4Addr,
}

impl TenantConfig {
    /// What the module holds without a tenant (before `tenant-set`, after
    /// `tenant-reset`): it reports that as a zeroed `tenant` nest.
    pub fn is_unset(&self) -> bool {
        self.vni == 0 && self.local_mac == [0; 6] && self.local_ip.is_unspecified()
    }
}

/// A remote VTEP that flows encapsulate toward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VtepConfig {
    pub index: u8,
    #[serde(with = "text::mac")]
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
}

/// What the NIC does with a guest packet no rule matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissPolicy {
    /// The module's default, as an OpenFlow table without a miss flow.
    #[default]
    Drop,
    Allow,
}

/// The part of the module's `policy` that belongs to the configuration:
/// quarantine is the operator's verdict on the guest, not its setup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub miss: MissPolicy,
}

/// What the cloud gives the RME for the OpenFlow switch before any
/// controller speaks (the daemon's command line): the controller programs
/// none of it. Applied at start, and again to a reloaded module.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provisioning {
    /// The guest's identity, when the RME is given one.
    pub identity: Option<IdentityConfig>,
    /// This server's VTEP (MAC, IP); the VNI is the controller's.
    pub local_vtep: Option<([u8; 6], Ipv4Addr)>,
    pub vteps: Vec<VtepConfig>,
}

/// Applies `p` with tenant VNI `vni` (0 before the controller's first
/// `tunnel_id`); packets no rule matches are dropped, as in an OpenFlow
/// table without a table-miss flow.
pub(crate) fn apply_provisioning<T: NicConfigSteps>(
    nic: &mut T,
    p: &Provisioning,
    vni: u32,
) -> Result<(), RmeError> {
    if let Some(id) = &p.identity {
        nic.identity_apply(id).map_err(at_step("identity"))?;
    }
    if let Some((local_mac, local_ip)) = p.local_vtep {
        let t = TenantConfig {
            vni,
            local_mac,
            local_ip,
        };
        nic.tenant_apply(&t).map_err(at_step("tenant"))?;
    }
    for v in &p.vteps {
        nic.vtep_apply(v)
            .map_err(at_step(format_args!("vtep {}", v.index)))?;
    }
    nic.policy_apply(&PolicyConfig {
        miss: MissPolicy::Drop,
    })
    .map_err(at_step("policy"))
}

/// The tenant's whole NIC configuration: what a checkpoint keeps so the
/// guest comes back (here or on another server) with the same NIC.
/// Flow ids and counters are not part of it: applying makes new rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicConfig {
    pub identity: IdentityConfig,
    /// `None` without a tenant.
    #[serde(default)]
    pub tenant: Option<TenantConfig>,
    #[serde(default)]
    pub vteps: Vec<VtepConfig>,
    #[serde(default)]
    pub meters: Vec<MeterSpec>,
    /// In the software table's order, which applying keeps.
    #[serde(default)]
    pub flows: Vec<FlowSpec>,
    /// `None` when the module did not report it; applying then leaves
    /// the NIC's.
    #[serde(default)]
    pub policy: Option<PolicyConfig>,
}

impl NicConfig {
    /// Checks what the module would refuse part-way through an apply, and
    /// the flows' references, so that a bad file fails before the NIC is
    /// touched (and before its tenant is reset for it).
    pub fn validate(&self) -> Result<(), RmeError> {
        let bad = |what: String| Err(RmeError::new(errno::EINVAL, what));
        let id = &self.identity;
        if id.mtu_cap != 0 && !(68..=9000).contains(&id.mtu_cap) {
            return bad(format!("identity: MTU cap {} not in 68..=9000", id.mtu_cap));
        }
        if id.ipv4.len() > MAX_GUEST_ADDRS || id.ipv6.len() > MAX_GUEST_ADDRS {
            return bad(format!(
                "identity: at most {MAX_GUEST_ADDRS} IPv4 and {MAX_GUEST_ADDRS} IPv6 addresses"
            ));
        }
        if let Some(t) = &self.tenant {
            if t.vni > 0xff_ffff {
                return bad(format!("tenant: VNI {} is more than 24 bits", t.vni));
            }
        }
        let mut vteps = [false; 256];
        for v in &self.vteps {
            if std::mem::replace(&mut vteps[usize::from(v.index)], true) {
                return bad(format!("vtep {} is set twice", v.index));
            }
        }
        let mut meters = [false; 256];
        for m in &self.meters {
            if std::mem::replace(&mut meters[usize::from(m.index)], true) {
                return bad(format!("meter {} is set twice", m.index));
            }
        }
        let n = self.flows.len();
        for (i, f) in self.flows.iter().enumerate() {
            if let FlowAction::Encap { vtep } = f.action {
                if !vteps[usize::from(vtep)] {
                    return bad(format!(
                        "flow {} of {n}: encapsulates toward vtep {vtep}, which the config does not set",
                        i + 1
                    ));
                }
            }
            if let Some(m) = f.meter {
                if !meters[usize::from(m)] {
                    return bad(format!(
                        "flow {} of {n}: meter {m}, which the config does not set",
                        i + 1
                    ));
                }
            }
        }
        Ok(())
    }

    /// What of a tenant this NIC holds, which keeps it from taking a
    /// configuration: applying adds to what is there. A guest MAC alone
    /// is not a tenant: a new NIC reports its own address as the guest's
    /// until an identity is set, and setting one replaces it.
    pub fn held(&self) -> Vec<String> {
        let mut held = Vec::new();
        if !self.flows.is_empty() {
            held.push(format!("flows ({})", self.flows.len()));
        }
        if self.tenant.is_some() {
            held.push("a tenant".into());
        }
        if !self.vteps.is_empty() {
            held.push(format!("vteps ({})", self.vteps.len()));
        }
        if !self.meters.is_empty() {
            held.push(format!("meters ({})", self.meters.len()));
        }
        let id = &self.identity;
        if !id.ipv4.is_empty() || !id.ipv6.is_empty() {
            held.push("guest addresses".into());
        }
        held
    }
}

/// Prefixes an error's message with the step that failed, keeping its
/// errno, so that a failed apply says how far it went.
fn at_step(what: impl fmt::Display) -> impl FnOnce(RmeError) -> RmeError {
    move |e| RmeError {
        errno: e.errno,
        message: Some(match e.message {
            Some(m) => format!("{what}: {m}"),
            None => what.to_string(),
        }),
    }
}

/// The module's setters beyond [`Rme`]'s that applying a [`NicConfig`]
/// needs; both modules share [`apply_nic_config`], so the test double
/// checks the order and the messages the daemon really uses.
pub(crate) trait NicConfigSteps: Rme {
    fn identity_apply(&mut self, id: &IdentityConfig) -> Result<(), RmeError>;
    fn tenant_apply(&mut self, tenant: &TenantConfig) -> Result<(), RmeError>;
    fn vtep_apply(&mut self, vtep: &VtepConfig) -> Result<(), RmeError>;
    fn policy_apply(&mut self, policy: &PolicyConfig) -> Result<(), RmeError>;
}

/// Applies `cfg` in dependency order (flows name VTEPs and meters) to a
/// NIC without a tenant; stops at the first error, naming the step. What
/// was applied before it stays: `tenant-reset` clears it.
pub(crate) fn apply_nic_config<T: NicConfigSteps>(
    nic: &mut T,
    cfg: &NicConfig,
) -> Result<(), RmeError> {
    cfg.validate()?;
    let held = nic.nic_config().map_err(at_step("reading the NIC"))?.held();
    if !held.is_empty() {
        return Err(RmeError::new(
            errno::EBUSY,
            format!("the NIC holds {}: reset its tenant first", held.join(", ")),
        ));
    }
    nic.identity_apply(&cfg.identity)
        .map_err(at_step("identity"))?;
    if let Some(t) = &cfg.tenant {
        nic.tenant_apply(t).map_err(at_step("tenant"))?;
    }
    let n = cfg.vteps.len();
    for (i, v) in cfg.vteps.iter().enumerate() {
        nic.vtep_apply(v).map_err(at_step(format_args!(
            "vtep {} of {n} (index {})",
            i + 1,
            v.index
        )))?;
    }
    let n = cfg.meters.len();
    for (i, m) in cfg.meters.iter().enumerate() {
        nic.meter_set(m).map_err(at_step(format_args!(
            "meter {} of {n} (index {})",
            i + 1,
            m.index
        )))?;
    }
    let n = cfg.flows.len();
    for (i, f) in cfg.flows.iter().enumerate() {
        nic.flow_add(f)
            .map_err(at_step(format_args!("flow {} of {n}", i + 1)))?;
    }
    if let Some(p) = &cfg.policy {
        nic.policy_apply(p).map_err(at_step("policy"))?;
    }
    Ok(())
}

/// The module, as the agent uses it.
pub trait Rme {
    fn flow_add(&mut self, spec: &FlowSpec) -> Result<u32, RmeError>;
    /// Removes a rule; returns its final (packets, bytes).
    fn flow_del(&mut self, id: u32) -> Result<(u64, u64), RmeError>;
    fn flow_dump(&mut self) -> Result<Vec<FlowInfo>, RmeError>;
    fn meter_set(&mut self, meter: &MeterSpec) -> Result<(), RmeError>;
    /// The counters of each set meter, by index, read from the NIC.
    fn meter_counters(&mut self) -> Result<BTreeMap<u8, MeterCounters>, RmeError>;
    fn dev_get(&mut self) -> Result<DevState, RmeError>;
    /// Sets the tenant's VNI, keeping its local VTEP.
    fn tenant_vni_set(&mut self, vni: u32) -> Result<(), RmeError>;
    /// Ends the tenancy: the NIC keeps nothing of it (rules, VTEPs,
    /// meters, identity, tenant); returns what it was billed.
    fn tenant_reset(&mut self) -> Result<Tenancy, RmeError>;
    /// Captures the tenant's configuration. Not atomic: quiesce the agent
    /// (and pause the guest) so that the rules do not change meanwhile.
    fn nic_config(&mut self) -> Result<NicConfig, RmeError>;
    /// Applies a configuration to a NIC without a tenant (`EBUSY`
    /// otherwise); on failure the error names the step, and what came
    /// before it stays applied.
    fn nic_config_apply(&mut self, cfg: &NicConfig) -> Result<(), RmeError>;
    /// Applies the RME's provisioning with tenant VNI `vni`.
    fn provision(&mut self, p: &Provisioning, vni: u32) -> Result<(), RmeError>;
    /// Looks the module up again (it was loaded): true when it is a new
    /// one, which [`Rme::take_reload`] then reports too.
    fn reattach(&mut self) -> Result<bool, RmeError> {
        Ok(false)
    }
    /// True, once, after the module was found replaced (unloaded and
    /// loaded again): the new one holds no rule, meter or VTEP of the old,
    /// and the old rule ids name nothing.
    fn take_reload(&mut self) -> bool {
        false
    }
}

/// The module's table, meters and device state, in memory: for tests,
/// and for running the agent without a NIC.
#[derive(Default)]
pub struct MemoryRme {
    next: u32,
    /// Rules by id, with their (packets, bytes).
    pub rules: BTreeMap<u32, (FlowSpec, u64, u64)>,
    pub meters: BTreeMap<u8, MeterSpec>,
    /// What the NIC would count for each meter.
    pub meter_counts: BTreeMap<u8, MeterCounters>,
    /// Rules the software table holds.
    pub capacity: usize,
    /// `guest_mac` is the identity's MAC.
    pub dev: DevState,
    pub vni: Option<u32>,
    /// The rest of the identity; 0: MTU cap never set.
    pub mtu_cap: u32,
    pub guest_ipv4: Vec<Ipv4Addr>,
    pub guest_ipv6: Vec<Ipv6Addr>,
    /// The tenant's local VTEP (MAC, IP), once set.
    pub local_vtep: Option<([u8; 6], Ipv4Addr)>,
    pub vteps: BTreeMap<u8, VtepConfig>,
    /// Kept across tenancies, as the module keeps its policy.
    pub miss_policy: MissPolicy,
    /// Set by [`MemoryRme::reload`] until [`Rme::take_reload`].
    reloaded: bool,
    /// Set by [`MemoryRme::reload_unannounced`]: the next rule request
    /// finds the module new, as the netlink side does (ESTALE).
    unannounced: bool,
}

impl MemoryRme {
    /// An empty module whose software table holds `capacity` rules.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ..Default::default()
        }
    }

    /// Unloads and loads the module: what `bmgnic_rme` keeps across that
    /// is what the NIC holds (identity, tenant, policy); its rules, meters
    /// and VTEPs are gone, and rule ids start again.
    pub fn reload(&mut self) {
        self.next = 0;
        self.rules.clear();
        self.meters.clear();
        self.meter_counts.clear();
        self.vteps.clear();
        self.reloaded = true;
    }

    /// [`MemoryRme::reload`] with no event: the switch learns of it when a
    /// request naming a rule fails with ESTALE.
    pub fn reload_unannounced(&mut self) {
        self.reload();
        self.reloaded = false;
        self.unannounced = true;
    }

    /// The ESTALE a request meets in a module reloaded unannounced.
    fn stale(&mut self) -> Result<(), RmeError> {
        if std::mem::take(&mut self.unannounced) {
            self.reloaded = true;
            return Err(RmeError::new(errno::ESTALE, "bmgnic_rme was reloaded"));
        }
        Ok(())
    }

    /// Traffic hits rule `id`.
    pub fn hit(&mut self, id: u32, packets: u64, bytes: u64) {
        if let Some(r) = self.rules.get_mut(&id) {
            r.1 += packets;
            r.2 += bytes;
        }
    }
}

impl Rme for MemoryRme {
    fn flow_add(&mut self, spec: &FlowSpec) -> Result<u32, RmeError> {
        self.stale()?;
        if self.rules.len() >= self.capacity {
            return Err(RmeError::new(errno::ENOSPC, "software table full"));
        }
        self.next += 1;
        self.rules.insert(self.next, (*spec, 0, 0));
        Ok(self.next)
    }

    fn flow_del(&mut self, id: u32) -> Result<(u64, u64), RmeError> {
        self.stale()?;
        self.rules
            .remove(&id)
            .map(|(_, p, b)| (p, b))
            .ok_or(RmeError::new(errno::ENOENT, "no such rule"))
    }

    fn flow_dump(&mut self) -> Result<Vec<FlowInfo>, RmeError> {
        Ok(self
            .rules
            .iter()
            .map(|(&id, &(spec, packets, bytes))| FlowInfo {
                id,
                spec,
                packets,
                bytes,
            })
            .collect())
    }

    fn meter_set(&mut self, m: &MeterSpec) -> Result<(), RmeError> {
        self.meters.insert(m.index, *m);
        Ok(())
    }

    fn meter_counters(&mut self) -> Result<BTreeMap<u8, MeterCounters>, RmeError> {
        Ok(self
            .meters
            .keys()
            .map(|i| (*i, self.meter_counts.get(i).copied().unwrap_or_default()))
            .collect())
    }

    fn dev_get(&mut self) -> Result<DevState, RmeError> {
        Ok(self.dev.clone())
    }

    fn tenant_vni_set(&mut self, vni: u32) -> Result<(), RmeError> {
        self.vni = Some(vni);
        Ok(())
    }

    fn tenant_reset(&mut self) -> Result<Tenancy, RmeError> {
        let mut ended = Tenancy {
            flows: self.rules.len() as u32,
            counters: self.dev.counters,
            ..Tenancy::default()
        };
        for (_, packets, bytes) in std::mem::take(&mut self.rules).into_values() {
            ended.packets += packets;
            ended.bytes += bytes;
        }
        self.meters.clear();
        self.meter_counts.clear();
        self.vni = None;
        self.local_vtep = None;
        self.vteps.clear();
        // As the module: nothing from the guest passes, the MTU cap stays.
        self.dev.guest_mac = [0; 6];
        self.guest_ipv4.clear();
        self.guest_ipv6.clear();
        Ok(ended)
    }

    fn nic_config(&mut self) -> Result<NicConfig, RmeError> {
        let (local_mac, local_ip) = self.local_vtep.unwrap_or(([0; 6], Ipv4Addr::UNSPECIFIED));
        let tenant = TenantConfig {
            vni: self.vni.unwrap_or(0),
            local_mac,
            local_ip,
        };
        Ok(NicConfig {
            identity: IdentityConfig {
                mac: self.dev.guest_mac,
                mtu_cap: self.mtu_cap,
                ipv4: self.guest_ipv4.clone(),
                ipv6: self.guest_ipv6.clone(),
            },
            tenant: (!tenant.is_unset()).then_some(tenant),
            vteps: self.vteps.values().copied().collect(),
            meters: self.meters.values().copied().collect(),
            flows: self.rules.values().map(|(spec, _, _)| *spec).collect(),
            policy: Some(PolicyConfig {
                miss: self.miss_policy,
            }),
        })
    }

    fn nic_config_apply(&mut self, cfg: &NicConfig) -> Result<(), RmeError> {
        apply_nic_config(self, cfg)
    }

    fn provision(&mut self, p: &Provisioning, vni: u32) -> Result<(), RmeError> {
        apply_provisioning(self, p, vni)
    }

    fn take_reload(&mut self) -> bool {
        std::mem::take(&mut self.reloaded)
    }
}

/// The module's semantics, so that applying behaves as on a NIC.
impl NicConfigSteps for MemoryRme {
    fn identity_apply(&mut self, id: &IdentityConfig) -> Result<(), RmeError> {
        if id.ipv4.len() > MAX_GUEST_ADDRS || id.ipv6.len() > MAX_GUEST_ADDRS {
            return Err(RmeError::new(
                errno::EINVAL,
                "at most 4 IPv4 and 4 IPv6 addresses",
            ));
        }
        self.dev.guest_mac = id.mac;
        if id.mtu_cap != 0 {
            self.mtu_cap = id.mtu_cap;
        }
        // The module replaces the addresses only when given some.
        if !id.ipv4.is_empty() || !id.ipv6.is_empty() {
            self.guest_ipv4.clone_from(&id.ipv4);
            self.guest_ipv6.clone_from(&id.ipv6);
        }
        Ok(())
    }

    fn tenant_apply(&mut self, t: &TenantConfig) -> Result<(), RmeError> {
        if t.vni > 0xff_ffff {
            return Err(RmeError::new(errno::EINVAL, "VNI out of range"));
        }
        self.vni = Some(t.vni);
        self.local_vtep = Some((t.local_mac, t.local_ip));
        Ok(())
    }

    fn vtep_apply(&mut self, v: &VtepConfig) -> Result<(), RmeError> {
        self.vteps.insert(v.index, *v);
        Ok(())
    }

    fn policy_apply(&mut self, p: &PolicyConfig) -> Result<(), RmeError> {
        self.miss_policy = p.miss;
        Ok(())
    }
}

/// A module shared with another thread (a test's traffic or events).
impl<T: Rme> Rme for std::sync::Arc<std::sync::Mutex<T>> {
    fn flow_add(&mut self, spec: &FlowSpec) -> Result<u32, RmeError> {
        self.lock()
            .unwrap_or_else(|e| e.into_inner())
            .flow_add(spec)
    }

    fn flow_del(&mut self, id: u32) -> Result<(u64, u64), RmeError> {
        self.lock().unwrap_or_else(|e| e.into_inner()).flow_del(id)
    }

    fn flow_dump(&mut self) -> Result<Vec<FlowInfo>, RmeError> {
        self.lock().unwrap_or_else(|e| e.into_inner()).flow_dump()
    }

    fn meter_set(&mut self, meter: &MeterSpec) -> Result<(), RmeError> {
        self.lock()
            .unwrap_or_else(|e| e.into_inner())
            .meter_set(meter)
    }

    fn meter_counters(&mut self) -> Result<BTreeMap<u8, MeterCounters>, RmeError> {
        self.lock()
            .unwrap_or_else(|e| e.into_inner())
            .meter_counters()
    }

    fn dev_get(&mut self) -> Result<DevState, RmeError> {
        self.lock().unwrap_or_else(|e| e.into_inner()).dev_get()
    }

    fn tenant_vni_set(&mut self, vni: u32) -> Result<(), RmeError> {
        self.lock()
            .unwrap_or_else(|e| e.into_inner())
            .tenant_vni_set(vni)
    }

    fn tenant_reset(&mut self) -> Result<Tenancy, RmeError> {
        self.lock()
            .unwrap_or_else(|e| e.into_inner())
            .tenant_reset()
    }

    fn nic_config(&mut self) -> Result<NicConfig, RmeError> {
        self.lock().unwrap_or_else(|e| e.into_inner()).nic_config()
    }

    /// Under one lock: the other thread sees none or all of it.
    fn nic_config_apply(&mut self, cfg: &NicConfig) -> Result<(), RmeError> {
        self.lock()
            .unwrap_or_else(|e| e.into_inner())
            .nic_config_apply(cfg)
    }

    fn provision(&mut self, p: &Provisioning, vni: u32) -> Result<(), RmeError> {
        self.lock()
            .unwrap_or_else(|e| e.into_inner())
            .provision(p, vni)
    }

    fn reattach(&mut self) -> Result<bool, RmeError> {
        self.lock().unwrap_or_else(|e| e.into_inner()).reattach()
    }

    fn take_reload(&mut self) -> bool {
        self.lock().unwrap_or_else(|e| e.into_inner()).take_reload()
    }
}

/// Text forms of the module's byte arrays for [`NicConfig`]'s JSON.
mod text {
    use serde::{de::Error as _, Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn mac_text(m: &[u8; 6]) -> String {
        let [a, b, c, d, e, f] = m;
        format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
    }

    /// `aa:bb:cc:dd:ee:ff`, either case.
    pub(super) fn mac_parse(s: &str) -> Option<[u8; 6]> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            let p = parts.next()?;
            if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        parts.next().is_none().then_some(out)
    }

    fn mac_de<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 6], D::Error> {
        let s = String::deserialize(d)?;
        mac_parse(&s).ok_or_else(|| D::Error::custom(format!("{s:?} is not a MAC address")))
    }

    /// A `[u8; 6]` as `"aa:bb:cc:dd:ee:ff"`.
    pub(super) mod mac {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(m: &[u8; 6], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&mac_text(m))
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 6], D::Error> {
            mac_de(d)
        }
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Masked {
        #[serde(with = "mac")]
        mac: [u8; 6],
        /// Exact when left out.
        #[serde(with = "mac", default = "exact")]
        mask: [u8; 6],
    }

    fn exact() -> [u8; 6] {
        [0xff; 6]
    }

    /// [`super::FlowMatch`]'s MAC fields: address and mask.
    type MacMatch = Option<([u8; 6], [u8; 6])>;

    /// A MAC match, `{"mac": "..", "mask": ".."}`.
    pub(super) mod mac_masked {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(m: &MacMatch, s: S) -> Result<S::Ok, S::Error> {
            m.map(|(mac, mask)| Masked { mac, mask }).serialize(s)
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MacMatch, D::Error> {
            Ok(Option::<Masked>::deserialize(d)?.map(|m| (m.mac, m.mask)))
        }
    }

    /// A meter's `packets` flag as the module's `meter-unit` names.
    pub(super) mod meter_unit {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(packets: &bool, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(if *packets { "packets" } else { "bytes" })
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
            match String::deserialize(d)?.as_str() {
                "bytes" => Ok(false),
                "packets" => Ok(true),
                other => Err(D::Error::custom(format!(
                    "meter unit {other:?} is neither \"bytes\" nor \"packets\""
                ))),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    const GUEST: [u8; 6] = [0x02, 0x00, 0x00, 0xaa, 0xbb, 0x01];

    /// Every part of a configuration, every match field.
    fn full() -> NicConfig {
        NicConfig {
            identity: IdentityConfig {
                mac: GUEST,
                mtu_cap: 9000,
                ipv4: vec![Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 1, 5)],
                ipv6: vec!["fd00::5".parse().unwrap_or(Ipv6Addr::LOCALHOST)],
            },
            tenant: Some(TenantConfig {
                vni: 4242,
                local_mac: [0x02, 0, 0, 0, 0, 0x10],
                local_ip: Ipv4Addr::new(192, 168, 0, 10),
            }),
            vteps: vec![VtepConfig {
                index: 3,
                mac: [0x02, 0, 0, 0, 0, 0x11],
                ip: Ipv4Addr::new(192, 168, 0, 11),
            }],
            meters: vec![
                MeterSpec {
                    index: 0,
                    rate: 125_000_000,
                    burst: 1_250_000,
                    packets: false,
                },
                MeterSpec {
                    index: 7,
                    rate: 1000,
                    burst: 10,
                    packets: true,
                },
            ],
            flows: vec![
                FlowSpec {
                    priority: 100,
                    action: FlowAction::Encap { vtep: 3 },
                    meter: Some(0),
                    matching: every_match(GUEST),
                },
                FlowSpec {
                    priority: 0,
                    action: FlowAction::Drop,
                    meter: None,
                    matching: FlowMatch::default(),
                },
            ],
            policy: Some(PolicyConfig {
                miss: MissPolicy::Allow,
            }),
        }
    }

    fn json_of(cfg: &NicConfig) -> serde_json::Value {
        serde_json::to_value(cfg).unwrap_or_default()
    }

    /// A match with every field set: what a config must carry whole.
    pub(crate) fn every_match(src: [u8; 6]) -> FlowMatch {
        FlowMatch {
            in_port: Some(0),
            ethertype: Some(0x0800),
            vlan_tci: Some(0x1005),
            ip_proto: Some(6),
            eth_src: Some((src, [0xff; 6])),
            eth_dst: Some(([0x02, 0, 0, 0, 0, 0], [0xff, 0xff, 0xff, 0, 0, 0])),
            ip_src: Some(IpPrefix {
                addr: [10, 0, 0, 5],
                len: 32,
            }),
            ip_dst: Some(IpPrefix {
                addr: [10, 0, 2, 0],
                len: 24,
            }),
            l4_src: Some(40000),
            l4_dst: Some(443),
        }
    }

    #[test]
    fn json_round_trip() {
        let cfg = full();
        let text = serde_json::to_string_pretty(&cfg).expect("serializes");
        let back: NicConfig = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, cfg);
        let empty = NicConfig::default();
        let text = serde_json::to_string(&empty).expect("serializes");
        assert_eq!(serde_json::from_str::<NicConfig>(&text).ok(), Some(empty));
    }

    #[test]
    fn json_shape() {
        assert_eq!(
            json_of(&full()),
            json!({
                "identity": {
                    "mac": "02:00:00:aa:bb:01",
                    "mtu_cap": 9000,
                    "ipv4": ["10.0.0.5", "10.0.1.5"],
                    "ipv6": ["fd00::5"]
                },
                "tenant": {
                    "vni": 4242,
                    "local_mac": "02:00:00:00:00:10",
                    "local_ip": "192.168.0.10"
                },
                "vteps": [
                    {"index": 3, "mac": "02:00:00:00:00:11", "ip": "192.168.0.11"}
                ],
                "meters": [
                    {"index": 0, "rate": 125000000, "burst": 1250000, "unit": "bytes"},
                    {"index": 7, "rate": 1000, "burst": 10, "unit": "packets"}
                ],
                "flows": [
                    {
                        "priority": 100,
                        "action": {"encap": {"vtep": 3}},
                        "meter": 0,
                        "match": {
                            "in_port": 0,
                            "ethertype": 2048,
                            "vlan_tci": 4101,
                            "ip_proto": 6,
                            "eth_src": {"mac": "02:00:00:aa:bb:01", "mask": "ff:ff:ff:ff:ff:ff"},
                            "eth_dst": {"mac": "02:00:00:00:00:00", "mask": "ff:ff:ff:00:00:00"},
                            "ip_src": "10.0.0.5/32",
                            "ip_dst": "10.0.2.0/24",
                            "l4_src": 40000,
                            "l4_dst": 443
                        }
                    },
                    {"priority": 0, "action": "drop", "match": {}}
                ],
                "policy": {"miss": "allow"}
            })
        );
        // Without a tenant and an unreported policy: explicit nulls.
        assert_eq!(
            json_of(&NicConfig::default()),
            json!({
                "identity": {"mac": "00:00:00:00:00:00", "mtu_cap": 0, "ipv4": [], "ipv6": []},
                "tenant": null,
                "vteps": [],
                "meters": [],
                "flows": [],
                "policy": null
            })
        );
    }

    #[test]
    fn json_defaults_and_leniency() {
        // Lists, tenant and policy may be left out; an exact MAC match
        // needs no mask; MACs parse in either case; a bare address is /32.
        let cfg: NicConfig = serde_json::from_value(json!({
            "identity": {"mac": "02:00:00:AA:BB:01", "mtu_cap": 1500},
            "flows": [{
                "priority": 1,
                "action": "allow",
                "match": {"eth_src": {"mac": "02:00:00:aa:bb:01"}, "ip_dst": "10.0.0.1"}
            }]
        }))
        .expect("parses");
        assert_eq!(cfg.identity.mac, GUEST);
        assert_eq!(cfg.tenant, None);
        assert_eq!(cfg.policy, None);
        let m = cfg.flows[0].matching;
        assert_eq!(m.eth_src, Some((GUEST, [0xff; 6])));
        assert_eq!(
            m.ip_dst,
            Some(IpPrefix {
                addr: [10, 0, 0, 1],
                len: 32
            })
        );
    }

    #[test]
    fn json_rejects_what_it_cannot_apply_faithfully() {
        let base = json_of(&full());
        let bad = |path: &[&str], v: serde_json::Value| {
            let mut doc = base.clone();
            let mut at = &mut doc;
            for p in &path[..path.len() - 1] {
                at = match p.parse::<usize>() {
                    Ok(i) => &mut at[i],
                    Err(_) => &mut at[*p],
                };
            }
            at[path[path.len() - 1]] = v;
            serde_json::from_value::<NicConfig>(doc).is_err()
        };
        assert!(!bad(&["identity", "mac"], json!("02:00:00:aa:bb:02")));
        assert!(bad(&["identity", "mac"], json!("02:00:00:aa:bb")));
        assert!(bad(&["identity", "mac"], json!("02:00:00:aa:bb:01:02")));
        assert!(bad(&["identity", "mac"], json!("+2:00:00:aa:bb:01")));
        assert!(bad(&["identity", "mac"], json!("2:00:00:aa:bb:01")));
        assert!(bad(&["identity", "ipv4"], json!(["10.0.0.256"])));
        assert!(bad(&["identity", "ipv6"], json!(["fd00::g"])));
        assert!(bad(&["meters", "0", "unit"], json!("bits")));
        assert!(bad(
            &["flows", "0", "match", "ip_dst"],
            json!("10.0.2.0/33")
        ));
        assert!(bad(&["flows", "0", "match", "ip_dst"], json!("fd00::/64")));
        assert!(bad(&["flows", "0", "action"], json!("encap")));
        // A field this daemon does not know (a newer format, a typo) would
        // be dropped on apply: refused instead.
        assert!(bad(&["flows", "0", "match", "tcp_flags"], json!(2)));
        assert!(bad(&["identity", "mtu"], json!(1500)));
        assert!(bad(&["quarantined"], json!(true)));
    }

    /// A module with a tenant, set up as the agent and the provisioning do.
    fn provisioned() -> MemoryRme {
        let mut nic = MemoryRme::new(16);
        nic.nic_config_apply(&full()).expect("applies");
        nic.hit(1, 10, 1000);
        nic
    }

    #[test]
    fn memory_capture_reset_apply_round_trip() {
        let mut nic = provisioned();
        let captured = nic.nic_config().expect("captures");
        assert_eq!(captured, full());

        let ended = nic.tenant_reset().expect("resets");
        assert_eq!((ended.flows, ended.packets), (2, 10));
        // What a reset module holds: the MTU cap and the policy stay.
        let blank = nic.nic_config().expect("captures");
        assert_eq!(
            blank,
            NicConfig {
                identity: IdentityConfig {
                    mtu_cap: 9000,
                    ..Default::default()
                },
                policy: captured.policy,
                ..Default::default()
            }
        );

        // Through JSON, as a checkpoint would go; the rules keep their
        // order (new ids) and lose their counters.
        let text = serde_json::to_string(&captured).expect("serializes");
        let restored: NicConfig = serde_json::from_str(&text).expect("parses");
        nic.nic_config_apply(&restored).expect("applies");
        assert_eq!(nic.nic_config().ok(), Some(captured.clone()));
        assert!(nic.rules.values().all(|r| (r.1, r.2) == (0, 0)));

        // On another server's module, shared with another thread.
        let mut other = std::sync::Arc::new(std::sync::Mutex::new(MemoryRme::new(4)));
        other.nic_config_apply(&captured).expect("applies");
        assert_eq!(other.nic_config().ok(), Some(captured));
    }

    #[test]
    fn memory_tenant_without_vni_is_a_tenant() {
        // Provisioning sets the local VTEP with VNI 0; the controller's
        // VNI comes later.
        let mut nic = MemoryRme::new(4);
        nic.local_vtep = Some(([0x02, 0, 0, 0, 0, 0x10], Ipv4Addr::new(192, 168, 0, 10)));
        let cfg = nic.nic_config().expect("captures");
        assert_eq!(cfg.tenant.map(|t| t.vni), Some(0));
        nic.tenant_reset().expect("resets");
        assert_eq!(nic.nic_config().ok().and_then(|c| c.tenant), None);
        nic.nic_config_apply(&cfg).expect("applies");
        assert_eq!(nic.nic_config().ok(), Some(cfg));
    }

    #[test]
    fn apply_refuses_dangling_references_before_touching_the_nic() {
        let mut cfg = full();
        cfg.flows[1].action = FlowAction::Encap { vtep: 9 };
        let mut nic = MemoryRme::new(16);
        let before = nic.nic_config().expect("captures");
        let e = nic.nic_config_apply(&cfg).expect_err("refused");
        assert_eq!(e.errno, errno::EINVAL);
        assert_eq!(
            e.message.as_deref(),
            Some("flow 2 of 2: encapsulates toward vtep 9, which the config does not set")
        );
        assert_eq!(nic.nic_config().ok(), Some(before.clone()));

        let mut cfg = full();
        cfg.flows[0].meter = Some(5);
        let e = nic.nic_config_apply(&cfg).expect_err("refused");
        assert_eq!(
            e.message.as_deref(),
            Some("flow 1 of 2: meter 5, which the config does not set")
        );
        assert_eq!(nic.nic_config().ok(), Some(before));
    }

    #[test]
    fn validate_refuses_what_the_module_would_refuse() {
        let refused = |f: &dyn Fn(&mut NicConfig)| {
            let mut cfg = full();
            f(&mut cfg);
            cfg.validate().err().and_then(|e| e.message)
        };
        assert_eq!(refused(&|_| ()), None);
        assert!(refused(&|c| c.identity.mtu_cap = 67).is_some());
        assert!(refused(&|c| c.identity.ipv4 = vec![Ipv4Addr::LOCALHOST; 5]).is_some());
        assert!(refused(&|c| c.identity.ipv6 = vec![Ipv6Addr::LOCALHOST; 5]).is_some());
        assert!(refused(&|c| {
            if let Some(t) = &mut c.tenant {
                t.vni = 0x100_0000;
            }
        })
        .is_some());
        assert_eq!(
            refused(&|c| c.vteps.push(c.vteps[0])).as_deref(),
            Some("vtep 3 is set twice")
        );
        assert_eq!(
            refused(&|c| c.meters.push(c.meters[1])).as_deref(),
            Some("meter 7 is set twice")
        );
    }

    #[test]
    fn apply_names_the_step_that_failed() {
        // Room for one rule: the second fails, after the first applied.
        let mut nic = MemoryRme::new(1);
        let e = nic.nic_config_apply(&full()).expect_err("table full");
        assert_eq!(e.errno, errno::ENOSPC);
        assert_eq!(
            e.message.as_deref(),
            Some("flow 2 of 2: software table full")
        );
        assert!(e.to_string().ends_with("flow 2 of 2: software table full"));
        let partial = nic.nic_config().expect("captures");
        assert_eq!(partial.flows, full().flows[..1]);
        assert_eq!(partial.policy, Some(PolicyConfig::default()));
    }

    #[test]
    fn apply_refuses_a_nic_with_a_tenant() {
        let mut nic = provisioned();
        let e = nic.nic_config_apply(&full()).expect_err("busy");
        assert_eq!(e.errno, errno::EBUSY);
        assert_eq!(
            e.message.as_deref(),
            Some(
                "the NIC holds flows (2), a tenant, vteps (1), meters (2), guest addresses: \
                 reset its tenant first"
            )
        );
        assert_eq!(nic.rules.len(), 2);
    }
}
