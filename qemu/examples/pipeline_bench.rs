// SPDX-License-Identifier: GPL-2.0

//! TX pipeline cost per packet with 16 flow entries and with a full table.
//!
//! Each packet goes through the whole guest-to-fabric path the device runs:
//! parse, anti-spoofing, flow lookup, meter, VXLAN encapsulation and
//! counters. The tenant's flows are exact 5-tuple rules (one per TCP
//! connection, as an RME installs them from table misses) plus a subnet
//! rule and a deny rule. The full table is probed over 1024 connections,
//! the small one over the 14 it holds, each with an exact rule.
//!
//! Run: `cargo run --release --example pipeline_bench [table-size] [seconds]`

use std::hint::black_box;
use std::time::{Duration, Instant};

use bmgnic_model::ncsi_oem::{
    self as oem, FlowKey, FlowRecord, IdentityRecord, MeterRecord, Record, TenantRecord, VtepRecord,
};
use bmgnic_model::pipeline;
use bmgnic_model::rme::RmeBank;

const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0, 0xb0, 0, 1];
const GUEST_IP: [u8; 4] = [10, 0, 0, 1];
const CONNECTIONS: usize = 1024;
const ROUNDS: u32 = 3;

fn set<R: Record>(rme: &mut RmeBank, object: u8, records: &[R]) {
    if let Err(reason) = rme.apply(object, records, 0) {
        panic!("OEM SET of object {object} refused: {reason:#x}");
    }
}

fn ip16(a: [u8; 4]) -> [u8; 16] {
    let mut r = [0; 16];
    r[..4].copy_from_slice(&a);
    r
}

/// Connection `i`: guest port 32768 + i to 10.1.x.y:443.
fn connection(i: usize) -> ([u8; 4], u16) {
    ([10, 1, (i >> 8) as u8, i as u8], 32768 + (i % 16384) as u16)
}

fn exact_rule(slot: u32, i: usize) -> FlowRecord {
    let (dst, sport) = connection(i);
    let key = FlowKey {
        ip_proto: 6,
        ethertype: 0x0800,
        l4_src: sport,
        l4_dst: 443,
        ip_src: ip16(GUEST_IP),
        ip_dst: ip16(dst),
        ..FlowKey::default()
    };
    let mask = FlowKey {
        in_port: 0xff,
        ip_proto: 0xff,
        ethertype: 0xffff,
        l4_src: 0xffff,
        l4_dst: 0xffff,
        ip_src: ip16([255; 4]),
        ip_dst: ip16([255; 4]),
        ..FlowKey::default()
    };
    FlowRecord {
        slot,
        priority: 100,
        action: oem::ACTION_ENCAP,
        meter: 0,
        vtep: (i % 4) as u16,
        key,
        mask,
    }
}

