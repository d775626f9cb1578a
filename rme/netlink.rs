// SPDX-License-Identifier: GPL-2.0

//! The `bmgnic` generic netlink family of
//! `Documentation/netlink/specs/bmgnic.yaml`: numbers, policies and the
//! handler that serves it with the RME's control.
//!
//! The numbers are the wire crate's ([`crate::genl`]), shared with the
//! RME daemon.

use crate::{
    control::{Event, Rme, State},
    flow_table::{self, Rule},
    genl::{attr, cmd, event_kind, meter_unit, FAMILY_NAME, FAMILY_VERSION, MCGRP_EVENTS},
    ncsi_oem::{
        self as oem, FlowCheck, FlowKey, MeterCountersRecord, MeterRecord, TenantRecord, VtepRecord,
    },
    sideband::Sideband,
};
use kernel::{
    net::netlink::{
        AttrPolicy as P, AttrRange, Attrs, Dump, Handler, MulticastGroup, Operation as Op,
        OpsFamily, Request,
    },
    prelude::*,
};

static MTU_RANGE: AttrRange = AttrRange::new(68, 9000);
static VNI_RANGE: AttrRange = AttrRange::new(0, 0xff_ffff);

static IDENTITY_NEST: [P; 5] = [
    P::NONE,
    P::binary_exact(6),
    P::u32_range(&MTU_RANGE),
    P::u32(),
    P::binary_exact(16),
];
static TENANT_NEST: [P; 4] = [
    P::NONE,
    P::u32_range(&VNI_RANGE),
    P::binary_exact(6),
    P::u32(),
];
static POLICY_NEST: [P; 4] = [P::NONE, P::u8_max(1), P::u8_max(1), P::u32()];
static MATCH_NEST: [P; 15] = [
    P::NONE,
    P::u8_max(1),
    P::u16(),
    P::u16(),
    P::u8(),
    P::binary_exact(6),
    P::binary_exact(6),
    P::binary_exact(6),
    P::binary_exact(6),
    P::binary_max(16),
    P::u8_max(128),
    P::binary_max(16),
    P::u8_max(128),
    P::u16(),
    P::u16(),
];

static NO_ATTRS: [P; 1] = [P::NONE];
const fn dev_nest(at: usize, nest: P) -> [P; 11] {
    let mut p = [P::NONE; 11];
    p[at] = nest;
    p
}
static IDENTITY_SET: [P; 11] = dev_nest(7, P::nested(&IDENTITY_NEST));
static TENANT_SET: [P; 11] = dev_nest(8, P::nested(&TENANT_NEST));
static POLICY_SET: [P; 11] = dev_nest(9, P::nested(&POLICY_NEST));
static VTEP_SET: [P; 4] = [P::NONE, P::u16_max(255), P::binary_exact(6), P::u32()];
static FLOW_ADD: [P; 7] = [
    P::NONE,
    P::NONE,
    P::u16(),
    P::u8_max(2),
    P::u16_max(255),
    P::u16_max(255),
    P::nested(&MATCH_NEST),
];
static FLOW_ID: [P; 2] = [P::NONE, P::u32()];
static METER_SET: [P; 5] = [P::NONE, P::u16_max(255), P::u64(), P::u32(), P::u8_max(1)];

static OPS: [Op<Rme>; 13] = [
    Op::doit::<1>(cmd::DEV_GET, &NO_ATTRS, false),
    Op::doit::<11>(cmd::IDENTITY_SET, &IDENTITY_SET, true),
    Op::doit::<11>(cmd::TENANT_SET, &TENANT_SET, true),
    Op::doit::<4>(cmd::VTEP_SET, &VTEP_SET, true),
    Op::dumpit::<1>(cmd::VTEP_GET, &NO_ATTRS, false),
    Op::doit::<7>(cmd::FLOW_ADD, &FLOW_ADD, true),
    Op::doit::<2>(cmd::FLOW_DEL, &FLOW_ID, true),
    Op::doit::<2>(cmd::FLOW_GET, &FLOW_ID, false),
    Op::dumpit::<1>(cmd::FLOW_GET, &NO_ATTRS, false),
    Op::doit::<5>(cmd::METER_SET, &METER_SET, true),
    Op::dumpit::<1>(cmd::METER_GET, &NO_ATTRS, false),
    Op::doit::<11>(cmd::POLICY_SET, &POLICY_SET, true),
    Op::doit::<1>(cmd::TENANT_RESET, &NO_ATTRS, true),
];

