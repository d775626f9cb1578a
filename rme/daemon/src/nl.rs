// SPDX-License-Identifier: GPL-2.0

//! The `bmgnic` generic netlink family, spoken with neli: requests to the
//! module ([`Rme`]) and its `events` multicast group.
//!
//! The numbers come from the wire crate (`bmgnic_wire::genl`), which the
//! module serves and `make check` checks against the family's YAML spec.

use crate::rme::{
    apply_nic_config, apply_provisioning, errno, DevCounters, DevState, FlowAction, FlowInfo,
    FlowMatch, FlowSpec, IdentityConfig, IpPrefix, MeterCounters, MeterSpec, MissPolicy, NicConfig,
    NicConfigSteps, PolicyConfig, Provisioning, Rme, RmeError, RmeEvent, Tenancy, TenantConfig,
    VtepConfig,
};
use bmgnic_wire::genl::{
    attr, cmd, event_kind, meter_unit, FAMILY_NAME, FAMILY_VERSION, MCGRP_EVENTS,
};
use bmgnic_wire::ncsi_oem::{ACTION_ALLOW, ACTION_DROP, ACTION_ENCAP, MISS_ALLOW, MISS_DROP};
use neli::{
    consts::{
        genl::{CtrlAttr, CtrlCmd},
        nl::{GenlId, NlmF},
        socket::NlFamily,
    },
    genl::{AttrTypeBuilder, Genlmsghdr, GenlmsghdrBuilder, Nlattr, NlattrBuilder, NoUserHeader},
    nl::{NlPayload, Nlmsghdr, NlmsghdrBuilder},
    router::synchronous::{NlRouter, NlRouterReceiverHandle},
    socket::synchronous::NlSocketHandle,
    types::{Buffer, GenlBuffer},
    utils::Groups,
};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

type Msg = Genlmsghdr<u8, u16>;
type Attrs = GenlBuffer<u16, Buffer>;
type Handle<'a> = neli::attr::AttrHandle<'a, Attrs, Nlattr<u16, Buffer>>;

/// The `bmgnic` family on a netlink socket.
///
/// Each request is sent and its answer read on the calling thread, one
/// request at a time. A netlink socket that another thread reads while
/// this one starts a dump loses the race in the kernel: the reader's
/// `recvmsg` takes the dump's only message, sees the dump still running
/// and asks for more, the dump ends on the sender's side in between, and
/// the reader's continuation finds no dump and sets the socket's error
/// (EINVAL). The request had succeeded and is reported failed. neli's
/// router reads on a thread of its own, so it only resolves the family.
///
/// A module unloaded and loaded again registers the family under a new id;
/// the old id answers ENOENT. A request that meets that looks the family
/// up again: with [`Netlink::resend_after_reload`] it goes to the new
/// module, otherwise it fails with ESTALE and [`Rme::take_reload`] says
/// so, for an owner of rules that must install them again first.
pub struct Netlink {
    socket: Mutex<NlSocketHandle>,
    family: AtomicU16,
    seq: AtomicU32,
    reloaded: AtomicBool,
    resend: bool,
}

/// The `events` group's notifications, and nlctrl's, which say when the
/// module comes back (its group has to be joined again).
pub struct Events {
    /// Owns the socket and the thread that feeds `receiver`.
    router: NlRouter,
    receiver: NlRouterReceiverHandle<u16, Msg>,
}

fn family_name() -> &'static str {
    // FAMILY_NAME is NUL-terminated for the kernel.
    std::str::from_utf8(&FAMILY_NAME[..FAMILY_NAME.len() - 1]).unwrap_or("bmgnic")
}

/// The kernel's answer `error` (negative errno) with its extack message.
fn nlmsgerr(error: i32, ext_ack: &GenlBuffer<neli::consts::nl::NlmsgerrAttr, Buffer>) -> RmeError {
    let message = ext_ack.iter().find_map(|a| {
        // NLMSGERR_ATTR_MSG.
        (u16::from(a.nla_type().nla_type()) == 1).then(|| {
            String::from_utf8_lossy(a.nla_payload().as_ref())
                .trim_end_matches('\0')
                .to_string()
        })
    });
    RmeError {
        errno: -error,
        message,
    }
}

fn socket_error(e: impl std::fmt::Display) -> RmeError {
    RmeError::new(5, format!("netlink: {e}"))
}

fn build_err(e: impl std::fmt::Display) -> RmeError {
    RmeError::new(22, format!("netlink message: {e}"))
}

fn nla(kind: u16, payload: Vec<u8>) -> Result<Nlattr<u16, Buffer>, RmeError> {
    NlattrBuilder::default()
        .nla_type(
            AttrTypeBuilder::default()
                .nla_type(kind)
                .build()
                .map_err(build_err)?,
        )
        .nla_payload(Buffer::from(payload))
        .build()
        .map_err(build_err)
}

fn nest(kind: u16, children: Vec<Nlattr<u16, Buffer>>) -> Result<Nlattr<u16, Buffer>, RmeError> {
    let mut parent = NlattrBuilder::default()
        .nla_type(
            AttrTypeBuilder::default()
                .nla_type(kind)
                .nla_nested(true)
                .build()
                .map_err(build_err)?,
        )
        .nla_payload(Buffer::from(Vec::new()))
        .build()
        .map_err(build_err)?;
    for c in &children {
        parent = parent.nest(c).map_err(build_err)?;
    }
    Ok(parent)
}

