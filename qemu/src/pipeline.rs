// SPDX-License-Identifier: GPL-2.0

//! The per-packet isolation pipeline.
//!
//! TX (guest to fabric): quarantine → parse → anti-spoofing (source MAC and
//! IP must be the RME-assigned ones) → flow lookup → action (drop, allow,
//! VXLAN encapsulation toward a VTEP) → meter → flow counters.
//!
//! RX (fabric to guest): quarantine → outer checks (our VTEP, UDP 4789) →
//! VNI must be the tenant's → decapsulation → ingress rules.
//!
//! Every drop returns the guest-visible counter it is accounted under.
//! Pure functions of the RME bank and the frame, so that they are tested
//! and benchmarked without DMA or sockets.

use std::ops::Range;

use crate::ncsi_oem::{self as oem};
use crate::packet;
use crate::regs::guest::Stat;
use crate::rme::{Event, RmeBank, RmeCounter};
use crate::vxlan;

use crate::ncsi_oem::{ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_ICMPV6};

/// Whether `key`'s source addresses are the guest's own.
fn spoof_check(rme: &RmeBank, parsed: &packet::Parsed) -> Result<(), u8> {
    let key = &parsed.key;
    let parsed_arp_sender = parsed.arp_sender_mac;
    if !rme.spoof_check_enabled() {
        return Ok(());
    }
    let id = rme.identity();
    if key.eth_src != id.mac || parsed_arp_sender.is_some_and(|m| m != id.mac) {
        return Err(oem::VIOLATION_SPOOFED_MAC);
    }
    let ipv4_allowed = |ip: &[u8]| {
        id.ipv4[..usize::from(id.ipv4_count)]
            .iter()
            .any(|a| a[..] == ip[..4])
    };
    match key.ethertype {
        ETHERTYPE_IPV4 if !ipv4_allowed(&key.ip_src) => Err(oem::VIOLATION_SPOOFED_IP),
        // An ARP probe announces nothing yet (sender 0.0.0.0).
        ETHERTYPE_ARP if key.ip_src[..4] != [0; 4] && !ipv4_allowed(&key.ip_src) => {
            Err(oem::VIOLATION_SPOOFED_IP)
        }
        ETHERTYPE_IPV6 => {
            let assigned = id.ipv6[..usize::from(id.ipv6_count)].contains(&key.ip_src);
            // Duplicate address detection sends from ::, and the link-local
            // address derived from the assigned MAC (EUI-64) is the guest's.
            let dad = key.ip_src == [0; 16] && key.ip_proto == IPPROTO_ICMPV6;
            if assigned || dad || key.ip_src == link_local_of(&id.mac) {
                Ok(())
            } else {
                Err(oem::VIOLATION_SPOOFED_IP)
            }
        }
        _ => Ok(()),
    }
}

/// The EUI-64 IPv6 link-local address of `mac` (RFC 4291 appendix A).
pub fn link_local_of(mac: &[u8; 6]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfe;
    a[1] = 0x80;
    a[8] = mac[0] ^ 0x02;
    a[9] = mac[1];
    a[10] = mac[2];
    a[11] = 0xff;
    a[12] = 0xfe;
    a[13] = mac[3];
    a[14] = mac[4];
    a[15] = mac[5];
    a
}

