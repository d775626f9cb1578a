// SPDX-License-Identifier: GPL-2.0

//! Flow table lookup cost at 16 and 4096 entries.
//!
//! Tuple space search should cost about the same whatever the number of
//! entries, as long as they share few masks. Both tables hold a realistic
//! mix: a default rule, an ARP rule, four prefix rules under two masks, and
//! exact 5-tuple rules filling the rest under one mask. Lookups rotate over
//! 1024 keys: 70% hit an exact rule, 20% miss the exact rules but hit a
//! prefix, 10% fall through to the default rule.
//!
//! Run: `cargo run --release --example flow_lookup_bench [seconds]`
//! (default 1 s per table, measured in three interleaved rounds so that a
//! burst of load from other processes does not land on one table only; the
//! best round counts).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bmgnic_model::flow::FlowTable;
use bmgnic_model::ncsi_oem::{FlowKey, FlowRecord, ACTION_ALLOW, ACTION_DROP, NO_METER};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const TCP: u8 = 6;
const PROBE_KEYS: usize = 1024;
const ROUNDS: u32 = 3;

/// Slots of the non-exact rules; exact rules take the slots after them.
const DEFAULT_SLOT: u32 = 0;
const ARP_SLOT: u32 = 1;
const PREFIX_SLOTS: [u32; 4] = [2, 3, 4, 5];
const FIRST_EXACT_SLOT: u32 = 6;

fn ip4(a: [u8; 4]) -> [u8; 16] {
    let mut r = [0; 16];
    r[..4].copy_from_slice(&a);
    r
}

fn prefix_mask(len: u32) -> [u8; 16] {
    ip4(u32::MAX.checked_shl(32 - len).unwrap_or(0).to_be_bytes())
}

fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> FlowKey {
    FlowKey {
        in_port: 0,
        ip_proto: TCP,
        ethertype: ETHERTYPE_IPV4,
        l4_src: sport,
        l4_dst: dport,
        eth_src: [2, 0, 0, 0, 0, 1],
        eth_dst: [2, 0, 0, 0, 0, 2],
        ip_src: ip4(src),
        ip_dst: ip4(dst),
        ..FlowKey::default()
    }
}

/// The `i`-th exact flow: tenant host 10.0.x.y to a 172.16.0.0/16 service.
fn exact_flow(i: u32) -> FlowKey {
    let [_, _, hi, lo] = i.to_be_bytes();
    tcp(
        [10, 0, hi, lo],
        [172, 16, lo, hi],
        32768 + (i % 1000) as u16,
        443,
    )
}

fn rule(slot: u32, priority: u16, action: u8, key: FlowKey, mask: FlowKey) -> FlowRecord {
    FlowRecord {
        slot,
        priority,
        action,
        meter: NO_METER,
        vtep: 0,
        key: key.masked(&mask),
        mask,
    }
}

fn build_table(entries: u32) -> FlowTable {
    let mut table = FlowTable::new(entries);
    let mut set = |r: FlowRecord| {
        table
            .set(r)
            .unwrap_or_else(|e| panic!("bench rule {r:?}: {e}"));
    };
    set(rule(
        DEFAULT_SLOT,
        0,
        ACTION_DROP,
        FlowKey::default(),
        FlowKey::default(),
    ));
    let ethertype_only = FlowKey {
        ethertype: 0xffff,
        ..FlowKey::default()
    };
    let arp = FlowKey {
        ethertype: ETHERTYPE_ARP,
        ..FlowKey::default()
    };
    set(rule(ARP_SLOT, 10, ACTION_ALLOW, arp, ethertype_only));
    let dst_24 = FlowKey {
        ethertype: 0xffff,
        ip_dst: prefix_mask(24),
        ..FlowKey::default()
    };
    let src_16 = FlowKey {
        ethertype: 0xffff,
        ip_src: prefix_mask(16),
        ..FlowKey::default()
    };
    let prefixes = [
        (dst_24, tcp([0; 4], [192, 168, 1, 0], 0, 0)),
        (dst_24, tcp([0; 4], [192, 168, 2, 0], 0, 0)),
        (src_16, tcp([10, 0, 0, 0], [0; 4], 0, 0)),
        (src_16, tcp([10, 1, 0, 0], [0; 4], 0, 0)),
    ];
    for (slot, (mask, key)) in PREFIX_SLOTS.into_iter().zip(prefixes) {
        set(rule(slot, 50, ACTION_ALLOW, key, mask));
    }
    let five_tuple = FlowKey {
        ip_proto: 0xff,
        ethertype: 0xffff,
        l4_src: 0xffff,
        l4_dst: 0xffff,
        ip_src: prefix_mask(32),
        ip_dst: prefix_mask(32),
        ..FlowKey::default()
    };
    for slot in FIRST_EXACT_SLOT..entries {
        set(rule(slot, 100, ACTION_ALLOW, exact_flow(slot), five_tuple));
    }
    table
}