fn match_attrs(m: &FlowMatch) -> Result<Vec<Nlattr<u16, Buffer>>, RmeError> {
    use attr::matches as a;
    let mut out = Vec::new();
    if let Some(p) = m.in_port {
        out.push(nla(a::IN_PORT, vec![p])?);
    }
    if let Some(t) = m.ethertype {
        out.push(nla(a::ETHERTYPE, t.to_be_bytes().to_vec())?);
    }
    if let Some(t) = m.vlan_tci {
        out.push(nla(a::VLAN_TCI, t.to_be_bytes().to_vec())?);
    }
    if let Some(p) = m.ip_proto {
        out.push(nla(a::IP_PROTO, vec![p])?);
    }
    if let Some((mac, mask)) = m.eth_src {
        out.push(nla(a::ETH_SRC, mac.to_vec())?);
        out.push(nla(a::ETH_SRC_MASK, mask.to_vec())?);
    }
    if let Some((mac, mask)) = m.eth_dst {
        out.push(nla(a::ETH_DST, mac.to_vec())?);
        out.push(nla(a::ETH_DST_MASK, mask.to_vec())?);
    }
    if let Some(p) = m.ip_src {
        out.push(nla(a::IP_SRC, p.addr.to_vec())?);
        out.push(nla(a::IP_SRC_PREFIX, vec![p.len])?);
    }
    if let Some(p) = m.ip_dst {
        out.push(nla(a::IP_DST, p.addr.to_vec())?);
        out.push(nla(a::IP_DST_PREFIX, vec![p.len])?);
    }
    if let Some(p) = m.l4_src {
        out.push(nla(a::L4_SRC, p.to_ne_bytes().to_vec())?);
    }
    if let Some(p) = m.l4_dst {
        out.push(nla(a::L4_DST, p.to_ne_bytes().to_vec())?);
    }
    Ok(out)
}

/// flow-add's attributes for `spec`.
fn flow_attrs(spec: &FlowSpec) -> Result<Vec<Nlattr<u16, Buffer>>, RmeError> {
    use attr::flow as a;
    let mut attrs = vec![
        nla(a::PRIORITY, spec.priority.to_ne_bytes().to_vec())?,
        nla(a::ACTION, vec![spec.action.to_attr()])?,
    ];
    if let Some(m) = spec.meter {
        attrs.push(nla(a::METER, u16::from(m).to_ne_bytes().to_vec())?);
    }
    if let FlowAction::Encap { vtep } = spec.action {
        attrs.push(nla(a::VTEP, u16::from(vtep).to_ne_bytes().to_vec())?);
    }
    attrs.push(nest(a::MATCH, match_attrs(&spec.matching)?)?);
    Ok(attrs)
}

fn raw<'a>(h: &'a Handle<'a>, kind: u16) -> Option<&'a [u8]> {
    h.get_attribute(kind).map(|a| a.nla_payload().as_ref())
}

fn u8_of(h: &Handle<'_>, kind: u16) -> Option<u8> {
    raw(h, kind).and_then(|b| b.first().copied())
}

fn u16_ne(h: &Handle<'_>, kind: u16) -> Option<u16> {
    raw(h, kind).and_then(|b| b.first_chunk().map(|b| u16::from_ne_bytes(*b)))
}

fn u16_be(h: &Handle<'_>, kind: u16) -> Option<u16> {
    raw(h, kind).and_then(|b| b.first_chunk().map(|b| u16::from_be_bytes(*b)))
}

fn u32_ne(h: &Handle<'_>, kind: u16) -> Option<u32> {
    raw(h, kind).and_then(|b| b.first_chunk().map(|b| u32::from_ne_bytes(*b)))
}

fn u64_ne(h: &Handle<'_>, kind: u16) -> Option<u64> {
    raw(h, kind).and_then(|b| b.first_chunk().map(|b| u64::from_ne_bytes(*b)))
}

fn mac(h: &Handle<'_>, kind: u16) -> Option<[u8; 6]> {
    raw(h, kind).and_then(|b| b.first_chunk().copied())
}

fn prefix(h: &Handle<'_>, addr: u16, len: u16) -> Option<IpPrefix> {
    let a: [u8; 4] = raw(h, addr).and_then(|b| b.first_chunk().copied())?;
    Some(IpPrefix {
        addr: a,
        len: u8_of(h, len).unwrap_or(32),
    })
}

fn parse_match(h: &Handle<'_>) -> FlowMatch {
    use attr::matches as a;
    FlowMatch {
        in_port: u8_of(h, a::IN_PORT),
        ethertype: u16_be(h, a::ETHERTYPE),
        vlan_tci: u16_be(h, a::VLAN_TCI),
        ip_proto: u8_of(h, a::IP_PROTO),
        eth_src: mac(h, a::ETH_SRC).map(|m| (m, mac(h, a::ETH_SRC_MASK).unwrap_or([0xff; 6]))),
        eth_dst: mac(h, a::ETH_DST).map(|m| (m, mac(h, a::ETH_DST_MASK).unwrap_or([0xff; 6]))),
        ip_src: prefix(h, a::IP_SRC, a::IP_SRC_PREFIX),
        ip_dst: prefix(h, a::IP_DST, a::IP_DST_PREFIX),
        l4_src: u16_ne(h, a::L4_SRC),
        l4_dst: u16_ne(h, a::L4_DST),
    }
}

fn nested<'a>(h: &'a Handle<'a>, kind: u16) -> Option<Handle<'a>> {
    h.get_nested_attributes::<u16>(kind).ok()
}

/// The module's `counters` nest.
fn dev_counters(c: &Handle<'_>) -> DevCounters {
    use attr::counters as k;
    DevCounters {
        tx_packets: u64_ne(c, k::TX_PACKETS).unwrap_or(0),
        tx_bytes: u64_ne(c, k::TX_BYTES).unwrap_or(0),
        rx_packets: u64_ne(c, k::RX_PACKETS).unwrap_or(0),
        rx_bytes: u64_ne(c, k::RX_BYTES).unwrap_or(0),
        drops: 0,
        table_misses: u64_ne(c, k::TABLE_MISSES).unwrap_or(0),
    }
}

fn parse_flow(h: &Handle<'_>) -> Option<FlowInfo> {
    use attr::flow as a;
    let action = match u8_of(h, a::ACTION)? {
        ACTION_DROP => FlowAction::Drop,
        ACTION_ALLOW => FlowAction::Allow,
        _ => FlowAction::Encap {
            vtep: u16_ne(h, a::VTEP).unwrap_or(0) as u8,
        },
    };
    Some(FlowInfo {
        id: u32_ne(h, a::ID)?,
        spec: FlowSpec {
            priority: u16_ne(h, a::PRIORITY).unwrap_or(0),
            action,
            meter: u16_ne(h, a::METER).map(|m| m as u8),
            matching: nested(h, a::MATCH)
                .map(|m| parse_match(&m))
                .unwrap_or_default(),
        },
        packets: u64_ne(h, a::PACKETS).unwrap_or(0),
        bytes: u64_ne(h, a::BYTES).unwrap_or(0),
    })
}