static MCGRPS: [MulticastGroup; 1] = [MulticastGroup::const_new(MCGRP_EVENTS)];

/// The family.
pub(crate) static FAMILY: OpsFamily<Rme> = OpsFamily::const_new(
    kernel::module::this_module::<crate::LocalModule>(),
    FAMILY_NAME,
    FAMILY_VERSION,
    &MCGRPS,
    &OPS,
);

/// Sends `event` to the `events` group (if anyone listens). Any context.
pub(crate) fn notify(event: &Event) {
    let _ = FAMILY.notify(0, cmd::EVENT_NTF, |m| match event {
        Event::TableMiss { miss, rule } => {
            m.put_u8(attr::event::KIND, event_kind::TABLE_MISS)?;
            m.put_u32(attr::event::COUNT, miss.misses)?;
            if let Some(id) = rule {
                m.put_u32(attr::event::FLOW_ID, *id)?;
            }
            m.put_nest(attr::event::MATCH, |m| put_key(m, &miss.key))
        }
        Event::Violation(v) => {
            m.put_u8(attr::event::KIND, event_kind::VIOLATION)?;
            m.put_u32(attr::event::COUNT, v.count)?;
            if v.kind == oem::VIOLATION_RO_WRITE {
                m.put_u32(attr::event::REGISTER, u32::from(v.key.l4_dst))?;
            }
            m.put_nest(attr::event::MATCH, |m| put_key(m, &v.key))
        }
        Event::NicTimeout { command } => {
            m.put_u8(attr::event::KIND, event_kind::NIC_TIMEOUT)?;
            m.put_u32(attr::event::COUNT, u32::from(*command))
        }
        Event::Link { up } => {
            m.put_u8(attr::event::KIND, event_kind::LINK)?;
            m.put_u8(attr::event::FABRIC_LINK, u8::from(*up))
        }
    });
}

/// A key as `match` attributes (exact values, as events carry them).
fn put_key(m: &mut kernel::net::netlink::Msg<'_>, k: &FlowKey) -> Result {
    use attr::matches as a;
    m.put_u8(a::IN_PORT, k.in_port)?;
    m.put_bytes(a::ETHERTYPE, &k.ethertype.to_be_bytes())?;
    m.put_bytes(a::ETH_SRC, &k.eth_src)?;
    m.put_bytes(a::ETH_DST, &k.eth_dst)?;
    if k.ethertype == oem::ETHERTYPE_IPV4 || k.ethertype == oem::ETHERTYPE_IPV6 {
        let n = if k.ethertype == oem::ETHERTYPE_IPV4 {
            4
        } else {
            16
        };
        m.put_u8(a::IP_PROTO, k.ip_proto)?;
        m.put_bytes(a::IP_SRC, &k.ip_src[..n])?;
        m.put_bytes(a::IP_DST, &k.ip_dst[..n])?;
        m.put_u16(a::L4_SRC, k.l4_src)?;
        m.put_u16(a::L4_DST, k.l4_dst)?;
    }
    Ok(())
}

/// A rule's match as `match` attributes, with masks and prefixes.
fn put_match(m: &mut kernel::net::netlink::Msg<'_>, key: &FlowKey, mask: &FlowKey) -> Result {
    use attr::matches as a;
    if mask.in_port != 0 {
        m.put_u8(a::IN_PORT, key.in_port)?;
    }
    if mask.ethertype != 0 {
        m.put_bytes(a::ETHERTYPE, &key.ethertype.to_be_bytes())?;
    }
    if mask.vlan_tci != 0 {
        m.put_bytes(a::VLAN_TCI, &key.vlan_tci.to_be_bytes())?;
    }
    if mask.ip_proto != 0 {
        m.put_u8(a::IP_PROTO, key.ip_proto)?;
    }
    if mask.eth_src != [0; 6] {
        m.put_bytes(a::ETH_SRC, &key.eth_src)?;
        m.put_bytes(a::ETH_SRC_MASK, &mask.eth_src)?;
    }
    if mask.eth_dst != [0; 6] {
        m.put_bytes(a::ETH_DST, &key.eth_dst)?;
        m.put_bytes(a::ETH_DST_MASK, &mask.eth_dst)?;
    }
    let n = if key.ethertype == oem::ETHERTYPE_IPV6 {
        16
    } else {
        4
    };
    let prefix = |b: &[u8; 16]| b.iter().map(|x| x.count_ones()).sum::<u32>() as u8;
    if mask.ip_src != [0; 16] {
        m.put_bytes(a::IP_SRC, &key.ip_src[..n])?;
        m.put_u8(a::IP_SRC_PREFIX, prefix(&mask.ip_src))?;
    }
    if mask.ip_dst != [0; 16] {
        m.put_bytes(a::IP_DST, &key.ip_dst[..n])?;
        m.put_u8(a::IP_DST_PREFIX, prefix(&mask.ip_dst))?;
    }
    if mask.l4_src != 0 {
        m.put_u16(a::L4_SRC, key.l4_src)?;
    }
    if mask.l4_dst != 0 {
        m.put_u16(a::L4_DST, key.l4_dst)?;
    }
    Ok(())
}

