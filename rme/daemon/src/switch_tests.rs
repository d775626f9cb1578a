// SPDX-License-Identifier: GPL-2.0

//! The switch agent against an in-memory module: what a controller sees.

use std::time::{Duration, Instant};

use crate::mapping::{PORT_FABRIC, PORT_HOST, TUNNEL_PORT_BASE};
use crate::openflow::action::{Action, Instruction};
use crate::openflow::consts::{err, flow_mod as fm, meter, msg, port, port_status, removed, role};
use crate::openflow::consts::{GROUP_ANY, NO_BUFFER, TABLE_ALL};
use crate::openflow::message::{
    self, FlowMod, FlowStatsRequest, Message, MeterBand, MeterMod, MultipartReply, MultipartRequest,
};
use crate::openflow::oxm::{Field, Masked, Match};
use crate::rme::*;
use crate::switch::{Identity, Switch};

fn switch(capacity: usize) -> Switch<MemoryRme> {
    Switch::new(
        MemoryRme::new(capacity),
        Identity {
            datapath_id: 1,
            vteps: vec![1],
            serial: "test".into(),
        },
        None,
    )
}

fn udp_to(p: u16) -> Match {
    Match::new(vec![
        Field::InPort(PORT_HOST),
        Field::EthType(0x0800),
        Field::IpProto(17),
        Field::UdpDst(p),
    ])
}

fn flow(command: u8, matching: Match, actions: Vec<Action>) -> FlowMod {
    FlowMod {
        cookie: 0,
        cookie_mask: 0,
        table_id: 0,
        command,
        idle_timeout: 0,
        hard_timeout: 0,
        priority: 100,
        buffer_id: NO_BUFFER,
        out_port: port::ANY,
        out_group: GROUP_ANY,
        flags: fm::FLAG_SEND_FLOW_REM,
        matching,
        instructions: vec![Instruction::ApplyActions(actions)],
    }
}

fn encap(vni: u64) -> Vec<Action> {
    vec![
        Action::SetField(Field::TunnelId(Masked::exact(vni))),
        Action::Output {
            port: TUNNEL_PORT_BASE + 1,
            max_len: 0,
        },
    ]
}

/// Sends `m` as a controller would (encoded and decoded on the way).
fn send(s: &mut Switch<MemoryRme>, m: Message, now: Instant) -> Vec<Message> {
    let raw = message::encode(9, &m).expect("fits");
    let (xid, m) = message::decode(&raw).expect("valid");
    s.handle(xid, m, &raw, now)
        .into_iter()
        .map(|(_, m)| m)
        .collect()
}

fn error_of(replies: &[Message]) -> Option<(u16, u16)> {
    replies.iter().find_map(|m| match m {
        Message::Error { kind, code, .. } => Some((*kind, *code)),
        _ => None,
    })
}

fn flow_stats(s: &mut Switch<MemoryRme>, now: Instant) -> Vec<(u64, u64, u64)> {
    let q = FlowStatsRequest {
        table_id: TABLE_ALL,
        out_port: port::ANY,
        out_group: GROUP_ANY,
        cookie: 0,
        cookie_mask: 0,
        matching: Match::default(),
    };
    let replies = send(
        s,
        Message::MultipartRequest {
            flags: 0,
            body: MultipartRequest::Flow(q),
        },
        now,
    );
    replies
        .iter()
        .flat_map(|m| match m {
            Message::MultipartReply {
                body: MultipartReply::Flow(f),
                ..
            } => f
                .iter()
                .map(|f| (f.cookie, f.packet_count, f.byte_count))
                .collect(),
            _ => vec![],
        })
        .collect()
}