/// The payloads of every `kind` attribute (multi-attr).
fn all_raw<'a>(h: &'a Handle<'a>, kind: u16) -> impl Iterator<Item = &'a [u8]> {
    h.iter()
        .filter(move |a| *a.nla_type().nla_type() == kind)
        .map(|a| a.nla_payload().as_ref())
}

/// A reply the configuration cannot be read from: the module and this
/// daemon disagree on the family.
fn garbled(what: impl std::fmt::Display) -> RmeError {
    RmeError::new(errno::EIO, what.to_string())
}

/// The payload of a `kind` attribute the module always sends, exactly `N`
/// bytes long.
fn exact<const N: usize>(h: &Handle<'_>, kind: u16, what: &str) -> Result<[u8; N], RmeError> {
    raw(h, kind)
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .ok_or_else(|| garbled(format!("{what}: missing or not {N} bytes")))
}

/// A nest that must be readable if present: read as absent, a garbled
/// one would drop part of the configuration.
fn nest_of<'a>(h: &'a Handle<'a>, kind: u16, what: &str) -> Result<Option<Handle<'a>>, RmeError> {
    match nested(h, kind) {
        Some(n) => Ok(Some(n)),
        None if h.get_attribute(kind).is_some() => Err(garbled(format!("{what}: unreadable"))),
        None => Ok(None),
    }
}

/// An index (u16 on the wire) of one of the NIC's 256 VTEPs or meters.
fn index_u8(h: &Handle<'_>, kind: u16, what: &str) -> Result<u8, RmeError> {
    u16_ne(h, kind)
        .and_then(|i| u8::try_from(i).ok())
        .ok_or_else(|| garbled(format!("{what}: missing or out of range")))
}

/// dev-get's `identity` nest.
fn identity_config(h: &Handle<'_>) -> Result<IdentityConfig, RmeError> {
    use attr::identity as a;
    let mut ipv4 = Vec::new();
    for b in all_raw(h, a::IPV4) {
        let b = <[u8; 4]>::try_from(b).map_err(|_| garbled("identity: IPv4 not 4 bytes"))?;
        ipv4.push(Ipv4Addr::from(b));
    }
    let mut ipv6 = Vec::new();
    for b in all_raw(h, a::IPV6) {
        let b = <[u8; 16]>::try_from(b).map_err(|_| garbled("identity: IPv6 not 16 bytes"))?;
        ipv6.push(Ipv6Addr::from(b));
    }
    Ok(IdentityConfig {
        mac: exact(h, a::MAC, "identity mac")?,
        mtu_cap: u32::from_ne_bytes(exact(h, a::MTU_CAP, "identity mtu-cap")?),
        ipv4,
        ipv6,
    })
}

/// dev-get's `tenant` nest; the module sends a zeroed one without a
/// tenant, which is `None`.
fn tenant_config(h: &Handle<'_>) -> Result<Option<TenantConfig>, RmeError> {
    use attr::tenant as a;
    let t = TenantConfig {
        vni: u32::from_ne_bytes(exact(h, a::VNI, "tenant vni")?),
        local_mac: exact(h, a::LOCAL_MAC, "tenant local-mac")?,
        local_ip: Ipv4Addr::from(exact::<4>(h, a::LOCAL_IP, "tenant local-ip")?),
    };
    Ok((!t.is_unset()).then_some(t))
}

/// dev-get's `policy` nest: its miss policy, if reported.
fn policy_config(h: &Handle<'_>) -> Result<Option<PolicyConfig>, RmeError> {
    let miss = match u8_of(h, attr::policy::MISS_POLICY) {
        None => return Ok(None),
        Some(MISS_DROP) => MissPolicy::Drop,
        Some(MISS_ALLOW) => MissPolicy::Allow,
        Some(v) => return Err(garbled(format!("policy: unknown miss policy {v}"))),
    };
    Ok(Some(PolicyConfig { miss }))
}

/// A vtep-get dump message.
fn vtep_config(h: &Handle<'_>) -> Result<VtepConfig, RmeError> {
    use attr::vtep as a;
    let index = index_u8(h, a::INDEX, "vtep index")?;
    let what = format!("vtep {index}");
    Ok(VtepConfig {
        index,
        mac: exact(h, a::MAC, &what)?,
        ip: Ipv4Addr::from(exact::<4>(h, a::IP, &what)?),
    })
}

/// A meter-get dump message.
fn meter_config(h: &Handle<'_>) -> Result<MeterSpec, RmeError> {
    use attr::meter as a;
    let index = index_u8(h, a::INDEX, "meter index")?;
    let what = format!("meter {index}");
    let packets = match u8_of(h, a::UNIT) {
        // Bytes when absent, as the family says.
        None | Some(meter_unit::BYTES) => false,
        Some(meter_unit::PACKETS) => true,
        Some(u) => return Err(garbled(format!("{what}: unknown unit {u}"))),
    };
    Ok(MeterSpec {
        index,
        rate: u64::from_ne_bytes(exact(h, a::RATE, &what)?),
        burst: u32::from_ne_bytes(exact(h, a::BURST, &what)?),
        packets,
    })
}

/// A meter-get dump message's index and counters; a meter set after the
/// module's last read of the NIC has none yet (zero).
fn meter_counts(h: &Handle<'_>) -> Result<(u8, MeterCounters), RmeError> {
    use attr::meter as a;
    let index = index_u8(h, a::INDEX, "meter index")?;
    let count = |kind| u64_ne(h, kind).unwrap_or(0);
    Ok((
        index,
        MeterCounters {
            passed_packets: count(a::PASSED_PACKETS),
            passed_bytes: count(a::PASSED_BYTES),
            dropped_packets: count(a::DROPPED_PACKETS),
            dropped_bytes: count(a::DROPPED_BYTES),
        },
    ))
}