/// Prefix mask of `bits` bits over `n` bytes.
fn prefix_mask(bits: u8, n: usize) -> [u8; 16] {
    let mut m = [0u8; 16];
    let mut left = u32::from(bits).min(8 * n as u32);
    for b in m.iter_mut().take(n) {
        let take = left.min(8);
        *b = if take == 0 { 0 } else { 0xffu8 << (8 - take) };
        left -= take;
    }
    m
}

/// Parses `match` attributes into a key and mask.
fn parse_match(attrs: Attrs<'_>) -> core::result::Result<(FlowKey, FlowKey), &'static CStr> {
    use attr::matches as a;
    let mut key = FlowKey::default();
    let mut mask = FlowKey::default();
    let be16 = |b: &[u8]| b.get(..2).map(|x| u16::from_be_bytes([x[0], x[1]]));
    if let Some(v) = attrs.get(a::IN_PORT).and_then(|x| x.u8()) {
        key.in_port = v;
        mask.in_port = 0xff;
    }
    if let Some(v) = attrs.get(a::ETHERTYPE).and_then(|x| be16(x.bytes())) {
        key.ethertype = v;
        mask.ethertype = 0xffff;
    }
    if let Some(v) = attrs.get(a::VLAN_TCI).and_then(|x| be16(x.bytes())) {
        key.vlan_tci = v;
        mask.vlan_tci = 0xffff;
    }
    if let Some(v) = attrs.get(a::IP_PROTO).and_then(|x| x.u8()) {
        key.ip_proto = v;
        mask.ip_proto = 0xff;
    }
    let mac = |ty: u16| {
        attrs
            .get(ty)
            .and_then(|x| <[u8; 6]>::try_from(x.bytes()).ok())
    };
    if let Some(v) = mac(a::ETH_SRC) {
        key.eth_src = v;
        mask.eth_src = mac(a::ETH_SRC_MASK).unwrap_or([0xff; 6]);
    }
    if let Some(v) = mac(a::ETH_DST) {
        key.eth_dst = v;
        mask.eth_dst = mac(a::ETH_DST_MASK).unwrap_or([0xff; 6]);
    }
    for (addr, prefix, k, msk) in [
        (
            a::IP_SRC,
            a::IP_SRC_PREFIX,
            &mut key.ip_src,
            &mut mask.ip_src,
        ),
        (
            a::IP_DST,
            a::IP_DST_PREFIX,
            &mut key.ip_dst,
            &mut mask.ip_dst,
        ),
    ] {
        if let Some(x) = attrs.get(addr) {
            let b = x.bytes();
            if b.len() != 4 && b.len() != 16 {
                return Err(c"an IP address is 4 or 16 bytes");
            }
            let bits = attrs
                .get(prefix)
                .and_then(|p| p.u8())
                .unwrap_or(8 * b.len() as u8);
            if usize::from(bits) > 8 * b.len() {
                return Err(c"prefix longer than the address");
            }
            k[..b.len()].copy_from_slice(b);
            *msk = prefix_mask(bits, b.len());
        }
    }
    if let Some(v) = attrs.get(a::L4_SRC).and_then(|x| x.u16()) {
        key.l4_src = v;
        mask.l4_src = 0xffff;
    }
    if let Some(v) = attrs.get(a::L4_DST).and_then(|x| x.u16()) {
        key.l4_dst = v;
        mask.l4_dst = 0xffff;
    }
    Ok((key.masked(&mask), mask))
}

fn flow_check_message(e: FlowCheck) -> &'static CStr {
    match e {
        FlowCheck::BadAction => c"unknown flow action",
        FlowCheck::KeyOutsideMask => c"flow key has bits outside its mask",
        FlowCheck::NeedsIpEthertype => c"IP match needs an exact IPv4, IPv6 or ARP ethertype",
        FlowCheck::Ipv4MaskBeyondAddress => c"IPv4 mask beyond the 4-byte address",
        FlowCheck::NeedsL4Protocol => c"port match needs an exact L4 protocol",
    }
}

