// SPDX-License-Identifier: GPL-2.0

//! The NIC's flow table: prioritised masked matches over [`FlowKey`]s.
//!
//! The RME places each entry at a slot of its choosing (the NIC's table is a
//! cache of the RME's larger software table), so the table is indexed by
//! slot for configuration and counters, and by a tuple space search for
//! lookup:
//!
//! - entries are grouped by mask; each group is a hash map from the masked
//!   key to the best entry (highest priority, then lowest slot) with exactly
//!   that mask and key;
//! - a lookup masks the packet's key once per group and probes its map;
//! - groups are kept sorted by the highest priority they hold, so the search
//!   stops as soon as the best match found so far has a priority above every
//!   remaining group's maximum.
//!
//! Lookup cost thus depends on the number of distinct masks, not on the
//! number of entries: a table full of 5-tuple or /32 rules is one or two hash
//! probes. Entries that share a mask and key but not a slot are kept aside
//! ("shadowed") so that deleting the best one promotes the next.
//!
//! Time is never read here: callers pass `now_ns` so that counters, idle
//! times and tests are deterministic.

use std::collections::btree_map::{self, BTreeMap};
use std::collections::hash_map::{Entry as MapEntry, HashMap, RandomState};
use std::hash::{BuildHasher, Hash, Hasher};

use crate::ncsi_oem::{check_flow, FlowCheck, FlowCountersRecord, FlowKey, FlowRecord};

/// Number of slots of the model's table.
pub const DEFAULT_CAPACITY: u32 = 4096;

/// Why a flow table operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowError {
    /// The slot is not below the table's capacity.
    SlotOutOfRange {
        /// The slot asked for.
        slot: u32,
        /// The table's number of slots.
        capacity: u32,
    },
    /// The action is not one of the `ACTION_*` values.
    BadAction(u8),
    /// The key has bits set outside the mask, so it could never match.
    KeyOutsideMask,
    /// The entry matches IP protocol or addresses without matching the
    /// ethertype exactly as IPv4, IPv6 or ARP: those bits mean different
    /// things (or nothing) for other ethertypes.
    NeedsIpEthertype,
    /// An IPv4 or ARP entry masks address bytes beyond the first four, which
    /// are always zero for those ethertypes.
    Ipv4MaskBeyondAddress,
    /// The entry matches L4 ports without matching the IP protocol exactly
    /// as TCP, UDP, SCTP, ICMP (IPv4) or ICMPv6 (IPv6): port fields carry
    /// ICMP type and code, so a bare port match would also hit ICMP.
    NeedsL4Protocol,
}

impl std::fmt::Display for FlowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SlotOutOfRange { slot, capacity } => {
                write!(f, "slot {slot} out of range (capacity {capacity})")
            }
            Self::BadAction(a) => write!(f, "unknown flow action {a}"),
            Self::KeyOutsideMask => f.write_str("flow key has bits outside its mask"),
            Self::NeedsIpEthertype => f.write_str("IP match needs an exact IP or ARP ethertype"),
            Self::Ipv4MaskBeyondAddress => f.write_str("IPv4 mask beyond the 4-byte address"),
            Self::NeedsL4Protocol => f.write_str("port match needs an exact L4 protocol"),
        }
    }
}

impl std::error::Error for FlowError {}

/// Counters of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowCounters {
    /// Packets that hit the entry.
    pub packets: u64,
    /// Bytes that hit the entry.
    pub bytes: u64,
    /// Caller's clock at the last hit; `None` if never hit.
    pub last_hit_ns: Option<u64>,
}

impl FlowCounters {
    /// Whole milliseconds since the last hit, `u64::MAX` if never hit (as
    /// [`FlowCountersRecord::idle_ms`] defines).
    pub fn idle_ms(&self, now_ns: u64) -> u64 {
        self.last_hit_ns
            .map_or(u64::MAX, |last| now_ns.saturating_sub(last) / 1_000_000)
    }

    /// The counters as the NC-SI record for an in-use `slot`.
    pub fn to_record(&self, slot: u32, now_ns: u64) -> FlowCountersRecord {
        FlowCountersRecord {
            slot,
            in_use: true,
            packets: self.packets,
            bytes: self.bytes,
            idle_ms: self.idle_ms(now_ns),
        }
    }
}

/// The record answered for a slot that holds no entry.
fn unused_slot_record(slot: u32) -> FlowCountersRecord {
    FlowCountersRecord {
        slot,
        in_use: false,
        packets: 0,
        bytes: 0,
        idle_ms: u64::MAX,
    }
}