/// A flow-get dump message, refused rather than read approximately where
/// [`parse_flow`] (enough for the agent) would lose part of the rule:
/// re-applying it would make a different rule.
fn flow_config(h: &Handle<'_>) -> Result<FlowSpec, RmeError> {
    use attr::{flow as a, matches as m};
    let id = u32_ne(h, a::ID).ok_or_else(|| garbled("flow without an id"))?;
    let what = format!("flow {id}");
    match u8_of(h, a::ACTION) {
        Some(ACTION_DROP | ACTION_ALLOW) => {}
        Some(ACTION_ENCAP) => {
            index_u8(h, a::VTEP, &format!("{what} vtep"))?;
        }
        _ => return Err(garbled(format!("{what}: missing or unknown action"))),
    }
    if h.get_attribute(a::METER).is_some() {
        index_u8(h, a::METER, &format!("{what} meter"))?;
    }
    if let Some(mh) = nest_of(h, a::MATCH, &format!("{what} match"))? {
        for attr in mh.iter() {
            let kind = *attr.nla_type().nla_type();
            let len = attr.nla_payload().as_ref().len();
            let want = match kind {
                m::IN_PORT | m::IP_PROTO | m::IP_SRC_PREFIX | m::IP_DST_PREFIX => 1,
                m::ETHERTYPE | m::VLAN_TCI | m::L4_SRC | m::L4_DST => 2,
                m::ETH_SRC | m::ETH_SRC_MASK | m::ETH_DST | m::ETH_DST_MASK => 6,
                m::IP_SRC | m::IP_DST if len == 16 => {
                    return Err(RmeError::new(
                        errno::EOPNOTSUPP,
                        format!(
                            "{what} matches IPv6 addresses, which the daemon's flows cannot hold"
                        ),
                    ))
                }
                m::IP_SRC | m::IP_DST => 4,
                _ => {
                    return Err(RmeError::new(
                        errno::EOPNOTSUPP,
                        format!("{what} matches on attribute {kind}, unknown to the daemon"),
                    ))
                }
            };
            if len != want {
                return Err(garbled(format!(
                    "{what}: match attribute {kind} of {len} bytes"
                )));
            }
        }
    }
    parse_flow(h)
        .map(|f| f.spec)
        .ok_or_else(|| garbled(format!("{what}: unreadable")))
}

/// The family's id now, on a router of its own (nothing else reads it).
fn resolve_family() -> Result<u16, RmeError> {
    let (router, _) = NlRouter::connect(NlFamily::Generic, None, Groups::empty())
        .map_err(|e| RmeError::new(errno::EIO, format!("netlink socket: {e}")))?;
    router.resolve_genl_family(family_name()).map_err(|_| {
        RmeError::new(
            errno::ENODEV,
            "no bmgnic generic netlink family: is bmgnic_rme loaded?",
        )
    })
}

/// Joins the module's `events` group on `router`.
fn join_events(router: &NlRouter) -> Result<(), RmeError> {
    let group = router
        .resolve_nl_mcast_group(family_name(), MCGRP_EVENTS.to_str().unwrap_or("events"))
        .map_err(|e| RmeError::new(errno::ENODEV, format!("bmgnic events group: {e}")))?;
    router
        .add_mcast_membership(Groups::new_groups(&[group]))
        .map_err(|e| RmeError::new(errno::EIO, format!("joining the events group: {e}")))
}

impl Netlink {
    /// Opens a socket and resolves the family; fails with a clear message
    /// when `bmgnic_rme` is not loaded.
    pub fn open() -> Result<Netlink, RmeError> {
        let family = resolve_family()?;
        let socket = NlSocketHandle::connect(NlFamily::Generic, None, Groups::empty())
            .map_err(|e| RmeError::new(errno::EIO, format!("netlink socket: {e}")))?;
        socket
            .enable_ext_ack(true)
            .map_err(|e| RmeError::new(errno::EIO, format!("netlink extack: {e}")))?;
        Ok(Netlink {
            socket: Mutex::new(socket),
            family: AtomicU16::new(family),
            seq: AtomicU32::new(1),
            reloaded: AtomicBool::new(false),
            resend: false,
        })
    }

    /// A request that meets a reloaded module is sent again to the new
    /// one: for a user that names none of the module's rules by id.
    pub fn resend_after_reload(mut self) -> Self {
        self.resend = true;
        self
    }

    /// Looks the family up again; true when its id changed, that is, the
    /// module was unloaded and loaded again.
    fn refresh_family(&self) -> Result<bool, RmeError> {
        let id = resolve_family()?;
        let old = self.family.swap(id, Ordering::Relaxed);
        if old == id {
            return Ok(false);
        }
        log::warn!("bmgnic_rme was reloaded (family id {old} -> {id})");
        self.reloaded.store(true, Ordering::Relaxed);
        Ok(true)
    }

    /// Subscribes to the module's `events` group on a socket of its own,
    /// and to nlctrl's notifications, which announce a reloaded module.
    pub fn events() -> Result<Events, RmeError> {
        let (router, receiver) = NlRouter::connect(NlFamily::Generic, None, Groups::empty())
            .map_err(|e| RmeError::new(errno::EIO, format!("netlink socket: {e}")))?;
        let ctrl = router
            .resolve_nl_mcast_group("nlctrl", "notify")
            .map_err(|e| RmeError::new(errno::EIO, format!("nlctrl notify group: {e}")))?;
        router
            .add_mcast_membership(Groups::new_groups(&[ctrl]))
            .map_err(|e| RmeError::new(errno::EIO, format!("joining nlctrl's group: {e}")))?;
        join_events(&router)?;
        Ok(Events { router, receiver })
    }

    /// Sets the guest's identity (the anti-spoofing the NIC enforces
    /// before any flow): its MAC, MTU cap and IPv4 addresses.
    pub fn identity_set(
        &self,
        mac: [u8; 6],
        mtu_cap: u32,
        ipv4: &[[u8; 4]],
    ) -> Result<(), RmeError> {
        self.identity_request(mac, Some(mtu_cap), ipv4, &[])
    }

    /// identity-set: without `mtu_cap` the module keeps its own; without
    /// addresses, its addresses.
    fn identity_request(
        &self,
        mac: [u8; 6],
        mtu_cap: Option<u32>,
        ipv4: &[[u8; 4]],
        ipv6: &[[u8; 16]],
    ) -> Result<(), RmeError> {
        use attr::identity as a;
        let mut attrs = vec![nla(a::MAC, mac.to_vec())?];
        if let Some(cap) = mtu_cap {
            attrs.push(nla(a::MTU_CAP, cap.to_ne_bytes().to_vec())?);
        }
        for ip in ipv4 {
            attrs.push(nla(a::IPV4, ip.to_vec())?);
        }
        for ip in ipv6 {
            attrs.push(nla(a::IPV6, ip.to_vec())?);
        }
        let nest = nest(attr::dev::IDENTITY, attrs)?;
        self.request(cmd::IDENTITY_SET, NlmF::ACK, vec![nest])
            .map(|_| ())
    }