/// Says in the extack why the NIC part of a request failed.
fn nic_error(req: &mut Request<'_>, e: Error) -> Error {
    let msg = if e == ETIMEDOUT {
        notify(&Event::NicTimeout {
            command: crate::ncsi::cmd::OEM,
        });
        c"the NIC did not answer over NC-SI"
    } else if e == ENODEV {
        c"the NC-SI channel is not up"
    } else if e == ENOTCONN {
        c"the NIC had lost its state (reset or replaced); the RME restored it: retry"
    } else if e == ENETDOWN {
        c"no NC-SI sideband: its device was unregistered; waiting for it to come back"
    } else if e == EINVAL || e == EOPNOTSUPP {
        c"the NIC refused the command"
    } else if e == ENOENT {
        c"no such flow"
    } else {
        c"NC-SI command failed"
    };
    req.set_error(msg, None);
    e
}

fn ipv4_be(x: &kernel::net::netlink::Attr<'_>) -> Option<[u8; 4]> {
    <[u8; 4]>::try_from(x.bytes()).ok()
}

impl Rme {
    fn identity_set(&self, req: &mut Request<'_>) -> Result {
        use attr::identity as a;
        let Some(nest) = req.attr(attr::dev::IDENTITY) else {
            req.set_error(c"identity attribute required", None);
            return Err(EINVAL);
        };
        let attrs = nest.nested();
        let r = self.with_state(|sb, st| {
            let mut id = st.identity;
            if let Some(mac) = attrs
                .get(a::MAC)
                .and_then(|x| <[u8; 6]>::try_from(x.bytes()).ok())
            {
                id.mac = mac;
            }
            if let Some(cap) = attrs.get(a::MTU_CAP).and_then(|x| x.u32()) {
                id.mtu_cap = cap as u16;
            }
            let v4 = attrs.filter(|x| x.ty() == a::IPV4);
            let v6 = attrs.filter(|x| x.ty() == a::IPV6);
            if attrs.get(a::IPV4).is_some() || attrs.get(a::IPV6).is_some() {
                id.ipv4_count = 0;
                id.ipv6_count = 0;
                id.ipv4 = Default::default();
                id.ipv6 = Default::default();
            }
            for x in v4 {
                let i = usize::from(id.ipv4_count);
                if i >= oem::MAX_GUEST_ADDRS {
                    return Err(E2BIG);
                }
                id.ipv4[i] = ipv4_be(&x).ok_or(EINVAL)?;
                id.ipv4_count += 1;
            }
            for x in v6 {
                let i = usize::from(id.ipv6_count);
                if i >= oem::MAX_GUEST_ADDRS {
                    return Err(E2BIG);
                }
                id.ipv6[i] = <[u8; 16]>::try_from(x.bytes()).map_err(|_| EINVAL)?;
                id.ipv6_count += 1;
            }
            st.set_identity(sb, id)
        });
        match r {
            Err(e) if e == E2BIG => {
                req.set_error(c"at most 4 IPv4 and 4 IPv6 addresses", None);
                Err(EINVAL)
            }
            Err(e) => Err(nic_error(req, e)),
            Ok(()) => Ok(()),
        }
    }