/// The rotating lookups, each with the slot it must find.
fn probe_keys(entries: u32) -> Vec<(FlowKey, u32)> {
    let exact = entries - FIRST_EXACT_SLOT;
    (0..PROBE_KEYS as u32)
        .map(|i| {
            // Spread over the whole table, not its first few rules.
            let slot = FIRST_EXACT_SLOT + (i.wrapping_mul(2_654_435_761) % exact);
            match i % 10 {
                0..=6 => (exact_flow(slot), slot),
                7 | 8 => {
                    // Same tenant host, another port: only the /16 matches.
                    let mut k = exact_flow(slot);
                    k.l4_dst = 8443;
                    (k, PREFIX_SLOTS[2])
                }
                _ => (tcp([10, 9, 0, 1], [203, 0, 113, 7], 5000, 80), DEFAULT_SLOT),
            }
        })
        .collect()
}

/// Lookups per second-ish: runs whole passes over `keys` for `duration`
/// and returns nanoseconds per lookup.
fn measure(table: &FlowTable, keys: &[(FlowKey, u32)], duration: Duration) -> f64 {
    let start = Instant::now();
    let mut lookups: u64 = 0;
    let mut sink: u32 = 0;
    while start.elapsed() < duration {
        for (key, _) in keys {
            let slot = table.lookup(black_box(key));
            sink = sink.wrapping_add(slot.unwrap_or(u32::MAX));
        }
        lookups += keys.len() as u64;
    }
    black_box(sink);
    start.elapsed().as_nanos() as f64 / lookups as f64
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("usage: flow_lookup_bench [seconds]"))
        .unwrap_or(1.0);
    let round = Duration::from_secs_f64(seconds / f64::from(ROUNDS));

    let sizes = [16u32, 4096];
    let setups: Vec<_> = sizes
        .iter()
        .map(|&n| {
            let table = build_table(n);
            let keys = probe_keys(n);
            for (key, want) in &keys {
                assert_eq!(table.lookup(key), Some(*want), "wrong lookup for {key:?}");
            }
            (table, keys)
        })
        .collect();

    // Warm caches and branch predictors, then interleave the rounds.
    for (table, keys) in &setups {
        measure(table, keys, Duration::from_millis(100));
    }
    let mut best = [f64::INFINITY; 2];
    for _ in 0..ROUNDS {
        for (b, (table, keys)) in best.iter_mut().zip(&setups) {
            *b = b.min(measure(table, keys, round));
        }
    }

    for ((n, ns), (table, _)) in sizes.iter().zip(best).zip(&setups) {
        println!(
            "{n:>5} entries, {} mask groups: {ns:6.1} ns/lookup",
            table.mask_groups()
        );
    }
    let ratio = best[1] / best[0];
    let verdict = if ratio <= 1.2 { "ok" } else { "ABOVE TARGET" };
    println!("ratio 4096/16: {ratio:.3} (target <= 1.20: {verdict})");
}