    /// A dump of `command`, each message read with `parse`.
    fn dump<T>(
        &self,
        command: u8,
        parse: impl Fn(&Handle<'_>) -> Result<T, RmeError>,
    ) -> Result<Vec<T>, RmeError> {
        let replies = self.request(command, NlmF::DUMP | NlmF::ACK, Vec::new())?;
        replies
            .iter()
            .map(|m| parse(&m.attrs().get_attr_handle()))
            .collect()
    }

    /// Sets the tenant's VNI and this server's VTEP.
    pub fn tenant_set(
        &self,
        vni: u32,
        local_mac: [u8; 6],
        local_ip: [u8; 4],
    ) -> Result<(), RmeError> {
        use attr::tenant as t;
        let nest = nest(
            attr::dev::TENANT,
            vec![
                nla(t::VNI, vni.to_ne_bytes().to_vec())?,
                nla(t::LOCAL_MAC, local_mac.to_vec())?,
                nla(t::LOCAL_IP, local_ip.to_vec())?,
            ],
        )?;
        self.request(cmd::TENANT_SET, NlmF::ACK, vec![nest])
            .map(|_| ())
    }

    /// Sets remote VTEP `index`.
    pub fn vtep_set(&self, index: u8, mac: [u8; 6], ip: [u8; 4]) -> Result<(), RmeError> {
        use attr::vtep as v;
        let attrs = vec![
            nla(v::INDEX, u16::from(index).to_ne_bytes().to_vec())?,
            nla(v::MAC, mac.to_vec())?,
            nla(v::IP, ip.to_vec())?,
        ];
        self.request(cmd::VTEP_SET, NlmF::ACK, attrs).map(|_| ())
    }

    /// Sets what the NIC does with a packet no rule matches: `drop`
    /// unless `allow`, as an OpenFlow table without a table-miss flow.
    pub fn miss_policy_set(&self, allow: bool) -> Result<(), RmeError> {
        use attr::policy as p;
        let nest = nest(
            attr::dev::POLICY,
            vec![nla(
                p::MISS_POLICY,
                vec![if allow { MISS_ALLOW } else { MISS_DROP }],
            )?],
        )?;
        self.request(cmd::POLICY_SET, NlmF::ACK, vec![nest])
            .map(|_| ())
    }

    /// Sends `command` and reads its answer. ENOENT may come from the
    /// module or, for a family id that went with an unloaded module, from
    /// genetlink itself: the family is looked up again to tell them apart.
    fn request(
        &self,
        command: u8,
        flags: NlmF,
        attrs: Vec<Nlattr<u16, Buffer>>,
    ) -> Result<Vec<Msg>, RmeError> {
        let msg = GenlmsghdrBuilder::<u8, u16, NoUserHeader>::default()
            .cmd(command)
            .version(FAMILY_VERSION as u8)
            .attrs(attrs.into_iter().collect::<Attrs>())
            .build()
            .map_err(build_err)?;
        let e = match self.send(msg.clone(), flags) {
            Err(e) if e.errno == errno::ENOENT => e,
            answer => return answer,
        };
        if !self.refresh_family()? {
            return Err(e);
        }
        if self.resend {
            return self.send(msg, flags);
        }
        Err(RmeError::new(
            errno::ESTALE,
            "bmgnic_rme was reloaded: the request named the old module's state",
        ))
    }

    fn send(&self, msg: Msg, flags: NlmF) -> Result<Vec<Msg>, RmeError> {
        let socket = self.socket.lock().unwrap_or_else(PoisonError::into_inner);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let request = NlmsghdrBuilder::default()
            .nl_type(self.family.load(Ordering::Relaxed))
            .nl_flags(flags | NlmF::REQUEST)
            .nl_pid(socket.pid())
            .nl_seq(seq)
            .nl_payload(NlPayload::Payload(msg))
            .build()
            .map_err(build_err)?;
        socket.send(&request).map_err(socket_error)?;
        let dump = flags.contains(NlmF::DUMP);
        let ack = flags.contains(NlmF::ACK);
        let mut out = Vec::new();
        loop {
            let (replies, _) = socket.recv::<u16, Msg>().map_err(socket_error)?;
            for reply in replies {
                let reply: Nlmsghdr<u16, Msg> = reply.map_err(socket_error)?;
                // The rest of an earlier request's answer, which failed
                // half-way through.
                if *reply.nl_seq() != seq {
                    continue;
                }
                match reply.nl_payload() {
                    NlPayload::Payload(p) => {
                        out.push(p.clone());
                        if !dump && !ack {
                            return Ok(out);
                        }
                    }
                    NlPayload::Err(e) => return Err(nlmsgerr(*e.error(), e.ext_ack())),
                    NlPayload::DumpExtAck(e) if *e.error() < 0 => {
                        return Err(nlmsgerr(*e.error(), e.ext_ack()))
                    }
                    NlPayload::DumpExtAck(_) | NlPayload::Empty if dump => return Ok(out),
                    NlPayload::Ack(_) if !dump => return Ok(out),
                    _ => {}
                }
            }
        }
    }
}

impl Rme for Netlink {
    fn flow_add(&mut self, spec: &FlowSpec) -> Result<u32, RmeError> {
        use attr::flow as a;
        let replies = self.request(cmd::FLOW_ADD, NlmF::ACK, flow_attrs(spec)?)?;
        replies
            .iter()
            .find_map(|m| u32_ne(&m.attrs().get_attr_handle(), a::ID))
            .ok_or_else(|| RmeError::new(5, "flow-add reply without an id"))
    }

    fn flow_del(&mut self, id: u32) -> Result<(u64, u64), RmeError> {
        use attr::flow as a;
        let replies = self.request(
            cmd::FLOW_DEL,
            NlmF::ACK,
            vec![nla(a::ID, id.to_ne_bytes().to_vec())?],
        )?;
        let h = replies.first().map(|m| m.attrs().get_attr_handle());
        Ok(h.map_or((0, 0), |h| {
            (
                u64_ne(&h, a::PACKETS).unwrap_or(0),
                u64_ne(&h, a::BYTES).unwrap_or(0),
            )
        }))
    }

