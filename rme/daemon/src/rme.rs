// SPDX-License-Identifier: GPL-2.0

//! What the daemon asks of the `bmgnic_rme` module, in the module's terms:
//! flows, meters, the device's state and its events. [`Rme`] is the trait
//! the OpenFlow agent drives; [`crate::nl::Netlink`] implements it over the
//! `bmgnic` generic netlink family, tests with an in-memory table.

use bmgnic_wire::ncsi_oem::{ACTION_ALLOW, ACTION_DROP, ACTION_ENCAP};
use std::collections::BTreeMap;
use std::fmt;

/// What the module's flow rule does with a matching packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    pub addr: [u8; 4],
    pub len: u8,
}

/// A rule's match; `None` fields are wildcards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowMatch {
    /// 0: from the guest (host port), 1: from the fabric.
    pub in_port: Option<u8>,
    pub ethertype: Option<u16>,
    pub vlan_tci: Option<u16>,
    pub ip_proto: Option<u8>,
    /// Address and mask.
    pub eth_src: Option<([u8; 6], [u8; 6])>,
    pub eth_dst: Option<([u8; 6], [u8; 6])>,
    pub ip_src: Option<IpPrefix>,
    pub ip_dst: Option<IpPrefix>,
    pub l4_src: Option<u16>,
    pub l4_dst: Option<u16>,
}

/// A rule of the module's software table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowSpec {
    pub priority: u16,
    pub action: FlowAction,
    pub meter: Option<u8>,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeterSpec {
    pub index: u8,
    /// Bytes (or packets) per second.
    pub rate: u64,
    /// Bucket depth in bytes (or packets).
    pub burst: u32,
    /// The rate and burst count packets, not bytes.
    pub packets: bool,
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DevState {
    pub guest_mac: [u8; 6],
    pub quarantined: bool,
    pub counters: DevCounters,
    pub nic_flow_slots: u32,
    pub sw_flows: u32,
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
    pub const EINVAL: i32 = 22;
    pub const ENOSPC: i32 = 28;
    pub const EOPNOTSUPP: i32 = 95;
}

/// The module, as the agent uses it.
pub trait Rme {
    fn flow_add(&mut self, spec: &FlowSpec) -> Result<u32, RmeError>;
    /// Removes a rule; returns its final (packets, bytes).
    fn flow_del(&mut self, id: u32) -> Result<(u64, u64), RmeError>;
    fn flow_dump(&mut self) -> Result<Vec<FlowInfo>, RmeError>;
    fn meter_set(&mut self, meter: &MeterSpec) -> Result<(), RmeError>;
    fn dev_get(&mut self) -> Result<DevState, RmeError>;
    /// Sets the tenant's VNI, keeping its local VTEP.
    fn tenant_vni_set(&mut self, vni: u32) -> Result<(), RmeError>;
    /// Ends the tenancy: the NIC keeps nothing of it (rules, VTEPs,
    /// meters, identity, tenant); returns what it was billed.
    fn tenant_reset(&mut self) -> Result<Tenancy, RmeError>;
}

/// The module's table, meters and device state, in memory: for tests,
/// and for running the agent without a NIC.
#[derive(Default)]
pub struct MemoryRme {
    next: u32,
    /// Rules by id, with their (packets, bytes).
    pub rules: BTreeMap<u32, (FlowSpec, u64, u64)>,
    pub meters: BTreeMap<u8, MeterSpec>,
    capacity: usize,
    pub dev: DevState,
    pub vni: Option<u32>,
}

impl MemoryRme {
    /// An empty module whose software table holds `capacity` rules.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ..Default::default()
        }
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
        if self.rules.len() >= self.capacity {
            return Err(RmeError::new(errno::ENOSPC, "software table full"));
        }
        self.next += 1;
        self.rules.insert(self.next, (*spec, 0, 0));
        Ok(self.next)
    }

    fn flow_del(&mut self, id: u32) -> Result<(u64, u64), RmeError> {
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
        self.vni = None;
        self.dev.guest_mac = [0; 6];
        Ok(ended)
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
}