/// Runs a guest frame through the TX pipeline. On success `out` holds the
/// frame to put on the fabric.
pub fn transmit(
    rme: &mut RmeBank,
    frame: &[u8],
    now_ns: u64,
    out: &mut Vec<u8>,
    events: &mut Vec<Event>,
) -> Result<(), Stat> {
    if rme.quarantined() {
        return Err(Stat::TxDropQuarantined);
    }
    let parsed = packet::parse(frame, oem::PORT_GUEST).map_err(|_| Stat::TxDropDenied)?;
    let key = parsed.key;
    if let Err(kind) = spoof_check(rme, &parsed) {
        events.push(Event::Spoofed { kind, key });
        return Err(Stat::TxDropSpoofed);
    }
    let Some(slot) = rme.flows.lookup(&key) else {
        rme.count(RmeCounter::TableMisses, 1);
        events.push(Event::Miss { key });
        if rme.policy().miss_policy != oem::MISS_ALLOW {
            return Err(Stat::TxDropTableMiss);
        }
        out.clear();
        out.extend_from_slice(frame);
        return Ok(());
    };
    let Some(rule) = rme.flows.get(slot).copied() else {
        return Err(Stat::TxDropDenied);
    };
    let bytes = frame.len() as u64;
    if rule.action == oem::ACTION_DROP {
        rme.flows.hit(slot, bytes, now_ns);
        return Err(Stat::TxDropDenied);
    }
    // A flow may name a meter the RME has not created yet: unmetered.
    if rule.meter != oem::NO_METER
        && rme.meters.admit(rule.meter, frame.len() as u32, now_ns) == Some(false)
    {
        return Err(Stat::TxDropMetered);
    }
    out.clear();
    if rule.action == oem::ACTION_ENCAP {
        let tenant = *rme.tenant();
        let Some(vtep) = rme.vtep(rule.vtep).copied() else {
            return Err(Stat::TxDropDenied);
        };
        if tenant.vni == 0 {
            return Err(Stat::TxDropDenied);
        }
        vxlan::encapsulate(frame, &tenant, &vtep, vxlan::flow_hash(&key), out)
            .map_err(|_| Stat::TxDropTooLong)?;
    } else {
        out.extend_from_slice(frame);
    }
    rme.flows.hit(slot, bytes, now_ns);
    Ok(())
}