#[test]
fn add_modify_delete_keep_billing_whole() {
    let now = Instant::now();
    let mut s = switch(16);
    let mut add = flow(fm::ADD, udp_to(5201), encap(5001));
    add.cookie = 42;
    assert!(send(&mut s, Message::FlowMod(add), now).is_empty());
    assert_eq!(
        s.rme().vni,
        Some(5001),
        "the tenant's VNI comes from the flow"
    );
    let (&id, &(spec, ..)) = s.rme().rules.iter().next().expect("a rule");
    assert_eq!(spec.action, FlowAction::Encap { vtep: 1 });
    s.rme().hit(id, 10, 1000);
    assert_eq!(flow_stats(&mut s, now), vec![(42, 10, 1000)]);

    // Modify: a new rule replaces the old; its counters are folded in.
    let modify = flow(
        fm::MODIFY_STRICT,
        udp_to(5201),
        vec![Action::Output {
            port: PORT_FABRIC,
            max_len: 0,
        }],
    );
    assert!(send(&mut s, Message::FlowMod(modify), now).is_empty());
    assert_eq!(s.rme().rules.len(), 1);
    let (&id2, &(spec2, ..)) = s.rme().rules.iter().next().expect("a rule");
    assert_ne!(id2, id);
    assert_eq!(spec2.action, FlowAction::Allow);
    s.rme().hit(id2, 5, 500);
    assert_eq!(flow_stats(&mut s, now), vec![(42, 15, 1500)]);

    // Delete: FLOW_REMOVED with everything the flow counted.
    let later = now + Duration::from_secs(3);
    let replies = send(
        &mut s,
        Message::FlowMod(flow(fm::DELETE, Match::default(), vec![])),
        later,
    );
    match replies.as_slice() {
        [Message::FlowRemoved(r)] => {
            assert_eq!(
                (r.reason, r.packet_count, r.byte_count, r.cookie),
                (removed::DELETE, 15, 1500, 42)
            );
            assert_eq!(r.duration_sec, 3);
        }
        other => panic!("expected FLOW_REMOVED, got {other:?}"),
    }
    assert!(s.rme().rules.is_empty());
}

#[test]
fn a_full_table_and_refused_flows_change_nothing() {
    let now = Instant::now();
    let mut s = switch(1);
    assert!(send(
        &mut s,
        Message::FlowMod(flow(fm::ADD, udp_to(1), vec![])),
        now
    )
    .is_empty());
    let replies = send(
        &mut s,
        Message::FlowMod(flow(fm::ADD, udp_to(2), vec![])),
        now,
    );
    assert_eq!(
        error_of(&replies),
        Some((err::FLOW_MOD_FAILED, err::flow_mod::TABLE_FULL))
    );
    let vlan = Match::new(vec![Field::VlanVid(Masked::exact(0x1005))]);
    let replies = send(&mut s, Message::FlowMod(flow(fm::ADD, vlan, vec![])), now);
    assert_eq!(
        error_of(&replies),
        Some((err::BAD_MATCH, err::matching::BAD_FIELD))
    );
    let other_vni = flow(fm::ADD, udp_to(3), encap(1));
    s.rme().rules.clear();
    assert!(send(
        &mut s,
        Message::FlowMod(flow(fm::ADD, udp_to(4), encap(5001))),
        now
    )
    .is_empty());
    let replies = send(&mut s, Message::FlowMod(other_vni), now);
    assert_eq!(
        error_of(&replies),
        Some((err::BAD_ACTION, err::action::BAD_SET_ARGUMENT))
    );
    let mut table1 = flow(fm::ADD, udp_to(5), vec![]);
    table1.table_id = 1;
    let replies = send(&mut s, Message::FlowMod(table1), now);
    assert_eq!(
        error_of(&replies),
        Some((err::FLOW_MOD_FAILED, err::flow_mod::BAD_TABLE_ID))
    );
    assert_eq!(s.flow_count(), 2);
}