/// A [`FlowKey`] packed into machine words, so that masking is seven ANDs
/// and hashing and comparing are word operations. The packing is a bit
/// permutation, so packing commutes with masking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PackedKey([u64; 7]);

impl PackedKey {
    fn new(k: &FlowKey) -> Self {
        fn mac(m: [u8; 6]) -> u64 {
            let [a, b, c, d, e, f] = m;
            u64::from_le_bytes([a, b, c, d, e, f, 0, 0])
        }
        let src = u128::from_le_bytes(k.ip_src);
        let dst = u128::from_le_bytes(k.ip_dst);
        Self([
            u64::from(k.in_port)
                | u64::from(k.ip_proto) << 8
                | u64::from(k.ethertype) << 16
                | u64::from(k.vlan_tci) << 32
                | u64::from(k.l4_src) << 48,
            u64::from(k.l4_dst) | mac(k.eth_src) << 16,
            mac(k.eth_dst),
            src as u64,
            (src >> 64) as u64,
            dst as u64,
            (dst >> 64) as u64,
        ])
    }

    fn masked(&self, mask: &PackedKey) -> PackedKey {
        let mut out = self.0;
        for (word, m) in out.iter_mut().zip(mask.0) {
            *word &= m;
        }
        PackedKey(out)
    }
}

impl Hash for PackedKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Word by word: the derived impl would go through the byte-slice
        // path, which is slower and prefixes a length.
        for word in self.0 {
            state.write_u64(word);
        }
    }
}

/// The hasher of the table's maps: a multiply-fold mix (as in foldhash),
/// several times faster than SipHash on a 56-byte key. It is seeded per
/// table from std's random keys, so that a guest that influences which
/// entries the RME installs cannot predict bucket collisions.
#[derive(Clone, Copy, Debug)]
struct SeededState {
    seed: u64,
}

impl SeededState {
    fn random() -> Self {
        Self {
            seed: RandomState::new().hash_one(0x626d_676e_6963_u64),
        }
    }
}

impl BuildHasher for SeededState {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(self.seed)
    }
}

/// π's fractional bits: an odd constant with well-spread bits.
const FOLD_MULTIPLIER: u64 = 0x243f_6a88_85a3_08d3;

struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (w, b) in word.iter_mut().zip(chunk) {
                *w = *b;
            }
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        // Full 64x64->128 product folded back: every input bit reaches both
        // the low bits (bucket index) and the high bits (control byte).
        let product = u128::from(self.0 ^ word) * u128::from(FOLD_MULTIPLIER);
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// An entry's standing among matches: priority in the high bits, the
/// complement of the slot in the low bits, so that a larger `Rank` is the
/// better entry (higher priority, then lower slot) with one comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank(u64);

impl Rank {
    fn new(priority: u16, slot: u32) -> Self {
        Self(u64::from(priority) << 32 | u64::from(!slot))
    }

    fn priority(self) -> u16 {
        (self.0 >> 32) as u16
    }

    fn slot(self) -> u32 {
        !(self.0 as u32)
    }
}

/// All entries that share one mask.
#[derive(Debug)]
struct MaskGroup {
    /// Highest priority among the entries; the sort key of the groups.
    max_priority: u16,
    mask: PackedKey,
    /// Masked key to the best entry with that key.
    best: HashMap<PackedKey, Rank, SeededState>,
    /// Masked key to the other entries with that key (rare: only when the
    /// RME installs the same match in two slots).
    shadowed: HashMap<PackedKey, Vec<Rank>, SeededState>,
    /// Number of entries at each priority, to keep `max_priority` exact as
    /// entries come and go.
    priorities: BTreeMap<u16, u32>,
}

impl MaskGroup {
    fn new(mask: PackedKey, hasher: SeededState) -> Self {
        Self {
            max_priority: 0,
            mask,
            best: HashMap::with_hasher(hasher),
            shadowed: HashMap::with_hasher(hasher),
            priorities: BTreeMap::new(),
        }
    }

    fn insert(&mut self, key: PackedKey, rank: Rank) {
        *self.priorities.entry(rank.priority()).or_default() += 1;
        match self.best.entry(key) {
            MapEntry::Vacant(v) => {
                v.insert(rank);
            }
            MapEntry::Occupied(mut o) => {
                let loser = if rank > *o.get() {
                    std::mem::replace(o.get_mut(), rank)
                } else {
                    rank
                };
                self.shadowed.entry(key).or_default().push(loser);
            }
        }
    }