    fn tenant_set(&self, req: &mut Request<'_>) -> Result {
        use attr::tenant as a;
        let Some(nest) = req.attr(attr::dev::TENANT) else {
            req.set_error(c"tenant attribute required", None);
            return Err(EINVAL);
        };
        let attrs = nest.nested();
        let r = self.with_state(|sb, st| {
            let mut t: TenantRecord = st.tenant;
            if let Some(v) = attrs.get(a::VNI).and_then(|x| x.u32()) {
                t.vni = v;
            }
            if let Some(v) = attrs
                .get(a::LOCAL_MAC)
                .and_then(|x| <[u8; 6]>::try_from(x.bytes()).ok())
            {
                t.local_mac = v;
            }
            if let Some(v) = attrs.get(a::LOCAL_IP).and_then(|x| ipv4_be(&x)) {
                t.local_ip = v;
            }
            st.set_tenant(sb, t)
        });
        r.map_err(|e| nic_error(req, e))
    }

    fn policy_set(&self, req: &mut Request<'_>) -> Result {
        use attr::policy as a;
        let Some(nest) = req.attr(attr::dev::POLICY) else {
            req.set_error(c"policy attribute required", None);
            return Err(EINVAL);
        };
        let attrs = nest.nested();
        let r = self.with_state(|sb, st| {
            let mut p = st.policy;
            if let Some(v) = attrs.get(a::QUARANTINED).and_then(|x| x.u8()) {
                p.quarantined = v != 0;
            }
            if let Some(v) = attrs.get(a::MISS_POLICY).and_then(|x| x.u8()) {
                p.miss_policy = v;
            }
            if let Some(v) = attrs.get(a::MISS_EVENTS_PER_SEC).and_then(|x| x.u32()) {
                p.miss_events_per_sec = v;
            }
            st.set_policy(sb, p)
        });
        r.map_err(|e| nic_error(req, e))
    }

    fn vtep_set(&self, req: &mut Request<'_>) -> Result {
        use attr::vtep as a;
        let (Some(index), Some(mac), Some(ip)) = (
            req.attr(a::INDEX).and_then(|x| x.u16()),
            req.attr(a::MAC)
                .and_then(|x| <[u8; 6]>::try_from(x.bytes()).ok()),
            req.attr(a::IP).and_then(|x| ipv4_be(&x)),
        ) else {
            req.set_error(c"index, mac and ip are required", None);
            return Err(EINVAL);
        };
        let r = self.with_state(|sb, st| st.set_vtep(sb, VtepRecord { index, mac, ip }));
        r.map_err(|e| nic_error(req, e))
    }

    fn meter_set(&self, req: &mut Request<'_>) -> Result {
        use attr::meter as a;
        let (Some(index), Some(rate)) = (
            req.attr(a::INDEX).and_then(|x| x.u16()),
            req.attr(a::RATE).and_then(|x| x.u64()),
        ) else {
            req.set_error(c"index and rate are required", None);
            return Err(EINVAL);
        };
        let packets = req.attr(a::UNIT).and_then(|x| x.u8()) == Some(meter_unit::PACKETS);
        // Default burst: 10 ms at the rate, at least one jumbo frame (or
        // one packet).
        let least = if packets { 1 } else { 9018 };
        let burst = req
            .attr(a::BURST)
            .and_then(|x| x.u32())
            .unwrap_or_else(|| (rate / 100).clamp(least, u64::from(u32::MAX)) as u32);
        let flags = if packets { oem::METER_FLAG_PACKETS } else { 0 };
        let meter = MeterRecord {
            index,
            flags,
            rate,
            burst,
        };
        let r = self.with_state(|sb, st| st.set_meter(sb, meter));
        r.map_err(|e| nic_error(req, e))
    }

    fn flow_add(&self, req: &mut Request<'_>) -> Result {
        use attr::flow as a;
        let Some(action) = req.attr(a::ACTION).and_then(|x| x.u8()) else {
            req.set_error(c"action is required", None);
            return Err(EINVAL);
        };
        let (key, mask) = match req.attr(a::MATCH).map(|m| parse_match(m.nested())) {
            Some(Ok(km)) => km,
            Some(Err(msg)) => {
                req.set_error(msg, None);
                return Err(EINVAL);
            }
            None => (FlowKey::default(), FlowKey::default()),
        };
        let rule = Rule {
            id: 0,
            priority: req.attr(a::PRIORITY).and_then(|x| x.u16()).unwrap_or(0),
            action,
            meter: req
                .attr(a::METER)
                .and_then(|x| x.u16())
                .unwrap_or(oem::NO_METER),
            vtep: req.attr(a::VTEP).and_then(|x| x.u16()).unwrap_or(0),
            key,
            mask,
        };
        if let Err(e) = flow_table::validate(&rule) {
            req.set_error(flow_check_message(e), None);
            return Err(EINVAL);
        }
        if rule.action == oem::ACTION_ENCAP && req.attr(a::VTEP).is_none() {
            req.set_error(c"an encap flow needs a vtep", None);
            return Err(EINVAL);
        }
        let id = match self.with_state(|sb, st| st.add_flow(sb, rule)) {
            Ok(id) => id,
            Err(e) if e == ENOSPC => {
                req.set_error(c"the software flow table is full", None);
                return Err(e);
            }
            Err(e) => return Err(nic_error(req, e)),
        };
        req.reply(cmd::FLOW_ADD, |m| m.put_u32(a::ID, id))
    }