/// Runs a fabric frame through the RX pipeline; returns the range of
/// `frame` to deliver to the guest.
pub fn receive(
    rme: &mut RmeBank,
    frame: &[u8],
    now_ns: u64,
    _events: &mut Vec<Event>,
) -> Result<Range<usize>, Stat> {
    if rme.quarantined() {
        return Err(Stat::RxDropQuarantined);
    }
    let tenant = *rme.tenant();
    let inner = if tenant.vni == 0 {
        // No tenant network yet: only an open device passes plain frames.
        if rme.spoof_check_enabled() {
            return Err(Stat::RxDropBadOuter);
        }
        0..frame.len()
    } else {
        let d = vxlan::decapsulate(frame, &tenant.local_mac, &tenant.local_ip)
            .map_err(|_| Stat::RxDropBadOuter)?;
        if d.vni != tenant.vni {
            return Err(Stat::RxDropWrongVni);
        }
        frame.len() - d.inner.len()..frame.len()
    };
    let Ok(parsed) = packet::parse(&frame[inner.clone()], oem::PORT_FABRIC) else {
        return Err(Stat::RxDropDenied);
    };
    // Ingress rules: a matching rule decides; without one the tenant's own
    // network is let in (isolation between tenants is the VNI check above).
    if let Some(slot) = rme.flows.lookup(&parsed.key) {
        let action = rme.flows.get(slot).map(|r| r.action);
        rme.flows.hit(slot, inner.len() as u64, now_ns);
        if action == Some(oem::ACTION_DROP) {
            return Err(Stat::RxDropDenied);
        }
    }
    Ok(inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncsi_oem::{
        FlowKey, FlowRecord, IdentityRecord, MeterCountersRecord, MeterRecord, OemHeader,
        PolicyRecord, Record, SlotRecord, TenantRecord, VtepRecord,
    };

    const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0, 0xb0, 0, 1];
    const PEER_MAC: [u8; 6] = [0x52, 0x54, 0, 0xb0, 0, 2];
    const GUEST_IP: [u8; 4] = [10, 0, 0, 1];
    const PEER_IP: [u8; 4] = [10, 0, 0, 2];
    const VNI: u32 = 0x1234;

    fn set<R: Record>(rme: &mut RmeBank, object: u8, records: &[R]) {
        rme.apply(object, records, 0).unwrap();
    }

    /// A tenant with one remote VTEP and an allow-by-encapsulation rule for
    /// its subnet.
    fn configured() -> RmeBank {
        let mut rme = RmeBank::new(64);
        let mut id = IdentityRecord {
            mac: GUEST_MAC,
            mtu_cap: 1500,
            ipv4_count: 1,
            ..IdentityRecord::default()
        };
        id.ipv4[0] = GUEST_IP;
        set(&mut rme, oem::OBJ_IDENTITY, &[id]);
        let tenant = TenantRecord {
            vni: VNI,
            local_mac: [2, 0, 0, 0, 0, 1],
            local_ip: [192, 168, 0, 1],
        };
        set(&mut rme, oem::OBJ_TENANT, &[tenant]);
        let vtep = VtepRecord {
            index: 3,
            mac: [2, 0, 0, 0, 0, 2],
            ip: [192, 168, 0, 2],
        };
        set(&mut rme, oem::OBJ_VTEP, &[vtep]);
        let mut mask = FlowKey {
            in_port: 0xff,
            ethertype: 0xffff,
            ..FlowKey::default()
        };
        mask.ip_dst[..4].copy_from_slice(&[255, 255, 255, 0]);
        let mut key = FlowKey {
            ethertype: ETHERTYPE_IPV4,
            ..FlowKey::default()
        };
        key.ip_dst[..4].copy_from_slice(&[10, 0, 0, 0]);
        let flow = FlowRecord {
            slot: 0,
            priority: 10,
            action: oem::ACTION_ENCAP,
            meter: oem::NO_METER,
            vtep: 3,
            key,
            mask,
        };
        set(&mut rme, oem::OBJ_FLOW, &[flow]);
        rme
    }

    fn udp(src_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], dport: u16, payload: usize) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&PEER_MAC);
        f.extend_from_slice(&src_mac);
        f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let total = (20 + 8 + payload) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.resize(f.len() + payload, 0xab);
        f
    }

    #[test]
    fn allowed_traffic_leaves_vxlan_encapsulated_with_the_tenant_vni() {
        let mut rme = configured();
        let f = udp(GUEST_MAC, GUEST_IP, PEER_IP, 5201, 100);
        let mut out = Vec::new();
        transmit(&mut rme, &f, 0, &mut out, &mut Vec::new()).unwrap();
        assert_eq!(out.len(), f.len() + 50);
        assert_eq!(&out[0..6], &[2, 0, 0, 0, 0, 2]);
        assert_eq!(&out[36..38], &4789u16.to_be_bytes());
        assert_eq!(&out[42..50], &[0x08, 0, 0, 0, 0, 0x12, 0x34, 0]);
        assert_eq!(&out[50..], &f[..]);
        let c = rme.flows.counters(0, 0).unwrap();
        assert_eq!((c.packets, c.bytes), (1, f.len() as u64));
        // And the receiving side takes it back.
        let mut back = RmeBank::new(4);
        let t = TenantRecord {
            vni: VNI,
            local_mac: [2, 0, 0, 0, 0, 2],
            local_ip: [192, 168, 0, 2],
        };
        set(&mut back, oem::OBJ_TENANT, &[t]);
        let inner = receive(&mut back, &out, 0, &mut Vec::new()).unwrap();
        assert_eq!(&out[inner], &f[..]);
    }

    #[test]
    fn spoofed_sources_are_dropped_and_reported() {
        let mut rme = configured();
        let mut events = Vec::new();
        let mut out = Vec::new();
        let other_mac = udp([0x52, 0x54, 0, 0, 0, 9], GUEST_IP, PEER_IP, 1, 10);
        assert_eq!(
            transmit(&mut rme, &other_mac, 0, &mut out, &mut events),
            Err(Stat::TxDropSpoofed)
        );
        let other_ip = udp(GUEST_MAC, [10, 0, 0, 66], PEER_IP, 1, 10);
        assert_eq!(
            transmit(&mut rme, &other_ip, 0, &mut out, &mut events),
            Err(Stat::TxDropSpoofed)
        );
        assert!(matches!(
            events[..],
            [
                Event::Spoofed {
                    kind: oem::VIOLATION_SPOOFED_MAC,
                    ..
                },
                Event::Spoofed {
                    kind: oem::VIOLATION_SPOOFED_IP,
                    ..
                }
            ]
        ));
        assert_eq!(
            link_local_of(&GUEST_MAC)[8..],
            [0x50, 0x54, 0, 0xff, 0xfe, 0xb0, 0, 1]
        );
    }

    #[test]
    fn higher_priority_deny_rule_drops_one_port() {
        let mut rme = configured();
        let mask = FlowKey {
            in_port: 0xff,
            ethertype: 0xffff,
            ip_proto: 0xff,
            l4_dst: 0xffff,
            ..FlowKey::default()
        };
        let key = FlowKey {
            ethertype: ETHERTYPE_IPV4,
            ip_proto: 17,
            l4_dst: 23,
            ..FlowKey::default()
        };
        let deny = FlowRecord {
            slot: 1,
            priority: 100,
            action: oem::ACTION_DROP,
            meter: oem::NO_METER,
            vtep: 0,
            key,
            mask,
        };
        set(&mut rme, oem::OBJ_FLOW, &[deny]);
        let mut out = Vec::new();
        let telnet = udp(GUEST_MAC, GUEST_IP, PEER_IP, 23, 10);
        assert_eq!(
            transmit(&mut rme, &telnet, 0, &mut out, &mut Vec::new()),
            Err(Stat::TxDropDenied)
        );
        let other = udp(GUEST_MAC, GUEST_IP, PEER_IP, 24, 10);
        assert!(transmit(&mut rme, &other, 0, &mut out, &mut Vec::new()).is_ok());
    }

    #[test]
    fn misses_follow_the_miss_policy_and_raise_events() {
        let mut rme = configured();
        let mut events = Vec::new();
        let offnet = udp(GUEST_MAC, GUEST_IP, [172, 16, 0, 1], 80, 10);
        let mut out = Vec::new();
        assert_eq!(
            transmit(&mut rme, &offnet, 0, &mut out, &mut events),
            Err(Stat::TxDropTableMiss)
        );
        assert!(matches!(events[..], [Event::Miss { .. }]));
        assert_eq!(rme.counter(RmeCounter::TableMisses), 1);
        let policy = PolicyRecord {
            miss_policy: oem::MISS_ALLOW,
            events: oem::EVENTS_TABLE_MISS,
            miss_events_per_sec: 2,
            ..PolicyRecord::default()
        };
        set(&mut rme, oem::OBJ_POLICY, &[policy]);
        assert!(transmit(&mut rme, &offnet, 0, &mut out, &mut events).is_ok());
        assert_eq!(out, offnet);
        // Five misses within a second: two reports, the rest counted and
        // carried by the next report.
        let many = vec![events[0]; 5];
        assert_eq!(rme.event_reports(&many, 10).len(), 2);
        assert_eq!(rme.counter(RmeCounter::MissEventsSuppressed), 3);
        let next = rme.event_reports(&many[..1], 2_000_000_000);
        let body = oem::MissEvent::decode(&next[0].1).unwrap();
        assert_eq!(body.misses, 4);
    }

    #[test]
    fn quarantine_stops_both_directions() {
        let mut rme = configured();
        let policy = PolicyRecord {
            quarantined: true,
            ..PolicyRecord::default()
        };
        set(&mut rme, oem::OBJ_POLICY, &[policy]);
        let f = udp(GUEST_MAC, GUEST_IP, PEER_IP, 5201, 10);
        let mut out = Vec::new();
        assert_eq!(
            transmit(&mut rme, &f, 0, &mut out, &mut Vec::new()),
            Err(Stat::TxDropQuarantined)
        );
        assert_eq!(
            receive(&mut rme, &f, 0, &mut Vec::new()),
            Err(Stat::RxDropQuarantined)
        );
    }

    #[test]
    fn rx_checks_outer_header_and_vni() {
        let mut rme = configured();
        let plain = udp(PEER_MAC, PEER_IP, GUEST_IP, 5201, 10);
        assert_eq!(
            receive(&mut rme, &plain, 0, &mut Vec::new()),
            Err(Stat::RxDropBadOuter)
        );
        // Another tenant's VNI toward our VTEP.
        let other = TenantRecord {
            vni: VNI + 1,
            local_mac: [2, 0, 0, 0, 0, 2],
            local_ip: [192, 168, 0, 2],
        };
        let to_us = VtepRecord {
            index: 0,
            mac: [2, 0, 0, 0, 0, 1],
            ip: [192, 168, 0, 1],
        };
        let mut outer = Vec::new();
        vxlan::encapsulate(&plain, &other, &to_us, 7, &mut outer).unwrap();
        assert_eq!(
            receive(&mut rme, &outer, 0, &mut Vec::new()),
            Err(Stat::RxDropWrongVni)
        );
    }

    #[test]
    fn a_meter_of_unknown_flags_is_refused_and_changes_nothing() {
        let mut rme = configured();
        let meter = |flags, rate| MeterRecord {
            flags,
            index: 3,
            rate,
            burst: 10,
        };
        set(
            &mut rme,
            oem::OBJ_METER,
            &[meter(oem::METER_FLAG_PACKETS, 100)],
        );
        assert_eq!(
            rme.apply(oem::OBJ_METER, &[meter(0x8000, 1)], 0),
            Err(oem::REASON_BAD_RECORD)
        );
        assert_eq!(rme.meters.get(3), Some(meter(oem::METER_FLAG_PACKETS, 100)));
    }

    #[test]
    fn meter_holds_a_flow_to_its_rate_over_a_simulated_second() {
        let mut rme = configured();
        set(
            &mut rme,
            oem::OBJ_METER,
            &[MeterRecord {
                flags: 0,
                index: 0,
                rate: 1_000_000,
                burst: 15_000,
            }],
        );
        let mut flow = rme.flows.get(0).copied().unwrap();
        flow.meter = 0;
        set(&mut rme, oem::OBJ_FLOW, &[flow]);
        let f = udp(GUEST_MAC, GUEST_IP, PEER_IP, 5201, 1458);
        let mut sent = 0u64;
        let mut out = Vec::new();
        // Offered at ten times the rate for one second.
        for i in 0..6_700u64 {
            let now = i * 1_000_000_000 / 6_700;
            if transmit(&mut rme, &f, now, &mut out, &mut Vec::new()).is_ok() {
                sent += f.len() as u64;
            }
        }
        let expected = 1_000_000 + 15_000;
        let error = (sent as f64 - expected as f64).abs() / expected as f64;
        assert!(error < 0.02, "sent {sent} bytes, expected about {expected}");

        // The meter counted both sides, as the RME reads them.
        let mut index = [0u8; SlotRecord::LEN];
        SlotRecord { slot: 0 }.encode(&mut index);
        let header = OemHeader {
            version: oem::OEM_VERSION,
            op: oem::OP_GET,
            object: oem::OBJ_METER_COUNTERS,
            count: 1,
        };
        let mut answer = Vec::new();
        let stats = [0; crate::regs::guest::STAT_COUNT];
        assert_eq!(
            rme.handle_oem(&header, &index, &mut answer, &stats, 0),
            Ok(1)
        );
        let c = MeterCountersRecord::decode(&answer).unwrap();
        assert!(c.in_use);
        assert_eq!(c.passed_bytes, sent);
        assert_eq!(c.passed_packets + c.dropped_packets, 6_700);
        assert_eq!(c.dropped_bytes, c.dropped_packets * f.len() as u64);
    }
}