    fn flow_dump(&mut self) -> Result<Vec<FlowInfo>, RmeError> {
        let replies = self.request(cmd::FLOW_GET, NlmF::DUMP | NlmF::ACK, Vec::new())?;
        Ok(replies
            .iter()
            .filter_map(|m| parse_flow(&m.attrs().get_attr_handle()))
            .collect())
    }

    fn meter_set(&mut self, meter: &MeterSpec) -> Result<(), RmeError> {
        use attr::meter as a;
        let attrs = vec![
            nla(a::INDEX, u16::from(meter.index).to_ne_bytes().to_vec())?,
            nla(a::RATE, meter.rate.to_ne_bytes().to_vec())?,
            nla(a::BURST, meter.burst.to_ne_bytes().to_vec())?,
            nla(
                a::UNIT,
                vec![if meter.packets {
                    meter_unit::PACKETS
                } else {
                    meter_unit::BYTES
                }],
            )?,
        ];
        self.request(cmd::METER_SET, NlmF::ACK, attrs).map(|_| ())
    }

    fn meter_counters(&mut self) -> Result<BTreeMap<u8, MeterCounters>, RmeError> {
        Ok(self
            .dump(cmd::METER_GET, meter_counts)?
            .into_iter()
            .collect())
    }

    fn tenant_reset(&mut self) -> Result<Tenancy, RmeError> {
        use attr::tenancy as a;
        let replies = self.request(cmd::TENANT_RESET, NlmF::ACK, Vec::new())?;
        let h = replies
            .first()
            .map(|m| m.attrs().get_attr_handle())
            .ok_or_else(|| RmeError::new(5, "tenant-reset without a reply"))?;
        Ok(Tenancy {
            flows: u32_ne(&h, a::FLOWS).unwrap_or(0),
            packets: u64_ne(&h, a::PACKETS).unwrap_or(0),
            bytes: u64_ne(&h, a::BYTES).unwrap_or(0),
            counters: nested(&h, a::COUNTERS)
                .map(|c| dev_counters(&c))
                .unwrap_or_default(),
        })
    }

    fn dev_get(&mut self) -> Result<DevState, RmeError> {
        use attr::dev as a;
        let replies = self.request(cmd::DEV_GET, NlmF::ACK, Vec::new())?;
        let m = replies
            .first()
            .ok_or_else(|| RmeError::new(5, "dev-get without a reply"))?;
        let h = m.attrs().get_attr_handle();
        let mut state = DevState {
            nic_flow_slots: u32_ne(&h, a::NIC_FLOW_SLOTS).unwrap_or(0),
            sw_flows: u32_ne(&h, a::SW_FLOWS).unwrap_or(0),
            // A module from before the attribute: no news of the link.
            fabric_link: u8_of(&h, a::FABRIC_LINK) != Some(0),
            ..Default::default()
        };
        if let Some(id) = nested(&h, a::IDENTITY) {
            state.guest_mac = mac(&id, attr::identity::MAC).unwrap_or_default();
        }
        if let Some(p) = nested(&h, a::POLICY) {
            state.quarantined = u8_of(&p, attr::policy::QUARANTINED) == Some(1);
        }
        if let Some(c) = nested(&h, a::COUNTERS) {
            state.counters = dev_counters(&c);
        }
        Ok(state)
    }

    fn tenant_vni_set(&mut self, vni: u32) -> Result<(), RmeError> {
        use attr::{dev, tenant as t};
        let replies = self.request(cmd::DEV_GET, NlmF::ACK, Vec::new())?;
        let h = replies
            .first()
            .map(|m| m.attrs().get_attr_handle())
            .ok_or_else(|| RmeError::new(5, "dev-get without a reply"))?;
        let current = nested(&h, dev::TENANT)
            .ok_or_else(|| RmeError::new(22, "the tenant has no local VTEP yet"))?;
        let local_mac = raw(&current, t::LOCAL_MAC).map(<[u8]>::to_vec);
        let local_ip = raw(&current, t::LOCAL_IP).map(<[u8]>::to_vec);
        let (Some(local_mac), Some(local_ip)) = (local_mac, local_ip) else {
            return Err(RmeError::new(22, "the tenant has no local VTEP yet"));
        };
        let tenant = nest(
            dev::TENANT,
            vec![
                nla(t::VNI, vni.to_ne_bytes().to_vec())?,
                nla(t::LOCAL_MAC, local_mac)?,
                nla(t::LOCAL_IP, local_ip)?,
            ],
        )?;
        self.request(cmd::TENANT_SET, NlmF::ACK, vec![tenant])
            .map(|_| ())
    }

    fn nic_config(&mut self) -> Result<NicConfig, RmeError> {
        use attr::dev as a;
        let replies = self.request(cmd::DEV_GET, NlmF::ACK, Vec::new())?;
        let h = replies
            .first()
            .map(|m| m.attrs().get_attr_handle())
            .ok_or_else(|| garbled("dev-get without a reply"))?;
        let identity = nest_of(&h, a::IDENTITY, "dev-get identity")?
            .ok_or_else(|| garbled("dev-get without an identity"))
            .and_then(|i| identity_config(&i))?;
        let tenant = match nest_of(&h, a::TENANT, "dev-get tenant")? {
            Some(t) => tenant_config(&t)?,
            None => None,
        };
        let policy = match nest_of(&h, a::POLICY, "dev-get policy")? {
            Some(p) => policy_config(&p)?,
            None => None,
        };
        Ok(NicConfig {
            identity,
            tenant,
            vteps: self.dump(cmd::VTEP_GET, vtep_config)?,
            meters: self.dump(cmd::METER_GET, meter_config)?,
            flows: self.dump(cmd::FLOW_GET, flow_config)?,
            policy,
        })
    }

    fn nic_config_apply(&mut self, cfg: &NicConfig) -> Result<(), RmeError> {
        apply_nic_config(self, cfg)
    }

    fn provision(&mut self, p: &Provisioning, vni: u32) -> Result<(), RmeError> {
        apply_provisioning(self, p, vni)
    }

    fn reattach(&mut self) -> Result<bool, RmeError> {
        self.refresh_family()
    }