    fn flow_del(&self, req: &mut Request<'_>) -> Result {
        use attr::flow as a;
        let Some(id) = req.attr(a::ID).and_then(|x| x.u32()) else {
            req.set_error(c"id is required", None);
            return Err(EINVAL);
        };
        let c = self
            .with_state(|sb, st| st.del_flow(sb, id))
            .map_err(|e| nic_error(req, e))?;
        req.reply(cmd::FLOW_DEL, |m| {
            m.put_u32(a::ID, id)?;
            m.put_u64(a::PACKETS, c.packets)?;
            m.put_u64(a::BYTES, c.bytes)
        })
    }

    fn flow_get(&self, req: &mut Request<'_>) -> Result {
        let Some(id) = req.attr(attr::flow::ID).and_then(|x| x.u32()) else {
            req.set_error(c"id is required", None);
            return Err(EINVAL);
        };
        let admin = req.sender_is_admin();
        let found = self
            .with_state(|sb, st| {
                st.fresh_counters(sb, admin)?;
                let (rule, c) = st.table.get(id).map(|(r, c)| (*r, c)).ok_or(ENOENT)?;
                Ok((rule, c, st.slot_of_rule(id)))
            })
            .map_err(|e| nic_error(req, e))?;
        req.reply(cmd::FLOW_GET, |m| put_flow(m, &found.0, found.1, found.2))
    }

    fn dev_get(&self, req: &mut Request<'_>) -> Result {
        use attr::dev as a;
        let sb: &Sideband = &self.sideband;
        let Some(dev) = sb.device() else {
            return Err(nic_error(req, ENETDOWN));
        };
        let admin = req.sender_is_admin();
        let snapshot = self
            .with_state(|sb, st| {
                let counters = st.port_counters(sb, admin)?;
                Ok((
                    st.identity,
                    st.tenant,
                    st.policy,
                    st.table_info.flow_slots,
                    st.cache.installed() as u32,
                    st.table.len() as u32,
                    st.ncsi_version,
                    counters,
                    st.misses,
                    st.evictions,
                ))
            })
            .map_err(|e| nic_error(req, e))?;
        let (id, tenant, policy, slots, used, sw, version, counters, _misses, evictions) = snapshot;
        req.reply(cmd::DEV_GET, |m| {
            m.put_u32(a::SIDEBAND_IFINDEX, dev.ifindex() as u32)?;
            m.put_string(a::SIDEBAND_NAME, dev.name().as_c_str())?;
            let mut v = [0u8; 16];
            let s = crate::ncsi_client::format_version(&version, &mut v);
            m.put_bytes(a::NCSI_VERSION, s)?;
            m.put_u32(a::NIC_FLOW_SLOTS, slots)?;
            m.put_u32(a::NIC_FLOWS_USED, used)?;
            m.put_u32(a::SW_FLOWS, sw)?;
            m.put_nest(a::IDENTITY, |m| {
                use attr::identity as i;
                m.put_bytes(i::MAC, &id.mac)?;
                m.put_u32(i::MTU_CAP, u32::from(id.mtu_cap))?;
                for ip in id.ipv4.iter().take(usize::from(id.ipv4_count)) {
                    m.put_bytes(i::IPV4, ip)?;
                }
                for ip in id.ipv6.iter().take(usize::from(id.ipv6_count)) {
                    m.put_bytes(i::IPV6, ip)?;
                }
                Ok(())
            })?;
            m.put_nest(a::TENANT, |m| {
                use attr::tenant as t;
                m.put_u32(t::VNI, tenant.vni)?;
                m.put_bytes(t::LOCAL_MAC, &tenant.local_mac)?;
                m.put_bytes(t::LOCAL_IP, &tenant.local_ip)
            })?;
            m.put_nest(a::POLICY, |m| {
                use attr::policy as p;
                m.put_u8(p::QUARANTINED, u8::from(policy.quarantined))?;
                m.put_u8(p::MISS_POLICY, policy.miss_policy)?;
                m.put_u32(p::MISS_EVENTS_PER_SEC, policy.miss_events_per_sec)
            })?;
            m.put_nest(a::COUNTERS, |m| {
                put_counters(m, &counters.counters, evictions)
            })?;
            m.put_u8(a::FABRIC_LINK, u8::from(self.fabric_link()))
        })
    }
}