#[test]
fn idle_and_hard_timeouts() {
    let t0 = Instant::now();
    let mut s = switch(16);
    let mut idle = flow(fm::ADD, udp_to(1), vec![]);
    idle.idle_timeout = 10;
    let mut hard = flow(fm::ADD, udp_to(2), vec![]);
    hard.hard_timeout = 30;
    hard.cookie = 2;
    send(&mut s, Message::FlowMod(idle), t0);
    send(&mut s, Message::FlowMod(hard), t0);
    let idle_rule = *s.rme().rules.keys().next().expect("rule");
    // Traffic keeps the idle flow alive.
    for sec in [5, 10, 15] {
        s.rme().hit(idle_rule, 1, 100);
        assert!(
            s.tick(t0 + Duration::from_secs(sec)).is_empty(),
            "at {sec} s"
        );
    }
    let out = s.tick(t0 + Duration::from_secs(26));
    match out.as_slice() {
        [Message::FlowRemoved(r)] => {
            assert_eq!((r.reason, r.packet_count), (removed::IDLE_TIMEOUT, 3))
        }
        other => panic!("expected the idle flow to go, got {other:?}"),
    }
    let out = s.tick(t0 + Duration::from_secs(30));
    match out.as_slice() {
        [Message::FlowRemoved(r)] => assert_eq!((r.reason, r.cookie), (removed::HARD_TIMEOUT, 2)),
        other => panic!("expected the hard flow to go, got {other:?}"),
    }
    assert!(s.rme().rules.is_empty());
}

#[test]
fn meters_and_the_flows_that_use_them() {
    let now = Instant::now();
    let mut s = switch(16);
    let meter_mod = |command, rate| MeterMod {
        command,
        flags: meter::FLAG_KBPS,
        meter_id: 3,
        bands: vec![MeterBand {
            kind: meter::BAND_DROP,
            rate,
            burst_size: 0,
            extra: vec![0; 4],
        }],
    };
    let mut metered = flow(
        fm::ADD,
        udp_to(1),
        vec![Action::Output {
            port: PORT_FABRIC,
            max_len: 0,
        }],
    );
    metered.instructions.insert(0, Instruction::Meter(3));
    let replies = send(&mut s, Message::FlowMod(metered.clone()), now);
    assert_eq!(
        error_of(&replies),
        Some((err::METER_MOD_FAILED, err::meter_mod::UNKNOWN_METER))
    );
    assert!(send(&mut s, Message::MeterMod(meter_mod(meter::ADD, 8000)), now).is_empty());
    assert_eq!(s.rme().meters[&3].rate, 1_000_000);
    let again = send(&mut s, Message::MeterMod(meter_mod(meter::ADD, 8000)), now);
    assert_eq!(
        error_of(&again),
        Some((err::METER_MOD_FAILED, err::meter_mod::METER_EXISTS))
    );
    assert!(send(&mut s, Message::FlowMod(metered), now).is_empty());
    assert_eq!(
        s.rme().rules.values().next().map(|r| r.0.meter),
        Some(Some(3))
    );
    assert!(send(
        &mut s,
        Message::MeterMod(meter_mod(meter::MODIFY, 16000)),
        now
    )
    .is_empty());
    assert_eq!(s.rme().meters[&3].rate, 2_000_000);
    // METER stats are the NIC's counts: what reached the meter, and what
    // its drop band dropped.
    s.rme().meter_counts.insert(
        3,
        MeterCounters {
            passed_packets: 10,
            passed_bytes: 14_000,
            dropped_packets: 30,
            dropped_bytes: 42_000,
        },
    );
    let replies = send(
        &mut s,
        Message::MultipartRequest {
            flags: 0,
            body: MultipartRequest::Meter {
                meter_id: meter::ALL,
            },
        },
        now,
    );
    let Some(Message::MultipartReply {
        body: MultipartReply::Meter(m),
        ..
    }) = replies.first()
    else {
        panic!("expected METER stats, got {replies:?}");
    };
    assert_eq!(
        (m[0].meter_id, m[0].flow_count, m[0].packet_in_count),
        (3, 1, 40)
    );
    assert_eq!(m[0].byte_in_count, 56_000);
    assert_eq!(m[0].bands, vec![(30, 42_000)]);
    // Deleting the meter removes its flows, saying why.
    let out = send(&mut s, Message::MeterMod(meter_mod(meter::DELETE, 0)), now);
    assert!(
        matches!(out.as_slice(), [Message::FlowRemoved(r)] if r.reason == removed::METER_DELETE)
    );
    assert!(s.rme().rules.is_empty());
}