    fn take_reload(&mut self) -> bool {
        self.reloaded.swap(false, Ordering::Relaxed)
    }
}

impl NicConfigSteps for Netlink {
    fn identity_apply(&mut self, id: &IdentityConfig) -> Result<(), RmeError> {
        let ipv4: Vec<[u8; 4]> = id.ipv4.iter().map(Ipv4Addr::octets).collect();
        let ipv6: Vec<[u8; 16]> = id.ipv6.iter().map(Ipv6Addr::octets).collect();
        let mtu_cap = (id.mtu_cap != 0).then_some(id.mtu_cap);
        self.identity_request(id.mac, mtu_cap, &ipv4, &ipv6)
    }

    fn tenant_apply(&mut self, t: &TenantConfig) -> Result<(), RmeError> {
        self.tenant_set(t.vni, t.local_mac, t.local_ip.octets())
    }

    fn vtep_apply(&mut self, v: &VtepConfig) -> Result<(), RmeError> {
        self.vtep_set(v.index, v.mac, v.ip.octets())
    }

    fn policy_apply(&mut self, p: &PolicyConfig) -> Result<(), RmeError> {
        self.miss_policy_set(p.miss == MissPolicy::Allow)
    }
}

impl Events {
    /// An nlctrl notification: when the module's family comes back, its
    /// events group is joined again (the kernel dropped the membership
    /// with the family) and the module's return is reported.
    fn on_ctrl(&self, p: &Msg) -> Option<RmeEvent> {
        let name = p
            .attrs()
            .get_attr_handle()
            .get_attribute(u16::from(CtrlAttr::FamilyName))
            .map(|a| a.nla_payload().as_ref().to_vec());
        if name.as_deref() != Some(FAMILY_NAME) {
            return None;
        }
        let command = *p.cmd();
        if command == u8::from(CtrlCmd::Delfamily) {
            log::warn!("bmgnic_rme was unloaded: no module events until it is back");
            return None;
        }
        if command != u8::from(CtrlCmd::Newfamily) {
            return None;
        }
        if let Err(e) = join_events(&self.router) {
            log::warn!("bmgnic_rme is back, but its events are not: {e}");
        }
        Some(RmeEvent::ModuleLoaded)
    }

    /// The next event; `None` when the socket closed. Notifications this
    /// daemon does not understand are skipped.
    pub fn next_event(&mut self) -> Option<RmeEvent> {
        loop {
            let msg: Nlmsghdr<u16, Msg> = match self.receiver.next()? {
                Ok(m) => m,
                Err(_) => continue,
            };
            let NlPayload::Payload(p) = msg.nl_payload() else {
                continue;
            };
            if *msg.nl_type() == u16::from(GenlId::Ctrl) {
                if let Some(event) = self.on_ctrl(p) {
                    return Some(event);
                }
                continue;
            }
            if *p.cmd() != cmd::EVENT_NTF {
                continue;
            }
            let h = p.attrs().get_attr_handle();
            use attr::event as a;
            let count = u32_ne(&h, a::COUNT).unwrap_or(1);
            return Some(match u8_of(&h, a::KIND) {
                Some(event_kind::TABLE_MISS) => RmeEvent::TableMiss {
                    count,
                    matching: nested(&h, a::MATCH)
                        .map(|m| parse_match(&m))
                        .unwrap_or_default(),
                    installed: h.get_attribute(a::FLOW_ID).is_some(),
                },
                Some(event_kind::VIOLATION) => RmeEvent::Violation { count },
                Some(event_kind::NIC_TIMEOUT) => RmeEvent::NicTimeout,
                Some(event_kind::LINK) => RmeEvent::Link {
                    up: u8_of(&h, a::FABRIC_LINK) != Some(0),
                },
                _ => continue,
            });
        }
    }
}

/// The replies' parsing, on attributes laid out as the module sends them.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::rme::errno::{EIO, EOPNOTSUPP};