/// Port counters: traffic, every drop reason by name, RME counters.
fn put_counters(
    m: &mut kernel::net::netlink::Msg<'_>,
    c: &[u64; oem::PORT_COUNTERS],
    evictions: u64,
) -> Result {
    use crate::regs::guest::{Stat, STAT_COUNT, STAT_NAMES};
    use attr::counters as a;
    m.put_u64(a::TX_PACKETS, c[Stat::TxPackets as usize])?;
    m.put_u64(a::TX_BYTES, c[Stat::TxBytes as usize])?;
    m.put_u64(a::RX_PACKETS, c[Stat::RxPackets as usize])?;
    m.put_u64(a::RX_BYTES, c[Stat::RxBytes as usize])?;
    for (i, name) in STAT_NAMES.iter().enumerate() {
        if !(name.starts_with("tx_drop") || name.starts_with("rx_drop")) {
            continue;
        }
        m.put_nest(a::DROPS, |m| {
            let mut buf = [0u8; 32];
            let n = name.len().min(31);
            buf[..n].copy_from_slice(&name.as_bytes()[..n]);
            m.put_bytes(attr::drop::REASON, &buf[..=n])?;
            m.put_u64(attr::drop::PACKETS, c[i])
        })?;
    }
    // The RME-only counters follow the guest-visible ones; the first is
    // `table_misses` (`ncsi_oem::RME_COUNTER_NAMES`).
    m.put_u64(a::TABLE_MISSES, c[STAT_COUNT])?;
    m.put_u64(a::EVICTIONS, evictions)?;
    m.put_u64(a::GUEST_RO_WRITES, c[Stat::GuestRoWrites as usize])
}

fn put_flow(
    m: &mut kernel::net::netlink::Msg<'_>,
    r: &Rule,
    c: flow_table::Counters,
    slot: Option<u32>,
) -> Result {
    use attr::flow as a;
    m.put_u32(a::ID, r.id)?;
    m.put_u16(a::PRIORITY, r.priority)?;
    m.put_u8(a::ACTION, r.action)?;
    if r.meter != oem::NO_METER {
        m.put_u16(a::METER, r.meter)?;
    }
    if r.action == oem::ACTION_ENCAP {
        m.put_u16(a::VTEP, r.vtep)?;
    }
    m.put_nest(a::MATCH, |m| put_match(m, &r.key, &r.mask))?;
    m.put_u64(a::PACKETS, c.packets)?;
    m.put_u64(a::BYTES, c.bytes)?;
    if let Some(s) = slot {
        m.put_u32(a::NIC_SLOT, s)?;
    }
    Ok(())
}

impl Rme {
    fn tenant_reset(&self, req: &mut Request<'_>) -> Result {
        use attr::tenancy as a;
        let (ended, evictions) = self
            .with_state(|sb, st| Ok((st.end_tenancy(sb)?, st.evictions)))
            .map_err(|e| nic_error(req, e))?;
        pr_info!(
            "tenancy ended: {} rules removed, {} packets / {} bytes billed\n",
            ended.flows,
            ended.billed.packets,
            ended.billed.bytes
        );
        req.reply(cmd::TENANT_RESET, |m| {
            m.put_u32(a::FLOWS, ended.flows)?;
            m.put_u64(a::PACKETS, ended.billed.packets)?;
            m.put_u64(a::BYTES, ended.billed.bytes)?;
            m.put_nest(a::COUNTERS, |m| {
                put_counters(m, &ended.port.counters, evictions)
            })
        })
    }
}