#[test]
fn a_slave_cannot_write_and_stale_masters_are_refused() {
    let now = Instant::now();
    let mut s = switch(16);
    let role_req = |r, g| Message::RoleRequest {
        role: r,
        generation_id: g,
    };
    let reply = send(&mut s, role_req(role::SLAVE, 5), now);
    assert_eq!(
        reply,
        vec![Message::RoleReply {
            role: role::SLAVE,
            generation_id: 5
        }]
    );
    let replies = send(
        &mut s,
        Message::FlowMod(flow(fm::ADD, udp_to(1), vec![])),
        now,
    );
    assert_eq!(
        error_of(&replies),
        Some((err::BAD_REQUEST, err::request::IS_SLAVE))
    );
    let stale = send(&mut s, role_req(role::MASTER, 4), now);
    assert_eq!(
        error_of(&stale),
        Some((err::ROLE_REQUEST_FAILED, err::role::STALE))
    );
    assert!(matches!(
        send(&mut s, role_req(role::MASTER, 6), now).as_slice(),
        [Message::RoleReply { .. }]
    ));
    assert!(send(
        &mut s,
        Message::FlowMod(flow(fm::ADD, udp_to(1), vec![])),
        now
    )
    .is_empty());
}

#[test]
fn misses_the_module_served_are_not_packet_ins() {
    let mut s = switch(16);
    let key = FlowMatch {
        in_port: Some(0),
        ethertype: Some(0x0800),
        ip_proto: Some(17),
        ip_dst: Some(IpPrefix {
            addr: [10, 0, 0, 2],
            len: 32,
        }),
        l4_dst: Some(5201),
        ..Default::default()
    };
    let served = RmeEvent::TableMiss {
        count: 1,
        matching: key,
        installed: true,
    };
    assert!(s.on_event(&served).is_empty());
    let missed = RmeEvent::TableMiss {
        count: 1,
        matching: key,
        installed: false,
    };
    match s.on_event(&missed).as_slice() {
        [Message::PacketIn(p)] => {
            assert!(p.matching.fields.contains(&Field::UdpDst(5201)));
            assert_eq!(p.data.len(), usize::from(p.total_len));
            // Ethernet, IPv4 (checksum valid), UDP destination port.
            assert_eq!(&p.data[12..14], &[0x08, 0x00]);
            let ip = &p.data[14..34];
            let mut sum: u32 = ip
                .chunks(2)
                .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
                .sum();
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            assert_eq!(sum, 0xffff);
            assert_eq!(&p.data[36..38], &5201u16.to_be_bytes());
            // What the controller learns installs as a rule.
            let f = flow(fm::ADD, p.matching.clone(), vec![]);
            let raw = message::encode(1, &Message::FlowMod(f)).expect("fits");
            assert!(message::decode(&raw).is_ok());
        }
        other => panic!("expected one PACKET_IN, got {other:?}"),
    }
}

#[test]
fn quarantine_is_a_port_status() {
    let now = Instant::now();
    let mut s = switch(16);
    assert!(s.tick(now).is_empty());
    s.rme().dev.quarantined = true;
    match s.tick(now).as_slice() {
        [Message::PortStatus { reason, port }] => {
            assert_eq!(
                (*reason, port.port_no, port.state),
                (port_status::MODIFY, PORT_HOST, port_status::STATE_BLOCKED)
            );
        }
        other => panic!("expected PORT_STATUS, got {other:?}"),
    }
    assert!(s.tick(now).is_empty());
}