    fn handle(attrs: Vec<Nlattr<u16, Buffer>>) -> Handle<'static> {
        neli::attr::AttrHandle::new(attrs.into_iter().collect::<Attrs>())
    }

    fn a(kind: u16, payload: &[u8]) -> Nlattr<u16, Buffer> {
        nla(kind, payload.to_vec()).expect("attribute")
    }

    const MAC: [u8; 6] = [0x02, 0, 0, 0xaa, 0xbb, 0x01];

    #[test]
    fn dev_get_nests() {
        use attr::{dev, identity as i, policy as p, tenant as t};
        let v6: Ipv6Addr = "fd00::5".parse().expect("address");
        let h = handle(vec![
            a(dev::SW_FLOWS, &0u32.to_ne_bytes()),
            nest(
                dev::IDENTITY,
                vec![
                    a(i::MAC, &MAC),
                    a(i::MTU_CAP, &1500u32.to_ne_bytes()),
                    a(i::IPV4, &[10, 0, 0, 5]),
                    a(i::IPV4, &[10, 0, 1, 5]),
                    a(i::IPV6, &v6.octets()),
                ],
            )
            .expect("nest"),
            nest(
                dev::TENANT,
                vec![
                    a(t::VNI, &0u32.to_ne_bytes()),
                    a(t::LOCAL_MAC, &[0; 6]),
                    a(t::LOCAL_IP, &[0; 4]),
                ],
            )
            .expect("nest"),
            nest(
                dev::POLICY,
                vec![a(p::QUARANTINED, &[0]), a(p::MISS_POLICY, &[MISS_ALLOW])],
            )
            .expect("nest"),
        ]);
        let id = nested(&h, dev::IDENTITY).expect("identity");
        assert_eq!(
            identity_config(&id),
            Ok(IdentityConfig {
                mac: MAC,
                mtu_cap: 1500,
                ipv4: vec![Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 1, 5)],
                ipv6: vec![v6],
            })
        );
        // The module's zeroed nest without a tenant.
        let tn = nested(&h, dev::TENANT).expect("tenant");
        assert_eq!(tenant_config(&tn), Ok(None));
        let pn = nested(&h, dev::POLICY).expect("policy");
        assert_eq!(
            policy_config(&pn),
            Ok(Some(PolicyConfig {
                miss: MissPolicy::Allow
            }))
        );

        let tn = handle(vec![
            a(t::VNI, &0u32.to_ne_bytes()),
            a(t::LOCAL_MAC, &MAC),
            a(t::LOCAL_IP, &[192, 168, 0, 10]),
        ]);
        assert_eq!(
            tenant_config(&tn),
            Ok(Some(TenantConfig {
                vni: 0,
                local_mac: MAC,
                local_ip: Ipv4Addr::new(192, 168, 0, 10),
            }))
        );
        assert_eq!(
            policy_config(&handle(vec![a(p::QUARANTINED, &[1])])),
            Ok(None)
        );
        assert_eq!(
            policy_config(&handle(vec![a(p::MISS_POLICY, &[7])])).map_err(|e| e.errno),
            Err(EIO)
        );
        // A short MAC is not read as a shorter one.
        let bad = handle(vec![a(i::MAC, &MAC[..5]), a(i::MTU_CAP, &[0; 4])]);
        assert_eq!(identity_config(&bad).map_err(|e| e.errno), Err(EIO));
    }

    #[test]
    fn vtep_and_meter_dumps() {
        use attr::{meter as m, vtep as v};
        let h = handle(vec![
            a(v::INDEX, &3u16.to_ne_bytes()),
            a(v::MAC, &MAC),
            a(v::IP, &[192, 168, 0, 11]),
        ]);
        assert_eq!(
            vtep_config(&h),
            Ok(VtepConfig {
                index: 3,
                mac: MAC,
                ip: Ipv4Addr::new(192, 168, 0, 11),
            })
        );
        let h = handle(vec![a(v::INDEX, &300u16.to_ne_bytes())]);
        assert!(vtep_config(&h).is_err());

        let meter = |unit: Option<u8>| {
            let mut attrs = vec![
                a(m::INDEX, &7u16.to_ne_bytes()),
                a(m::RATE, &1000u64.to_ne_bytes()),
                a(m::BURST, &10u32.to_ne_bytes()),
            ];
            attrs.extend(unit.map(|u| a(m::UNIT, &[u])));
            meter_config(&handle(attrs)).map(|m| m.packets)
        };
        assert_eq!(meter(None), Ok(false));
        assert_eq!(meter(Some(meter_unit::BYTES)), Ok(false));
        assert_eq!(meter(Some(meter_unit::PACKETS)), Ok(true));
        assert!(meter(Some(2)).is_err());

        // Counters: a meter the module has not read yet has none.
        let h = handle(vec![
            a(m::INDEX, &7u16.to_ne_bytes()),
            a(m::PASSED_PACKETS, &5u64.to_ne_bytes()),
            a(m::PASSED_BYTES, &500u64.to_ne_bytes()),
            a(m::DROPPED_PACKETS, &2u64.to_ne_bytes()),
            a(m::DROPPED_BYTES, &200u64.to_ne_bytes()),
        ]);
        let counted = MeterCounters {
            passed_packets: 5,
            passed_bytes: 500,
            dropped_packets: 2,
            dropped_bytes: 200,
        };
        assert_eq!(meter_counts(&h), Ok((7, counted)));
        let h = handle(vec![a(m::INDEX, &7u16.to_ne_bytes())]);
        assert_eq!(meter_counts(&h), Ok((7, MeterCounters::default())));
        let h = handle(vec![a(m::INDEX, &256u16.to_ne_bytes())]);
        assert!(meter_counts(&h).is_err());
    }

    fn dumped(spec: &FlowSpec, id: u32) -> Vec<Nlattr<u16, Buffer>> {
        use attr::flow as f;
        let mut attrs = vec![a(f::ID, &id.to_ne_bytes())];
        attrs.extend(flow_attrs(spec).expect("flow attributes"));
        attrs.push(a(f::PACKETS, &5u64.to_ne_bytes()));
        attrs.push(a(f::BYTES, &500u64.to_ne_bytes()));
        attrs.push(a(f::NIC_SLOT, &2u32.to_ne_bytes()));
        attrs
    }

    #[test]
    fn flow_dump_reads_back_what_flow_add_sends() {
        let spec = FlowSpec {
            priority: 100,
            action: FlowAction::Encap { vtep: 3 },
            meter: Some(7),
            matching: crate::rme::tests::every_match(MAC),
        };
        assert_eq!(flow_config(&handle(dumped(&spec, 9))), Ok(spec));
        let drop = FlowSpec {
            priority: 0,
            action: FlowAction::Drop,
            meter: None,
            matching: FlowMatch::default(),
        };
        assert_eq!(flow_config(&handle(dumped(&drop, 10))), Ok(drop));
    }

    #[test]
    fn flow_dump_refuses_what_a_flow_spec_cannot_hold() {
        use attr::{flow as f, matches as m};
        let spec = FlowSpec {
            priority: 1,
            action: FlowAction::Allow,
            meter: None,
            matching: FlowMatch::default(),
        };
        let with_match = |attrs: Vec<Nlattr<u16, Buffer>>| {
            let mut msg: Vec<_> = dumped(&spec, 4)
                .into_iter()
                .filter(|x| *x.nla_type().nla_type() != f::MATCH)
                .collect();
            msg.push(nest(f::MATCH, attrs).expect("nest"));
            flow_config(&handle(msg))
        };
        let v6 = with_match(vec![
            a(m::ETHERTYPE, &0x86ddu16.to_be_bytes()),
            a(m::IP_DST, &[0xfd; 16]),
            a(m::IP_DST_PREFIX, &[64]),
        ])
        .expect_err("IPv6");
        assert_eq!(v6.errno, EOPNOTSUPP);
        assert_eq!(
            v6.message.as_deref(),
            Some("flow 4 matches IPv6 addresses, which the daemon's flows cannot hold")
        );
        assert_eq!(
            with_match(vec![a(15, &[0])]).map_err(|e| e.errno),
            Err(EOPNOTSUPP)
        );
        assert_eq!(
            with_match(vec![a(m::L4_DST, &[0; 4])]).map_err(|e| e.errno),
            Err(EIO)
        );
        // Without an id, or with an action it does not know.
        let no_id: Vec<_> = dumped(&spec, 4).into_iter().skip(1).collect();
        assert!(flow_config(&handle(no_id)).is_err());
        let mut bad_action: Vec<_> = dumped(&spec, 4)
            .into_iter()
            .filter(|x| *x.nla_type().nla_type() != f::ACTION)
            .collect();
        bad_action.push(a(f::ACTION, &[9]));
        assert!(flow_config(&handle(bad_action)).is_err());
    }
}