    fn remove(&mut self, key: PackedKey, rank: Rank) {
        if let btree_map::Entry::Occupied(mut count) = self.priorities.entry(rank.priority()) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
        let MapEntry::Occupied(mut best) = self.best.entry(key) else {
            return;
        };
        let MapEntry::Occupied(mut others) = self.shadowed.entry(key) else {
            // The only entry with this key.
            if *best.get() == rank {
                best.remove();
            }
            return;
        };
        if *best.get() == rank {
            // Promote the best of the shadowed entries.
            let next = others
                .get()
                .iter()
                .enumerate()
                .max_by_key(|&(_, r)| *r)
                .map(|(i, _)| i);
            if let Some(i) = next {
                *best.get_mut() = others.get_mut().swap_remove(i);
            }
        } else {
            others.get_mut().retain(|r| *r != rank);
        }
        if others.get().is_empty() {
            others.remove();
        }
    }
}

/// What a slot holds.
#[derive(Clone, Copy, Debug)]
struct SlotEntry {
    rec: FlowRecord,
    counters: FlowCounters,
}

/// The flow table: a fixed number of slots, looked up by tuple space search.
#[derive(Debug)]
pub struct FlowTable {
    slots: Vec<Option<SlotEntry>>,
    used: u32,
    /// Sorted by descending `max_priority`; never holds an empty group.
    groups: Vec<MaskGroup>,
    /// Mask to its index in `groups`.
    group_index: HashMap<PackedKey, usize, SeededState>,
    hasher: SeededState,
}