impl Handler for Rme {
    fn doit(&self, command: u8, req: &mut Request<'_>) -> Result {
        match command {
            cmd::DEV_GET => self.dev_get(req),
            cmd::IDENTITY_SET => self.identity_set(req),
            cmd::TENANT_SET => self.tenant_set(req),
            cmd::POLICY_SET => self.policy_set(req),
            cmd::VTEP_SET => self.vtep_set(req),
            cmd::METER_SET => self.meter_set(req),
            cmd::FLOW_ADD => self.flow_add(req),
            cmd::FLOW_DEL => self.flow_del(req),
            cmd::FLOW_GET => self.flow_get(req),
            cmd::TENANT_RESET => self.tenant_reset(req),
            _ => Err(EOPNOTSUPP),
        }
    }

    fn dumpit(&self, command: u8, dump: &mut Dump<'_>) -> Result {
        match command {
            cmd::FLOW_GET => self.with_state(|sb, st| {
                if dump.position() == 0 {
                    st.fresh_counters(sb, dump.sender_is_admin())?;
                }
                let mut next = u32::try_from(dump.position()).unwrap_or(u32::MAX).max(1);
                while let Some((rule, c)) = st.table.next_from(next) {
                    let slot = st.slot_of_rule(rule.id);
                    if !dump.add(cmd::FLOW_GET, |m| put_flow(m, &rule, c, slot))? {
                        break;
                    }
                    next = rule.id.saturating_add(1);
                    dump.set_position(u64::from(next));
                    if rule.id == u32::MAX {
                        break;
                    }
                }
                Ok(())
            }),
            cmd::VTEP_GET => dump_slots(
                self,
                dump,
                cmd::VTEP_GET,
                |st: &State, i| st.vteps.get(i).copied().flatten().map(|v| (v.index, v)),
                |m, v: VtepRecord| {
                    use attr::vtep as a;
                    m.put_u16(a::INDEX, v.index)?;
                    m.put_bytes(a::MAC, &v.mac)?;
                    m.put_bytes(a::IP, &v.ip)
                },
            ),
            cmd::METER_GET => {
                // The counters are read once, as the dump starts; its
                // continuations report that read.
                if dump.position() == 0 {
                    let admin = dump.sender_is_admin();
                    self.with_state(|sb, st| st.fresh_meter_counters(sb, admin))?;
                }
                dump_slots(
                    self,
                    dump,
                    cmd::METER_GET,
                    |st: &State, i| {
                        let v = st.meters.get(i).copied().flatten()?;
                        Some((v.index, (v, st.meter_counters(v.index))))
                    },
                    |m, (v, c): (MeterRecord, Option<MeterCountersRecord>)| {
                        use attr::meter as a;
                        m.put_u16(a::INDEX, v.index)?;
                        m.put_u64(a::RATE, v.rate)?;
                        m.put_u32(a::BURST, v.burst)?;
                        let unit = if v.counts_packets() {
                            meter_unit::PACKETS
                        } else {
                            meter_unit::BYTES
                        };
                        m.put_u8(a::UNIT, unit)?;
                        // A meter set after the read has no counters yet.
                        if let Some(c) = c {
                            m.put_u64(a::PASSED_PACKETS, c.passed_packets)?;
                            m.put_u64(a::PASSED_BYTES, c.passed_bytes)?;
                            m.put_u64(a::DROPPED_PACKETS, c.dropped_packets)?;
                            m.put_u64(a::DROPPED_BYTES, c.dropped_bytes)?;
                        }
                        Ok(())
                    },
                )
            }
            _ => Err(EOPNOTSUPP),
        }
    }
}

/// Dumps the set entries of a 256-slot object.
fn dump_slots<V: Copy>(
    rme: &Rme,
    dump: &mut Dump<'_>,
    command: u8,
    get: impl Fn(&State, usize) -> Option<(u16, V)>,
    put: impl Fn(&mut kernel::net::netlink::Msg<'_>, V) -> Result,
) -> Result {
    rme.with_state(|_, st| {
        let start = usize::try_from(dump.position()).unwrap_or(usize::MAX);
        for i in start..crate::control::VTEP_SLOTS {
            if let Some((_, v)) = get(st, i) {
                if !dump.add(command, |m| put(m, v))? {
                    return Ok(());
                }
            }
            dump.set_position(i as u64 + 1);
        }
        Ok(())
    })
}