#[test]
fn a_fabric_link_change_is_a_port_status_at_once() {
    let now = Instant::now();
    let mut s = switch(16);
    assert!(s.tick(now).is_empty());
    let fabric = |msgs: &[Message]| match msgs {
        [Message::PortStatus { reason, port }] => {
            assert_eq!((*reason, port.port_no), (port_status::MODIFY, PORT_FABRIC));
            port.state
        }
        other => panic!("expected one PORT_STATUS, got {other:?}"),
    };
    // The cable is pulled: the module's event brings the news.
    s.rme().dev.fabric_link = false;
    let down = s.on_event(&RmeEvent::Link { up: false });
    assert_eq!(fabric(&down), port_status::STATE_LINK_DOWN);
    // Said once: the next tick has nothing to add.
    assert!(s.tick(now).is_empty());
    // Plugged back, the event lost: the tick's poll finds it.
    s.rme().dev.fabric_link = true;
    assert_eq!(fabric(&s.tick(now)), port_status::STATE_LIVE);
}

#[test]
fn port_stats_are_the_device_counters() {
    let now = Instant::now();
    let mut s = switch(16);
    s.rme().dev.counters = DevCounters {
        tx_packets: 7,
        tx_bytes: 700,
        rx_packets: 3,
        rx_bytes: 300,
        ..Default::default()
    };
    let replies = send(
        &mut s,
        Message::MultipartRequest {
            flags: 0,
            body: MultipartRequest::PortStats { port_no: port::ANY },
        },
        now,
    );
    let Some(Message::MultipartReply {
        body: MultipartReply::PortStats(p),
        ..
    }) = replies.first()
    else {
        panic!("expected PORT_STATS, got {replies:?}");
    };
    assert_eq!(
        (p[0].port_no, p[0].rx_packets, p[0].tx_bytes),
        (PORT_HOST, 7, 300)
    );
    assert_eq!(
        (p[1].port_no, p[1].tx_packets, p[1].rx_bytes),
        (PORT_FABRIC, 7, 300)
    );
}

#[test]
fn what_the_nic_cannot_do_is_refused_with_the_expected_error() {
    let now = Instant::now();
    let mut s = switch(16);
    let out = send(
        &mut s,
        Message::PacketOut {
            buffer_id: NO_BUFFER,
            in_port: port::CONTROLLER,
            actions: vec![Action::Output {
                port: PORT_HOST,
                max_len: 0,
            }],
            data: vec![0; 60],
        },
        now,
    );
    assert_eq!(
        error_of(&out),
        Some((err::BAD_REQUEST, err::request::EPERM))
    );
    let raw = {
        let mut r = message::encode(3, &Message::BarrierRequest).expect("fits");
        r[1] = msg::GROUP_MOD;
        r
    };
    let (xid, m) = message::decode(&raw).expect("a group mod decodes as unsupported");
    let out = s.handle(xid, m, &raw, now);
    assert!(
        matches!(out.as_slice(), [(3, Message::Error { kind, .. })] if *kind == err::BAD_REQUEST)
    );
    let mp = send(
        &mut s,
        Message::MultipartRequest {
            flags: 0,
            body: MultipartRequest::Other {
                kind: 6,
                body: vec![],
            },
        },
        now,
    );
    assert_eq!(
        error_of(&mp),
        Some((err::BAD_REQUEST, err::request::BAD_MULTIPART))
    );
}

#[test]
fn delete_by_cookie_mask_and_out_port() {
    let now = Instant::now();
    let mut s = switch(16);
    for (cookie, p) in [(0x100, 1), (0x101, 2), (0x200, 3)] {
        let mut f = flow(
            fm::ADD,
            udp_to(p),
            vec![Action::Output {
                port: PORT_FABRIC,
                max_len: 0,
            }],
        );
        f.cookie = cookie;
        send(&mut s, Message::FlowMod(f), now);
    }
    let mut del = flow(fm::DELETE, Match::default(), vec![]);
    del.cookie = 0x100;
    del.cookie_mask = 0xf00;
    let out = send(&mut s, Message::FlowMod(del), now);
    assert_eq!(out.len(), 2);
    assert_eq!(s.flow_count(), 1);
    let mut del = flow(fm::DELETE, Match::default(), vec![]);
    del.out_port = PORT_HOST;
    assert!(
        send(&mut s, Message::FlowMod(del), now).is_empty(),
        "no flow outputs to the host"
    );
    assert_eq!(s.flow_count(), 1);
}