impl Default for FlowTable {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl FlowTable {
    /// An empty table of `capacity` slots. Slots cost about 160 bytes each,
    /// allocated up front so that the packet path never allocates for them.
    pub fn new(capacity: u32) -> Self {
        let hasher = SeededState::random();
        Self {
            slots: vec![None; capacity as usize],
            used: 0,
            groups: Vec::new(),
            group_index: HashMap::with_hasher(hasher),
            hasher,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Number of slots holding an entry.
    pub fn len(&self) -> u32 {
        self.used
    }

    /// Whether no slot holds an entry.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Number of distinct masks, i.e. the most hash probes a lookup makes.
    pub fn mask_groups(&self) -> usize {
        self.groups.len()
    }

    fn check_slot(&self, slot: u32) -> Result<usize, FlowError> {
        let index = slot as usize;
        if index < self.slots.len() {
            Ok(index)
        } else {
            Err(FlowError::SlotOutOfRange {
                slot,
                capacity: self.capacity(),
            })
        }
    }

    /// Installs `rec` at `rec.slot`, replacing what was there.
    ///
    /// Replacing starts the new entry's counters from zero; the previous
    /// entry's counters are returned so that the caller can account for
    /// them (billing must not lose the bytes of a replaced flow).
    pub fn set(&mut self, rec: FlowRecord) -> Result<Option<FlowCounters>, FlowError> {
        let index = self.check_slot(rec.slot)?;
        validate(&rec)?;
        let old = self.take(index);
        let mask = PackedKey::new(&rec.mask);
        let group = match self.group_index.get(&mask) {
            Some(&g) => g,
            None => {
                // A new group holds no entry yet, so its max priority is 0:
                // the end of the descending order is its place.
                self.groups.push(MaskGroup::new(mask, self.hasher));
                self.group_index.insert(mask, self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        if let Some(g) = self.groups.get_mut(group) {
            g.insert(PackedKey::new(&rec.key), Rank::new(rec.priority, rec.slot));
        }
        self.group_changed(group);
        if let Some(slot) = self.slots.get_mut(index) {
            *slot = Some(SlotEntry {
                rec,
                counters: FlowCounters::default(),
            });
        }
        self.used += 1;
        Ok(old.map(|e| e.counters))
    }

    /// Removes the entry at `slot` and returns its final counters, read in
    /// the same step so that no hit is lost between reading and removing.
    /// An empty slot answers `in_use: false`.
    pub fn del(&mut self, slot: u32, now_ns: u64) -> Result<FlowCountersRecord, FlowError> {
        let index = self.check_slot(slot)?;
        Ok(match self.take(index) {
            Some(e) => e.counters.to_record(slot, now_ns),
            None => unused_slot_record(slot),
        })
    }

    /// The entry at `slot`, if any.
    pub fn get(&self, slot: u32) -> Option<&FlowRecord> {
        self.slots.get(slot as usize)?.as_ref().map(|e| &e.rec)
    }

    /// The counters of `slot` as the NC-SI record (`in_use: false` if empty).
    pub fn counters(&self, slot: u32, now_ns: u64) -> Result<FlowCountersRecord, FlowError> {
        let index = self.check_slot(slot)?;
        Ok(match self.slots.get(index).and_then(Option::as_ref) {
            Some(e) => e.counters.to_record(slot, now_ns),
            None => unused_slot_record(slot),
        })
    }

    /// The slot of the best entry matching `key`: highest priority, then
    /// lowest slot. `key` is a packet's key, unmasked.
    pub fn lookup(&self, key: &FlowKey) -> Option<u32> {
        let packet = PackedKey::new(key);
        let mut best: Option<Rank> = None;
        for group in &self.groups {
            if best.is_some_and(|b| b.priority() > group.max_priority) {
                // Every later group's entries rank below `best`.
                break;
            }
            if let Some(&rank) = group.best.get(&packet.masked(&group.mask)) {
                best = best.max(Some(rank));
            }
        }
        best.map(Rank::slot)
    }

    /// Counts a packet of `bytes` that hit `slot` at `now_ns`. A slot that
    /// holds no entry is ignored.
    pub fn hit(&mut self, slot: u32, bytes: u64, now_ns: u64) {
        if let Some(Some(e)) = self.slots.get_mut(slot as usize) {
            // Counters wrap like hardware counters; readers take deltas.
            e.counters.packets = e.counters.packets.wrapping_add(1);
            e.counters.bytes = e.counters.bytes.wrapping_add(bytes);
            e.counters.last_hit_ns = Some(now_ns);
        }
    }

    /// Empties the slot at `index` (already range-checked) and unlinks its
    /// entry from its mask group.
    fn take(&mut self, index: usize) -> Option<SlotEntry> {
        let old = self.slots.get_mut(index)?.take()?;
        self.used -= 1;
        let mask = PackedKey::new(&old.rec.mask);
        if let Some(&group) = self.group_index.get(&mask) {
            if let Some(g) = self.groups.get_mut(group) {
                g.remove(
                    PackedKey::new(&old.rec.key),
                    Rank::new(old.rec.priority, old.rec.slot),
                );
            }
            self.group_changed(group);
        }
        Some(old)
    }

    /// Restores the group order after an entry was added to or removed from
    /// group `index`: drops the group if it emptied, moves it if its
    /// maximum priority changed. Costs O(number of groups) only then.
    fn group_changed(&mut self, index: usize) {
        let Some(group) = self.groups.get_mut(index) else {
            return;
        };
        let Some((&max_priority, _)) = group.priorities.last_key_value() else {
            let mask = group.mask;
            self.groups.remove(index);
            self.group_index.remove(&mask);
            self.reindex(index, self.groups.len());
            return;
        };
        if max_priority == group.max_priority {
            return;
        }
        group.max_priority = max_priority;
        let group = self.groups.remove(index);
        // After groups of equal maximum: any order among equals is correct,
        // since the search only stops on a strictly higher priority.
        let to = self
            .groups
            .partition_point(|g| g.max_priority >= max_priority);
        self.groups.insert(to, group);
        self.reindex(index.min(to), index.max(to) + 1);
    }

    /// Refreshes `group_index` for the groups at `from..to`.
    fn reindex(&mut self, from: usize, to: usize) {
        let moved = self.groups.iter().enumerate().take(to).skip(from);
        for (i, g) in moved {
            self.group_index.insert(g.mask, i);
        }
    }
}

/// Checks that an entry is well formed: a known action, a key within its
/// mask, and the prerequisites of the fields it matches (the checks of
/// `ncsi_oem::check_flow`, which the RME applies too).
pub fn validate(rec: &FlowRecord) -> Result<(), FlowError> {
    check_flow(rec.action, &rec.key, &rec.mask).map_err(|check| match check {
        FlowCheck::BadAction => FlowError::BadAction(rec.action),
        FlowCheck::KeyOutsideMask => FlowError::KeyOutsideMask,
        FlowCheck::NeedsIpEthertype => FlowError::NeedsIpEthertype,
        FlowCheck::Ipv4MaskBeyondAddress => FlowError::Ipv4MaskBeyondAddress,
        FlowCheck::NeedsL4Protocol => FlowError::NeedsL4Protocol,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncsi_oem::{
        ACTION_ALLOW, ACTION_DROP, ACTION_ENCAP, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6,
        IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, NO_METER, PORT_GUEST,
    };

    fn ip4(a: [u8; 4]) -> [u8; 16] {
        let mut r = [0; 16];
        r[..4].copy_from_slice(&a);
        r
    }

    /// An IPv4 mask of `len` leading ones.
    fn prefix(len: u32) -> [u8; 16] {
        let bits = u32::MAX.checked_shl(32 - len).unwrap_or(0);
        ip4(bits.to_be_bytes())
    }

    fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> FlowKey {
        FlowKey {
            in_port: PORT_GUEST,
            ip_proto: IPPROTO_TCP,
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

    fn five_tuple_mask() -> FlowKey {
        FlowKey {
            ip_proto: 0xff,
            ethertype: 0xffff,
            l4_src: 0xffff,
            l4_dst: 0xffff,
            ip_src: prefix(32),
            ip_dst: prefix(32),
            ..FlowKey::default()
        }
    }

    fn dst_prefix_mask(len: u32) -> FlowKey {
        FlowKey {
            ethertype: 0xffff,
            ip_dst: prefix(len),
            ..FlowKey::default()
        }
    }

    fn rule(slot: u32, priority: u16, key: FlowKey, mask: FlowKey) -> FlowRecord {
        FlowRecord {
            slot,
            priority,
            action: ACTION_ALLOW,
            meter: NO_METER,
            vtep: 0,
            key: key.masked(&mask),
            mask,
        }
    }

    #[test]
    fn empty_table_misses() {
        let t = FlowTable::new(8);
        assert_eq!(t.lookup(&FlowKey::default()), None);
        assert!(t.is_empty());
        assert_eq!((t.len(), t.capacity()), (0, 8));
        assert_eq!(FlowTable::default().capacity(), DEFAULT_CAPACITY);
    }

    #[test]
    fn higher_priority_wins_across_overlapping_masks() {
        let mut t = FlowTable::new(16);
        let pkt = tcp([10, 0, 0, 1], [10, 1, 2, 3], 40000, 80);
        t.set(rule(0, 0, FlowKey::default(), FlowKey::default()))
            .unwrap();
        t.set(rule(5, 10, pkt, dst_prefix_mask(24))).unwrap();
        t.set(rule(7, 20, pkt, five_tuple_mask())).unwrap();
        assert_eq!(t.lookup(&pkt), Some(7));

        // Same /24, other host and port: the prefix rule.
        let other = tcp([10, 0, 0, 1], [10, 1, 2, 99], 40000, 443);
        assert_eq!(t.lookup(&other), Some(5));
        // Outside the /24: the default rule.
        let outside = tcp([10, 0, 0, 1], [10, 1, 3, 3], 40000, 80);
        assert_eq!(t.lookup(&outside), Some(0));

        // Raise the prefix rule above the exact one: it now wins.
        t.set(rule(5, 30, pkt, dst_prefix_mask(24))).unwrap();
        assert_eq!(t.lookup(&pkt), Some(5));
        assert_eq!(t.mask_groups(), 3);
    }

    #[test]
    fn equal_priority_lowest_slot_wins() {
        let mut t = FlowTable::new(16);
        let pkt = tcp([10, 0, 0, 1], [10, 1, 2, 3], 40000, 80);
        // Different masks, same priority.
        t.set(rule(9, 10, pkt, five_tuple_mask())).unwrap();
        t.set(rule(4, 10, pkt, dst_prefix_mask(24))).unwrap();
        assert_eq!(t.lookup(&pkt), Some(4));
        // Same mask and key in two slots.
        t.set(rule(2, 10, pkt, five_tuple_mask())).unwrap();
        assert_eq!(t.lookup(&pkt), Some(2));
        t.del(2, 0).unwrap();
        assert_eq!(t.lookup(&pkt), Some(4));
        t.del(4, 0).unwrap();
        assert_eq!(t.lookup(&pkt), Some(9));
    }

    #[test]
    fn shadowed_entry_promoted_on_delete() {
        let mut t = FlowTable::new(16);
        let pkt = tcp([10, 0, 0, 1], [10, 1, 2, 3], 40000, 80);
        for (slot, priority) in [(3, 5), (1, 7), (8, 7), (2, 1)] {
            t.set(rule(slot, priority, pkt, five_tuple_mask())).unwrap();
        }
        let mut order = Vec::new();
        while let Some(slot) = t.lookup(&pkt) {
            order.push(slot);
            t.del(slot, 0).unwrap();
        }
        assert_eq!(order, [1, 8, 3, 2]);
        assert_eq!(t.mask_groups(), 0, "an emptied group is dropped");
    }

    #[test]
    fn replacement_resets_counters_and_returns_old_ones() {
        let mut t = FlowTable::new(16);
        let a = tcp([10, 0, 0, 1], [10, 0, 0, 2], 1000, 22);
        let b = tcp([10, 0, 0, 1], [10, 0, 0, 3], 1000, 22);
        assert_eq!(t.set(rule(3, 10, a, five_tuple_mask())), Ok(None));
        t.hit(3, 100, 1_000_000);
        t.hit(3, 50, 2_000_000);
        let old = t.set(rule(3, 10, b, five_tuple_mask())).unwrap();
        let want = FlowCounters {
            packets: 2,
            bytes: 150,
            last_hit_ns: Some(2_000_000),
        };
        assert_eq!(old, Some(want));
        assert_eq!(t.lookup(&a), None);
        assert_eq!(t.lookup(&b), Some(3));
        assert_eq!(t.len(), 1);
        let c = t.counters(3, 5_000_000).unwrap();
        assert_eq!(
            (c.in_use, c.packets, c.bytes, c.idle_ms),
            (true, 0, 0, u64::MAX)
        );
        assert_eq!(t.get(3).map(|r| r.key), Some(b.masked(&five_tuple_mask())));
    }

    #[test]
    fn delete_returns_final_counters() {
        let mut t = FlowTable::new(16);
        let a = tcp([10, 0, 0, 1], [10, 0, 0, 2], 1000, 22);
        t.set(rule(6, 1, a, five_tuple_mask())).unwrap();
        t.hit(6, 1500, 10_000_000);
        t.hit(6, 64, 20_000_000);
        let c = t.del(6, 1_020_000_000).unwrap();
        let want = FlowCountersRecord {
            slot: 6,
            in_use: true,
            packets: 2,
            bytes: 1564,
            idle_ms: 1000,
        };
        assert_eq!(c, want);
        assert_eq!(t.lookup(&a), None);
        assert_eq!(t.get(6), None);
        assert!(t.is_empty());
        assert_eq!(t.del(6, 0), Ok(unused_slot_record(6)));
        // A hit on an emptied slot is ignored.
        t.hit(6, 1, 0);
        assert_eq!(t.counters(6, 0), Ok(unused_slot_record(6)));
    }

    #[test]
    fn ipv4_prefix_match() {
        let mut t = FlowTable::new(4);
        let net = tcp([0; 4], [192, 168, 7, 0], 0, 0);
        t.set(rule(1, 1, net, dst_prefix_mask(24))).unwrap();
        for host in [0, 1, 128, 255] {
            let pkt = tcp([1, 2, 3, 4], [192, 168, 7, host], 5, 6);
            assert_eq!(t.lookup(&pkt), Some(1), "host {host}");
        }
        for dst in [[192, 168, 6, 1], [192, 168, 8, 1], [193, 168, 7, 1]] {
            assert_eq!(t.lookup(&tcp([1, 2, 3, 4], dst, 5, 6)), None);
        }
        // The prefix rule names IPv4: an IPv6 packet with the same leading
        // address bytes does not match.
        let mut v6 = tcp([1, 2, 3, 4], [192, 168, 7, 1], 5, 6);
        v6.ethertype = ETHERTYPE_IPV6;
        assert_eq!(t.lookup(&v6), None);
    }

    #[test]
    fn port_match() {
        let mut t = FlowTable::new(4);
        let mask = FlowKey {
            ethertype: 0xffff,
            ip_proto: 0xff,
            l4_dst: 0xffff,
            ..FlowKey::default()
        };
        let web = tcp([0; 4], [0; 4], 0, 443);
        t.set(rule(2, 1, web, mask)).unwrap();
        assert_eq!(t.lookup(&tcp([1; 4], [2; 4], 1, 443)), Some(2));
        assert_eq!(t.lookup(&tcp([1; 4], [2; 4], 443, 80)), None);
        let mut udp = tcp([1; 4], [2; 4], 1, 443);
        udp.ip_proto = IPPROTO_UDP;
        assert_eq!(t.lookup(&udp), None);
    }

    #[test]
    fn ethertype_only_match() {
        let mut t = FlowTable::new(4);
        let mask = FlowKey {
            ethertype: 0xffff,
            ..FlowKey::default()
        };
        let arp = FlowKey {
            ethertype: ETHERTYPE_ARP,
            ..FlowKey::default()
        };
        t.set(rule(0, 1, arp, mask)).unwrap();
        let mut pkt = FlowKey {
            ethertype: ETHERTYPE_ARP,
            ip_proto: 1,
            eth_src: [2, 0, 0, 0, 0, 9],
            ip_src: ip4([10, 0, 0, 9]),
            ..FlowKey::default()
        };
        assert_eq!(t.lookup(&pkt), Some(0));
        pkt.ethertype = ETHERTYPE_IPV4;
        assert_eq!(t.lookup(&pkt), None);
    }

    #[test]
    fn slot_out_of_range() {
        let mut t = FlowTable::new(4);
        let out = FlowError::SlotOutOfRange {
            slot: 4,
            capacity: 4,
        };
        let r = rule(4, 1, FlowKey::default(), FlowKey::default());
        assert_eq!(t.set(r), Err(out));
        assert_eq!(t.del(4, 0), Err(out));
        assert_eq!(t.counters(4, 0), Err(out));
        assert_eq!(t.get(4), None);
        t.hit(4, 1, 0);
        let far = FlowError::SlotOutOfRange {
            slot: u32::MAX,
            capacity: 4,
        };
        assert_eq!(t.del(u32::MAX, 0), Err(far));
        assert!(t.is_empty());
    }

    #[test]
    fn invalid_records_rejected() {
        let mut t = FlowTable::new(4);
        let pkt = tcp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);

        let mut r = rule(0, 1, pkt, five_tuple_mask());
        r.action = ACTION_ENCAP + 1;
        assert_eq!(t.set(r), Err(FlowError::BadAction(3)));

        let mut r = rule(0, 1, pkt, dst_prefix_mask(24));
        r.key.ip_dst[3] = 1;
        assert_eq!(t.set(r), Err(FlowError::KeyOutsideMask));

        let no_ethertype = FlowKey {
            ip_dst: prefix(24),
            ..FlowKey::default()
        };
        let r = rule(0, 1, pkt, no_ethertype);
        assert_eq!(t.set(r), Err(FlowError::NeedsIpEthertype));

        let mut wide = dst_prefix_mask(32);
        wide.ip_dst[4] = 0xff;
        assert_eq!(
            t.set(rule(0, 1, pkt, wide)),
            Err(FlowError::Ipv4MaskBeyondAddress)
        );

        let ports_only = FlowKey {
            ethertype: 0xffff,
            l4_dst: 0xffff,
            ..FlowKey::default()
        };
        assert_eq!(
            t.set(rule(0, 1, pkt, ports_only)),
            Err(FlowError::NeedsL4Protocol)
        );
        let mut icmp_in_v6 = five_tuple_mask();
        icmp_in_v6.ip_src = [0xff; 16];
        icmp_in_v6.ip_dst = [0xff; 16];
        let mut v6 = pkt;
        v6.ethertype = ETHERTYPE_IPV6;
        v6.ip_proto = IPPROTO_ICMP;
        assert_eq!(
            t.set(rule(0, 1, v6, icmp_in_v6)),
            Err(FlowError::NeedsL4Protocol)
        );
        v6.ip_proto = IPPROTO_ICMPV6;
        assert_eq!(t.set(rule(0, 1, v6, icmp_in_v6)), Ok(None));

        let mut drop = rule(1, 1, pkt, five_tuple_mask());
        drop.action = ACTION_DROP;
        assert_eq!(t.set(drop), Ok(None));
        assert_eq!(t.len(), 2, "rejected records leave the table as it was");
    }

    /// Deterministic xorshift64* for the randomised tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn hundred_thousand_entries() {
        const N: u32 = 100_000;
        let mut t = FlowTable::new(N);
        let host = |i: u32| {
            let [_, a, b, c] = i.to_be_bytes();
            [10, a, b, c]
        };
        let flow = |i: u32| tcp(host(i), [172, 16, 0, 1], (i % 50_000) as u16, 443);
        // Four prefix rules under the exact rules, then exact 5-tuples.
        for (slot, net) in (0..4).zip([0u8, 1, 2, 3]) {
            let key = tcp([0; 4], [192, 168, net, 0], 0, 0);
            t.set(rule(slot, 10, key, dst_prefix_mask(24))).unwrap();
        }
        for i in 4..N {
            t.set(rule(i, 100, flow(i), five_tuple_mask())).unwrap();
        }
        assert_eq!((t.len(), t.mask_groups()), (N, 2));
        for i in 4..N {
            assert_eq!(t.lookup(&flow(i)), Some(i));
        }
        for net in 0..4u8 {
            let pkt = tcp([10, 9, 9, 9], [192, 168, net, 77], 1, 2);
            assert_eq!(t.lookup(&pkt), Some(u32::from(net)));
        }
        // Same hosts, other port: miss.
        let mut rng = Rng(7);
        for _ in 0..1000 {
            let i = 4 + rng.below(u64::from(N - 4)) as u32;
            let mut k = flow(i);
            k.l4_dst = 8443;
            assert_eq!(t.lookup(&k), None);
        }
        // Delete every other exact rule.
        for i in (4..N).step_by(2) {
            assert!(t.del(i, 0).unwrap().in_use);
        }
        for i in 4..N {
            let want = (i % 2 == 1).then_some(i);
            assert_eq!(t.lookup(&flow(i)), want);
        }
        assert_eq!(t.len(), 4 + (N - 4) / 2);
    }

    /// The tuple space search against a linear scan, over random inserts,
    /// replacements and deletes with overlapping masks and many ties.
    #[test]
    fn matches_linear_scan_reference() {
        const SLOTS: u32 = 64;
        let masks = [
            FlowKey::default(),
            FlowKey {
                ethertype: 0xffff,
                ..FlowKey::default()
            },
            dst_prefix_mask(24),
            dst_prefix_mask(30),
            FlowKey {
                ethertype: 0xffff,
                ip_proto: 0xff,
                l4_dst: 0xffff,
                ..FlowKey::default()
            },
            five_tuple_mask(),
            FlowKey {
                ethertype: 0xffff,
                ip_src: prefix(16),
                in_port: 0xff,
                ..FlowKey::default()
            },
        ];
        let mut rng = Rng(0x1234_5678);
        let random_key = |rng: &mut Rng| {
            let mut k = tcp(
                [10, 0, rng.below(2) as u8, rng.below(4) as u8],
                [10, 1, 0, rng.below(8) as u8],
                [22, 80][rng.below(2) as usize],
                [22, 80, 443][rng.below(3) as usize],
            );
            k.in_port = rng.below(2) as u8;
            if rng.below(4) == 0 {
                k.ip_proto = IPPROTO_UDP;
            }
            k
        };
        let mut t = FlowTable::new(SLOTS);
        let mut reference: Vec<Option<FlowRecord>> = vec![None; SLOTS as usize];
        for _ in 0..3000 {
            let slot = rng.below(u64::from(SLOTS)) as u32;
            if rng.below(4) == 0 {
                t.del(slot, 0).unwrap();
                reference[slot as usize] = None;
            } else {
                let mask = masks[rng.below(masks.len() as u64) as usize];
                let r = rule(slot, rng.below(4) as u16, random_key(&mut rng), mask);
                t.set(r).unwrap();
                reference[slot as usize] = Some(r);
            }
            for _ in 0..16 {
                let k = random_key(&mut rng);
                let want = reference
                    .iter()
                    .flatten()
                    .filter(|r| k.masked(&r.mask) == r.key)
                    .max_by_key(|r| (r.priority, std::cmp::Reverse(r.slot)))
                    .map(|r| r.slot);
                assert_eq!(t.lookup(&k), want, "key {k:?}");
            }
            let used = reference.iter().flatten().count() as u32;
            assert_eq!(t.len(), used);
            let sorted = t
                .groups
                .windows(2)
                .all(|w| w[0].max_priority >= w[1].max_priority);
            assert!(sorted, "groups out of order");
            for (i, g) in t.groups.iter().enumerate() {
                assert_eq!(t.group_index.get(&g.mask), Some(&i));
                assert!(!g.priorities.is_empty(), "empty group kept");
            }
            assert_eq!(t.group_index.len(), t.groups.len());
        }
    }

    #[test]
    fn rank_orders_priority_then_lowest_slot() {
        assert!(Rank::new(2, 100) > Rank::new(1, 0));
        assert!(Rank::new(1, 0) > Rank::new(1, 1));
        assert!(Rank::new(0, u32::MAX) < Rank::new(0, 0));
        let r = Rank::new(0xabcd, 0x1234_5678);
        assert_eq!((r.priority(), r.slot()), (0xabcd, 0x1234_5678));
    }
}