fn bank(table_size: usize) -> RmeBank {
    let mut rme = RmeBank::new(table_size);
    let mut id = IdentityRecord {
        mac: GUEST_MAC,
        mtu_cap: 1500,
        ipv4_count: 1,
        ..IdentityRecord::default()
    };
    id.ipv4[0] = GUEST_IP;
    set(&mut rme, oem::OBJ_IDENTITY, &[id]);
    let tenant = TenantRecord {
        vni: 5001,
        local_mac: [2, 0, 0, 0, 0, 1],
        local_ip: [192, 168, 0, 1],
    };
    set(&mut rme, oem::OBJ_TENANT, &[tenant]);
    let vteps: Vec<VtepRecord> = (0..4)
        .map(|i| VtepRecord {
            index: i,
            mac: [2, 0, 0, 0, 1, i as u8],
            ip: [192, 168, 1, i as u8],
        })
        .collect();
    set(&mut rme, oem::OBJ_VTEP, &vteps);
    // A meter far above the offered rate: its cost is measured, not its effect.
    let meter = MeterRecord {
        flags: 0,
        index: 0,
        rate: u64::MAX / 4,
        burst: u32::MAX,
    };
    set(&mut rme, oem::OBJ_METER, &[meter]);
    // Slot 0: deny telnet; slot 1: the tenant subnet; then exact rules.
    let deny = FlowRecord {
        slot: 0,
        priority: 200,
        action: oem::ACTION_DROP,
        meter: oem::NO_METER,
        vtep: 0,
        key: FlowKey {
            ethertype: 0x0800,
            ip_proto: 6,
            l4_dst: 23,
            ..FlowKey::default()
        },
        mask: FlowKey {
            ethertype: 0xffff,
            ip_proto: 0xff,
            l4_dst: 0xffff,
            ..FlowKey::default()
        },
    };
    let subnet = FlowRecord {
        slot: 1,
        priority: 10,
        action: oem::ACTION_ENCAP,
        meter: oem::NO_METER,
        vtep: 0,
        key: FlowKey {
            ethertype: 0x0800,
            ip_dst: ip16([10, 1, 0, 0]),
            ..FlowKey::default()
        },
        mask: FlowKey {
            ethertype: 0xffff,
            ip_dst: ip16([255, 255, 0, 0]),
            ..FlowKey::default()
        },
    };
    set(&mut rme, oem::OBJ_FLOW, &[deny, subnet]);
    // Fill the rest: the probed connections first (so both tables hit them
    // all), then others.
    let exact = table_size.saturating_sub(2);
    let rules: Vec<FlowRecord> = (0..exact)
        .map(|n| exact_rule(2 + n as u32, n % CONNECTIONS + (n / CONNECTIONS) * 65536))
        .collect();
    for chunk in rules.chunks(oem::max_records(FlowRecord::LEN)) {
        set(&mut rme, oem::OBJ_FLOW, chunk);
    }
    rme
}

fn packet(i: usize) -> Vec<u8> {
    let (dst, sport) = connection(i);
    let mut f = vec![2, 0, 0, 0, 0, 2];
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&GUEST_IP);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&443u16.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
    f
}

/// Nanoseconds per packet over `time`.
fn measure(rme: &mut RmeBank, packets: &[Vec<u8>], time: Duration) -> f64 {
    let mut out = Vec::with_capacity(2048);
    let mut events = Vec::new();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < time {
        for p in packets {
            let r = pipeline::transmit(rme, black_box(p), n, &mut out, &mut events);
            black_box(&r);
            debug_assert!(r.is_ok());
            n += 1;
        }
        events.clear();
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let full: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4096);
    let secs: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let small = 16;
    let mut small_bank = bank(small);
    let mut full_bank = bank(full);
    // Each table holds exact rules for connections 0..size-2. The small
    // table is probed over its 14 connections; the full one over 1024
    // distinct connections, so that its larger working set costs what it
    // costs (cache misses included).
    let probes_small: Vec<Vec<u8>> = (0..small - 2)
        .cycle()
        .take(CONNECTIONS)
        .map(packet)
        .collect();
    let probes_full: Vec<Vec<u8>> = (0..CONNECTIONS.min(full - 2)).map(packet).collect();
    for (rme, probes) in [
        (&mut small_bank, &probes_small),
        (&mut full_bank, &probes_full),
    ] {
        for p in probes {
            let r = pipeline::transmit(rme, p, 0, &mut Vec::new(), &mut Vec::new());
            assert!(r.is_ok(), "probe packet dropped: {r:?}");
        }
    }
    let time = Duration::from_secs_f64(secs / f64::from(ROUNDS));
    let (mut best_small, mut best_full) = (f64::MAX, f64::MAX);
    for _ in 0..ROUNDS {
        best_small = best_small.min(measure(&mut small_bank, &probes_small, time));
        best_full = best_full.min(measure(&mut full_bank, &probes_full, time));
    }
    println!("TX pipeline (parse, anti-spoof, lookup, meter, VXLAN encap, counters):");
    println!("  {small:>7} flow entries: {best_small:8.1} ns/packet");
    println!(
        "  {full:>7} flow entries: {best_full:8.1} ns/packet ({} used)",
        full_bank.flows.len()
    );
    println!(
        "  ratio full/16: {:.3} (target <= 1.2)",
        best_full / best_small
    );
}