#[test]
fn the_same_flow_in_other_words_replaces_it_after_removals() {
    let now = Instant::now();
    let mut s = switch(64);
    for p in 1..=5 {
        send(
            &mut s,
            Message::FlowMod(flow(fm::ADD, udp_to(p), vec![])),
            now,
        );
    }
    // Remove the second: the last flow moves into its place.
    send(
        &mut s,
        Message::FlowMod(flow(fm::DELETE_STRICT, udp_to(2), vec![])),
        now,
    );
    assert_eq!(s.flow_count(), 4);
    // The fifth flow again, fields in another order and with an all-ones
    // mask: the same flow, replaced rather than added.
    let mut fields = udp_to(5).fields;
    fields.reverse();
    fields.push(Field::EthSrc(Masked {
        value: [2, 0, 0, 0, 0, 1],
        mask: Some([0xff; 6]),
    }));
    let mut exact = udp_to(5).fields;
    exact.push(Field::EthSrc(Masked::exact([2, 0, 0, 0, 0, 1])));
    send(
        &mut s,
        Message::FlowMod(flow(fm::ADD, Match::new(exact), vec![])),
        now,
    );
    assert_eq!(s.flow_count(), 5);
    send(
        &mut s,
        Message::FlowMod(flow(fm::ADD, Match::new(fields), vec![])),
        now,
    );
    assert_eq!(s.flow_count(), 5, "an equivalent match was added twice");
    assert_eq!(
        s.rme().rules.len(),
        5,
        "the replaced rule is still in the module"
    );
    for p in [1, 3, 4, 5] {
        send(
            &mut s,
            Message::FlowMod(flow(fm::DELETE_STRICT, udp_to(p), vec![])),
            now,
        );
    }
    assert_eq!(s.flow_count(), 1);
}

#[test]
fn a_reloaded_module_gets_the_switch_state_with_counters_kept() {
    let now = Instant::now();
    let vtep = VtepConfig {
        index: 1,
        mac: [2, 0, 0, 0, 0, 2],
        ip: "192.168.0.2".parse().expect("an address"),
    };
    let provisioning = Provisioning {
        identity: None,
        local_vtep: Some((
            [2, 0, 0, 0, 0, 1],
            "192.168.0.1".parse().expect("an address"),
        )),
        vteps: vec![vtep],
    };
    let mut s = switch(16).with_provisioning(provisioning);
    let meter = MeterMod {
        command: meter::ADD,
        flags: meter::FLAG_KBPS,
        meter_id: 3,
        bands: vec![MeterBand {
            kind: meter::BAND_DROP,
            rate: 8000,
            burst_size: 0,
            extra: vec![0; 4],
        }],
    };
    assert!(send(&mut s, Message::MeterMod(meter), now).is_empty());
    let mut billed = flow(fm::ADD, udp_to(5201), encap(5001));
    billed.cookie = 1;
    let mut metered = flow(fm::ADD, udp_to(5203), encap(5001));
    metered.cookie = 2;
    metered.instructions.insert(0, Instruction::Meter(3));
    for f in [billed, metered] {
        assert!(send(&mut s, Message::FlowMod(f), now).is_empty());
    }
    let ids: Vec<u32> = s.rme().rules.keys().copied().collect();
    s.rme().hit(ids[0], 10, 1000);
    s.rme().hit(ids[1], 20, 2000);
    let before = flow_stats(&mut s, now);

    // Unloaded and loaded again: the module has no rule, meter or VTEP.
    // Traffic after the last reading is lost with the old module.
    s.rme().hit(ids[0], 5, 500);
    s.rme().reload();
    assert!(s.rme().rules.is_empty());
    // The next thing the switch does installs its state first.
    assert!(send(&mut s, Message::BarrierRequest, now)
        .iter()
        .all(|m| *m == Message::BarrierReply));
    assert_eq!(
        s.rme().vteps.get(&1),
        Some(&vtep),
        "VTEP not provisioned again"
    );
    assert_eq!(s.rme().vni, Some(5001), "the tenant's VNI not kept");
    assert_eq!(s.rme().meters[&3].rate, 1_000_000, "meter not set again");
    let specs: Vec<FlowSpec> = s.rme().rules.values().map(|r| r.0).collect();
    assert_eq!(specs.len(), 2);
    assert!(specs.iter().any(|f| f.meter == Some(3)));
    assert_eq!(flow_stats(&mut s, now), before, "counters not kept");
    let id = *s.rme().rules.keys().next().expect("a rule");
    s.rme().hit(id, 1, 100);
    let after = flow_stats(&mut s, now);
    let sum = |v: &[(u64, u64, u64)]| v.iter().map(|c| c.1).sum::<u64>();
    assert_eq!(
        sum(&after),
        sum(&before) + 1,
        "the new rules do not count on"
    );
}

