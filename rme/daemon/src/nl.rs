// SPDX-License-Identifier: GPL-2.0

//! The `bmgnic` generic netlink family, spoken with neli: requests to the
//! module ([`Rme`]) and its `events` multicast group.
//!
//! The numbers come from the wire crate (`bmgnic_wire::genl`), which the
//! module serves and `make check` checks against the family's YAML spec.

use crate::rme::{
    DevCounters, DevState, FlowAction, FlowInfo, FlowMatch, FlowSpec, IpPrefix, MeterSpec, Rme,
    RmeError, RmeEvent, Tenancy,
};
use bmgnic_wire::genl::{
    attr, cmd, event_kind, meter_unit, FAMILY_NAME, FAMILY_VERSION, MCGRP_EVENTS,
};
use bmgnic_wire::ncsi_oem::{ACTION_ALLOW, ACTION_DROP, MISS_ALLOW, MISS_DROP};
use neli::{
    consts::{nl::NlmF, socket::NlFamily},
    err::RouterError,
    genl::{AttrTypeBuilder, Genlmsghdr, GenlmsghdrBuilder, Nlattr, NlattrBuilder, NoUserHeader},
    nl::{NlPayload, Nlmsghdr},
    router::synchronous::{NlRouter, NlRouterReceiverHandle},
    types::{Buffer, GenlBuffer},
    utils::Groups,
};

type Msg = Genlmsghdr<u8, u16>;
type Attrs = GenlBuffer<u16, Buffer>;
type Handle<'a> = neli::attr::AttrHandle<'a, Attrs, Nlattr<u16, Buffer>>;

/// The `bmgnic` family on a netlink socket.
pub struct Netlink {
    router: NlRouter,
    family: u16,
}

/// The `events` group's notifications.
pub struct Events {
    /// Owns the socket and the thread that feeds `receiver`.
    _router: NlRouter,
    receiver: NlRouterReceiverHandle<u16, Msg>,
}

fn family_name() -> &'static str {
    // FAMILY_NAME is NUL-terminated for the kernel.
    std::str::from_utf8(&FAMILY_NAME[..FAMILY_NAME.len() - 1]).unwrap_or("bmgnic")
}

fn nl_error<T: std::fmt::Debug, P: std::fmt::Debug>(e: RouterError<T, P>) -> RmeError {
    match e {
        RouterError::Nlmsgerr(e) => {
            let message = e.ext_ack().iter().find_map(|a| {
                // NLMSGERR_ATTR_MSG.
                (u16::from(a.nla_type().nla_type()) == 1).then(|| {
                    String::from_utf8_lossy(a.nla_payload().as_ref())
                        .trim_end_matches('\0')
                        .to_string()
                })
            });
            RmeError {
                errno: -*e.error(),
                message,
            }
        }
        other => RmeError::new(5, format!("netlink: {other}")),
    }
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

impl Netlink {
    /// Opens a socket and resolves the family; fails with a clear message
    /// when `bmgnic_rme` is not loaded.
    pub fn open() -> Result<Netlink, RmeError> {
        let (router, _) = NlRouter::connect(NlFamily::Generic, None, Groups::empty())
            .map_err(|e| RmeError::new(5, format!("netlink socket: {e}")))?;
        router
            .enable_ext_ack(true)
            .map_err(|e| RmeError::new(5, format!("netlink extack: {e}")))?;
        let family = router.resolve_genl_family(family_name()).map_err(|_| {
            RmeError::new(2, "no bmgnic generic netlink family: is bmgnic_rme loaded?")
        })?;
        Ok(Netlink { router, family })
    }

    /// Subscribes to the module's `events` group on a socket of its own.
    pub fn events() -> Result<Events, RmeError> {
        let (router, receiver) = NlRouter::connect(NlFamily::Generic, None, Groups::empty())
            .map_err(|e| RmeError::new(5, format!("netlink socket: {e}")))?;
        let group = router
            .resolve_nl_mcast_group(family_name(), MCGRP_EVENTS.to_str().unwrap_or("events"))
            .map_err(|e| RmeError::new(2, format!("bmgnic events group: {e}")))?;
        router
            .add_mcast_membership(Groups::new_groups(&[group]))
            .map_err(|e| RmeError::new(5, format!("joining the events group: {e}")))?;
        Ok(Events {
            _router: router,
            receiver,
        })
    }

    /// Sets the guest's identity (the anti-spoofing the NIC enforces
    /// before any flow): its MAC, MTU cap and IPv4 addresses.
    pub fn identity_set(
        &self,
        mac: [u8; 6],
        mtu_cap: u32,
        ipv4: &[[u8; 4]],
    ) -> Result<(), RmeError> {
        use attr::identity as a;
        let mut attrs = vec![
            nla(a::MAC, mac.to_vec())?,
            nla(a::MTU_CAP, mtu_cap.to_ne_bytes().to_vec())?,
        ];
        for ip in ipv4 {
            attrs.push(nla(a::IPV4, ip.to_vec())?);
        }
        let nest = nest(attr::dev::IDENTITY, attrs)?;
        self.request(cmd::IDENTITY_SET, NlmF::ACK, vec![nest])
            .map(|_| ())
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
        let recv: NlRouterReceiverHandle<u16, Msg> = self
            .router
            .send(self.family, flags, NlPayload::Payload(msg))
            .map_err(nl_error)?;
        let mut out = Vec::new();
        for reply in recv {
            let reply: Nlmsghdr<u16, Msg> = reply.map_err(nl_error)?;
            if let NlPayload::Payload(p) = reply.nl_payload() {
                out.push(p.clone());
            }
        }
        Ok(out)
    }
}

impl Rme for Netlink {
    fn flow_add(&mut self, spec: &FlowSpec) -> Result<u32, RmeError> {
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
        let replies = self.request(cmd::FLOW_ADD, NlmF::ACK, attrs)?;
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
}

impl Events {
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
                _ => continue,
            });
        }
    }
}