#[test]
fn a_flow_the_reloaded_module_refuses_is_removed_not_kept() {
    let now = Instant::now();
    let mut s = switch(16);
    for (cookie, p) in [(1, 5201), (2, 5202)] {
        let mut f = flow(fm::ADD, udp_to(p), encap(5001));
        f.cookie = cookie;
        assert!(send(&mut s, Message::FlowMod(f), now).is_empty());
    }
    // The module comes back with room for one rule.
    s.rme().reload();
    s.rme().capacity = 1;
    let out = s.tick(now);
    let removed: Vec<(u64, u8)> = out
        .iter()
        .filter_map(|m| match m {
            Message::FlowRemoved(r) => Some((r.cookie, r.reason)),
            _ => None,
        })
        .collect();
    assert_eq!(removed.len(), 1, "one FLOW_REMOVED: {out:?}");
    assert_eq!(removed[0].1, removed::DELETE);
    assert_eq!(s.flow_count(), 1);
    assert_eq!(s.rme().rules.len(), 1);
    let kept = flow_stats(&mut s, now);
    assert_eq!(kept.len(), 1);
    assert_ne!(kept[0].0, removed[0].0, "the removed flow is still listed");
}

#[test]
fn a_message_that_meets_an_unannounced_reload() {
    let now = Instant::now();
    let mut s = switch(16);
    let mut kept = flow(fm::ADD, udp_to(5201), encap(5001));
    kept.cookie = 1;
    assert!(send(&mut s, Message::FlowMod(kept), now).is_empty());
    // An add that meets the new module is refused for it, then handled
    // again once the switch's state is back: the controller sees no error.
    s.rme().reload_unannounced();
    let mut added = flow(fm::ADD, udp_to(5202), encap(5001));
    added.cookie = 2;
    let replies = send(&mut s, Message::FlowMod(added), now);
    assert_eq!(error_of(&replies), None, "{replies:?}");
    assert_eq!(
        s.rme().rules.len(),
        2,
        "both flows are rules of the new module"
    );
    assert_eq!(s.flow_count(), 2);
    // A delete that meets it goes through: its FLOW_REMOVED is kept.
    s.rme().reload_unannounced();
    let mut delete = flow(fm::DELETE, udp_to(5201), vec![]);
    delete.priority = 100;
    let replies = send(&mut s, Message::FlowMod(delete), now);
    let removed: Vec<u64> = replies
        .iter()
        .filter_map(|m| match m {
            Message::FlowRemoved(r) => Some(r.cookie),
            _ => None,
        })
        .collect();
    assert_eq!(removed, vec![1], "{replies:?}");
    assert_eq!(s.flow_count(), 1);
    assert_eq!(s.rme().rules.len(), 1, "the remaining flow is a rule again");
}
