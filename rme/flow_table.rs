// SPDX-License-Identifier: GPL-2.0

//! The RME's software flow table: every rule of the tenant, of which the
//! NIC's table holds a cache (see `nic_cache`).
//!
//! A rule is a [`FlowRecord`] without the slot: it is identified by a rule
//! ID chosen by the administrator, and the NIC slot it occupies, if any, is
//! the cache's business. Rules match as in the device (`qemu/src/flow.rs`):
//! a packet's [`FlowKey`] matches a rule when `packet & mask == key`, the
//! best match is the highest priority, then the lowest rule ID, and
//! [`validate`] refuses what the device would refuse, so that every rule
//! can be installed.
//!
//! Lookup is a tuple space search:
//!
//! - rules are grouped by mask; each group is a red-black tree keyed by
//!   the masked key bytes, then by rank (best first), so that the best
//!   rule of a group for a packet is the first node at or after the
//!   packet's masked key;
//! - groups are kept in descending order of the highest priority they
//!   hold, and the search stops at the first group whose maximum is below
//!   the best match found.
//!
//! A lookup costs at most one tree search per distinct mask, whatever the
//! number of rules. Counters of each rule (packets and bytes folded from
//! the NIC) live here, and those of removed rules are kept in a retired
//! total, so that billing never loses a byte.

use crate::ncsi_oem::{FlowKey, FlowRecord};
use kernel::{
    prelude::*,
    rbtree::{RBTree, RBTreeNode, RBTreeNodeReservation},
};

/// Most rules the table holds (at least the 100 000 of the design).
pub(crate) const MAX_RULES: usize = 1 << 17;

/// A rule of the software table: a flow entry without its NIC slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Rule {
    /// Administrator-chosen ID; ties between equal priorities go to the
    /// lowest.
    pub(crate) id: u32,
    /// Higher wins among matching rules.
    pub(crate) priority: u16,
    /// `ncsi_oem::ACTION_*`.
    pub(crate) action: u8,
    /// Meter index or `ncsi_oem::NO_METER`.
    pub(crate) meter: u16,
    /// VTEP index for `ncsi_oem::ACTION_ENCAP`.
    pub(crate) vtep: u16,
    /// Values to match, within `mask`.
    pub(crate) key: FlowKey,
    /// Bits that must match.
    pub(crate) mask: FlowKey,
}

impl Rule {
    /// The NIC entry of this rule at `slot`.
    pub(crate) fn record_at(&self, slot: u32) -> FlowRecord {
        FlowRecord {
            slot,
            priority: self.priority,
            action: self.action,
            meter: self.meter,
            vtep: self.vtep,
            key: self.key,
            mask: self.mask,
        }
    }
}

/// Packets and bytes, as billing counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Counters {
    /// Packets.
    pub(crate) packets: u64,
    /// Bytes.
    pub(crate) bytes: u64,
}

impl Counters {
    /// Adds `packets` and `bytes`; counters wrap as the NIC's do.
    pub(crate) fn add(&mut self, packets: u64, bytes: u64) {
        self.packets = self.packets.wrapping_add(packets);
        self.bytes = self.bytes.wrapping_add(bytes);
    }
}

/// Why a rule is refused: the checks the device applies too, from the
/// shared OEM layouts.
pub(crate) use crate::ncsi_oem::FlowCheck as FlowError;

impl From<FlowError> for Error {
    fn from(_: FlowError) -> Error {
        EINVAL
    }
}

/// Whether `a` wins over `b` where both match.
pub(crate) fn wins_over(a: &Rule, b: &Rule) -> bool {
    rank(a.priority, a.id) < rank(b.priority, b.id)
}

/// Checks that a rule is one the device accepts.
pub(crate) fn validate(rule: &Rule) -> Result<(), FlowError> {
    crate::ncsi_oem::check_flow(rule.action, &rule.key, &rule.mask)
}

/// A flow key in its 56-byte wire encoding. Encoding is a byte
/// permutation (with zero reserved bytes), so it commutes with masking and
/// byte order gives a total order for the trees.
type Encoded = [u8; FlowKey::LEN];

fn encode(key: &FlowKey) -> Encoded {
    let mut out = [0u8; FlowKey::LEN];
    key.encode(&mut out);
    out
}

fn and(a: &Encoded, mask: &Encoded) -> Encoded {
    let mut out = *a;
    for (o, m) in out.iter_mut().zip(mask) {
        *o &= m;
    }
    out
}

/// Rank of a rule among matches: the smaller, the better (higher priority,
/// then lower ID).
fn rank(priority: u16, id: u32) -> u64 {
    (u64::from(u16::MAX - priority) << 32) | u64::from(id)
}

fn rank_priority(rank: u64) -> u16 {
    // The high half holds `u16::MAX - priority`.
    u16::MAX - (rank >> 32) as u16
}

fn rank_id(rank: u64) -> u32 {
    rank as u32
}

/// Position of a rule in its group's tree: masked key, then rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    key: Encoded,
    rank: u64,
}

/// All rules that share one mask.
struct MaskGroup {
    mask: Encoded,
    /// Highest priority in the group; the groups' sort key.
    max_priority: u16,
    /// The group's rules, by masked key then rank.
    rules: RBTree<GroupKey, ()>,
    /// Number of rules at each priority, so that `max_priority` stays
    /// exact as rules come and go.
    priorities: RBTree<u16, u32>,
}

/// A rule and its counters.
struct Entry {
    rule: Rule,
    counters: Counters,
}

/// The software flow table.
///
/// # Invariants
///
/// Every rule of `rules` is in exactly one group, the one of its mask,
/// under `GroupKey { key, rank }`, and counted in that group's
/// `priorities`; no group is empty; `groups` is sorted by descending
/// `max_priority`, which is the highest key of `priorities`.
pub(crate) struct FlowTable {
    rules: RBTree<u32, Entry>,
    groups: KVec<MaskGroup>,
    len: usize,
    /// Counters of rules removed since the table was made.
    retired: Counters,
}

impl FlowTable {
    /// An empty table.
    pub(crate) fn new() -> Self {
        Self {
            rules: RBTree::new(),
            groups: KVec::new(),
            len: 0,
            retired: Counters::default(),
        }
    }

    /// Number of rules.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no rule.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of distinct masks: the most tree searches a lookup makes.
    pub(crate) fn mask_groups(&self) -> usize {
        self.groups.len()
    }

    fn find_group(&self, mask: &Encoded) -> Option<usize> {
        self.groups.iter().position(|g| g.mask == *mask)
    }

    /// Adds `rule`. Fails with `EINVAL` if [`validate`] refuses it, `EEXIST`
    /// if its ID is taken, `ENOSPC` beyond [`MAX_RULES`], `ENOMEM`; a
    /// failure changes nothing.
    pub(crate) fn insert(&mut self, rule: Rule) -> Result {
        validate(&rule)?;
        if self.rules.get(&rule.id).is_some() {
            return Err(EEXIST);
        }
        if self.len >= MAX_RULES {
            return Err(ENOSPC);
        }
        let mask = encode(&rule.mask);
        let group_key = GroupKey {
            key: encode(&rule.key),
            rank: rank(rule.priority, rule.id),
        };
        let group = self.find_group(&mask);
        let new_priority = match group.and_then(|g| self.groups.get(g)) {
            Some(g) => g.priorities.get(&rule.priority).is_none(),
            None => true,
        };

        // Allocate everything first, so that a failure changes nothing.
        let id_node = RBTreeNode::new(
            rule.id,
            Entry {
                rule,
                counters: Counters::default(),
            },
            GFP_KERNEL,
        )?;
        let group_node = RBTreeNode::new(group_key, (), GFP_KERNEL)?;
        let priority_node = if new_priority {
            Some(RBTreeNodeReservation::new(GFP_KERNEL)?)
        } else {
            None
        };
        let index = match group {
            Some(index) => index,
            None => {
                // An empty group holds priority 0 at most: its place in the
                // descending order is the end; `group_changed` moves it.
                let g = MaskGroup {
                    mask,
                    max_priority: 0,
                    rules: RBTree::new(),
                    priorities: RBTree::new(),
                };
                self.groups.push(g, GFP_KERNEL)?;
                self.groups.len() - 1
            }
        };

        // Nothing below fails.
        let Some(g) = self.groups.get_mut(index) else {
            return Err(EINVAL);
        };
        g.rules.insert(group_node);
        match g.priorities.get_mut(&rule.priority) {
            Some(count) => *count += 1,
            None => {
                // `new_priority` was computed on this very group, so the
                // node was allocated.
                if let Some(node) = priority_node {
                    g.priorities.insert(node.into_node(rule.priority, 1));
                }
            }
        }
        self.rules.insert(id_node);
        self.len += 1;
        self.group_changed(index);
        Ok(())
    }

    /// Removes rule `id` and returns it with its counters, which are also
    /// added to the retired total. `ENOENT` if there is no such rule.
    pub(crate) fn remove(&mut self, id: u32) -> Result<(Rule, Counters)> {
        let entry = self.rules.remove(&id).ok_or(ENOENT)?;
        let rule = entry.rule;
        self.len -= 1;
        let mask = encode(&rule.mask);
        if let Some(index) = self.find_group(&mask) {
            if let Some(g) = self.groups.get_mut(index) {
                g.rules.remove(&GroupKey {
                    key: encode(&rule.key),
                    rank: rank(rule.priority, rule.id),
                });
                if let Some(mut count) = g.priorities.find_mut(&rule.priority) {
                    *count.get_mut() -= 1;
                    if *count.get() == 0 {
                        count.remove();
                    }
                }
            }
            self.group_changed(index);
        }
        self.retired
            .add(entry.counters.packets, entry.counters.bytes);
        Ok((rule, entry.counters))
    }

    /// Restores the group order after a rule was added to or removed from
    /// group `index`: drops the group if it emptied, moves it if its
    /// maximum priority changed. Rotations only: nothing allocates.
    fn group_changed(&mut self, index: usize) {
        let Some(g) = self.groups.get_mut(index) else {
            return;
        };
        let Some(max) = g.priorities.cursor_back().map(|c| *c.current().0) else {
            let _ = self.groups.remove(index);
            return;
        };
        let old = g.max_priority;
        g.max_priority = max;
        if max > old {
            // Up, after the groups of higher or equal maximum.
            let before = self.groups.get(..index).unwrap_or_default();
            let to = before.partition_point(|g| g.max_priority >= max);
            if let Some(s) = self.groups.get_mut(to..=index) {
                s.rotate_right(1);
            }
        } else if max < old {
            // Down, after the groups of higher or equal maximum. Any order
            // among equals is correct: the search stops only on a strictly
            // lower maximum.
            let after = self.groups.get(index + 1..).unwrap_or_default();
            let to = index + after.partition_point(|g| g.max_priority >= max);
            if let Some(s) = self.groups.get_mut(index..=to) {
                s.rotate_left(1);
            }
        }
    }

    /// The rule that `key` (a packet's, unmasked) hits: the matching rule
    /// of highest priority, then lowest ID.
    pub(crate) fn lookup(&self, key: &FlowKey) -> Option<&Rule> {
        let packet = encode(key);
        let mut best: Option<u64> = None;
        for g in self.groups.iter() {
            if best.is_some_and(|b| rank_priority(b) > g.max_priority) {
                // Every later group's rules rank below `best`.
                break;
            }
            let probe = GroupKey {
                key: and(&packet, &g.mask),
                rank: 0,
            };
            // The first node at or after (masked key, best rank) is the
            // group's best rule for the packet, if its key is the packet's.
            if let Some(cursor) = g.rules.cursor_lower_bound(&probe) {
                let (found, ()) = cursor.current();
                if found.key == probe.key && best.is_none_or(|b| found.rank < b) {
                    best = Some(found.rank);
                }
            }
        }
        let id = rank_id(best?);
        self.rules.get(&id).map(|e| &e.rule)
    }

    /// Rule `id` and its counters.
    pub(crate) fn get(&self, id: u32) -> Option<(&Rule, Counters)> {
        self.rules.get(&id).map(|e| (&e.rule, e.counters))
    }

    /// Adds traffic the NIC counted for rule `id` (folded by the NIC
    /// cache). Traffic of a rule removed meanwhile goes to the retired
    /// total, so none is lost; returns whether the rule still exists.
    pub(crate) fn account(&mut self, id: u32, packets: u64, bytes: u64) -> bool {
        match self.rules.get_mut(&id) {
            Some(e) => {
                e.counters.add(packets, bytes);
                true
            }
            None => {
                self.retired.add(packets, bytes);
                false
            }
        }
    }

    /// The rule with the lowest ID of at least `id`, and its counters (for
    /// dumps, which resume from an ID).
    pub(crate) fn next_from(&self, id: u32) -> Option<(Rule, Counters)> {
        let cursor = self.rules.cursor_lower_bound(&id)?;
        let (_, e) = cursor.current();
        Some((e.rule, e.counters))
    }

    /// Counters of rules no longer in the table.
    pub(crate) fn retired(&self) -> Counters {
        self.retired
    }

    /// Everything billed: the counters of every rule plus the retired ones.
    pub(crate) fn totals(&self) -> Counters {
        let mut total = self.retired;
        for e in self.rules.values() {
            total.add(e.counters.packets, e.counters.bytes);
        }
        total
    }
}

impl Default for FlowTable {
    fn default() -> Self {
        Self::new()
    }
}

#[kunit_tests(bmgnic_rme_flow_table)]
mod tests {
    use super::*;
    use crate::ncsi_oem::{
        ACTION_ALLOW, ACTION_DROP, ACTION_ENCAP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_ICMP,
        IPPROTO_TCP, NO_METER, PORT_GUEST,
    };
    use core::num::NonZeroU64;

    fn ip4(a: [u8; 4]) -> [u8; 16] {
        let mut r = [0; 16];
        r[..4].copy_from_slice(&a);
        r
    }

    /// An IPv4 mask of `len` leading ones.
    fn prefix(len: u32) -> [u8; 16] {
        ip4(u32::MAX.checked_shl(32 - len).unwrap_or(0).to_be_bytes())
    }

    fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> FlowKey {
        FlowKey {
            in_port: PORT_GUEST,
            ip_proto: IPPROTO_TCP,
            ethertype: ETHERTYPE_IPV4,
            l4_src: sport,
            l4_dst: dport,
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

    /// A rule of `id` whose key is `key` masked by `mask`.
    fn rule(id: u32, priority: u16, action: u8, key: FlowKey, mask: FlowKey) -> Rule {
        Rule {
            id,
            priority,
            action,
            meter: NO_METER,
            vtep: 0,
            key: key.masked(&mask),
            mask,
        }
    }

    fn hit(t: &FlowTable, key: &FlowKey) -> Option<u32> {
        t.lookup(key).map(|r| r.id)
    }

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// A number below `n` (0 if `n` is 0).
        fn below(&mut self, n: u64) -> u64 {
            NonZeroU64::new(n).map_or(0, |n| self.next() % n)
        }
    }

    #[test]
    fn higher_priority_wins_across_overlapping_masks() -> Result {
        let mut t = FlowTable::new();
        let pkt = tcp([10, 0, 0, 1], [10, 1, 2, 3], 40000, 443);
        assert_eq!(hit(&t, &pkt), None);
        t.insert(rule(1, 10, ACTION_ALLOW, pkt, dst_prefix_mask(8)))?;
        assert_eq!(hit(&t, &pkt), Some(1));
        t.insert(rule(2, 20, ACTION_DROP, pkt, dst_prefix_mask(24)))?;
        assert_eq!(hit(&t, &pkt), Some(2));
        // A more specific match of lower priority does not win.
        t.insert(rule(3, 5, ACTION_ALLOW, pkt, five_tuple_mask()))?;
        assert_eq!(hit(&t, &pkt), Some(2));
        // A catch-all of the highest priority wins over everything.
        t.insert(rule(
            4,
            30,
            ACTION_DROP,
            FlowKey::default(),
            FlowKey::default(),
        ))?;
        assert_eq!(hit(&t, &pkt), Some(4));
        assert_eq!(t.mask_groups(), 4);
        // Outside the /24, inside the /8 only the /8 and catch-all match.
        t.remove(4)?;
        let other = tcp([10, 0, 0, 1], [10, 9, 9, 9], 1, 2);
        assert_eq!(hit(&t, &other), Some(1));
        assert_eq!(hit(&t, &tcp([10, 0, 0, 1], [11, 0, 0, 1], 1, 2)), None);
        Ok(())
    }

    #[test]
    fn equal_priorities_go_to_the_lowest_rule_id() -> Result {
        let mut t = FlowTable::new();
        let pkt = tcp([10, 0, 0, 1], [10, 0, 0, 2], 1000, 80);
        // Different masks, same priority.
        t.insert(rule(7, 10, ACTION_ALLOW, pkt, dst_prefix_mask(16)))?;
        t.insert(rule(3, 10, ACTION_DROP, pkt, five_tuple_mask()))?;
        assert_eq!(hit(&t, &pkt), Some(3));
        // Same mask and key, same priority: the lower ID wins, whatever
        // the order of insertion.
        t.insert(rule(2, 10, ACTION_DROP, pkt, dst_prefix_mask(16)))?;
        assert_eq!(hit(&t, &pkt), Some(2));
        t.insert(rule(9, 10, ACTION_DROP, pkt, dst_prefix_mask(16)))?;
        assert_eq!(hit(&t, &pkt), Some(2));
        // Same mask and key, higher priority beats a lower ID.
        t.insert(rule(50, 11, ACTION_DROP, pkt, dst_prefix_mask(16)))?;
        assert_eq!(hit(&t, &pkt), Some(50));
        Ok(())
    }

    #[test]
    fn delete_promotes_the_next_best_and_drops_empty_groups() -> Result {
        let mut t = FlowTable::new();
        let pkt = tcp([10, 0, 0, 1], [10, 0, 0, 2], 1000, 80);
        t.insert(rule(1, 5, ACTION_ALLOW, pkt, dst_prefix_mask(8)))?;
        t.insert(rule(2, 9, ACTION_ALLOW, pkt, dst_prefix_mask(8)))?;
        t.insert(rule(3, 7, ACTION_ALLOW, pkt, five_tuple_mask()))?;
        assert_eq!((hit(&t, &pkt), t.len(), t.mask_groups()), (Some(2), 3, 2));
        t.account(2, 3, 300);
        let (removed, counters) = t.remove(2)?;
        assert_eq!((removed.id, counters.bytes), (2, 300));
        // The /8 group's maximum fell to 5: the 5-tuple (7) now ranks first.
        assert_eq!(hit(&t, &pkt), Some(3));
        t.remove(3)?;
        assert_eq!((hit(&t, &pkt), t.mask_groups()), (Some(1), 1));
        assert_eq!(t.remove(3).err(), Some(ENOENT));
        t.remove(1)?;
        assert!(t.is_empty());
        assert_eq!((hit(&t, &pkt), t.mask_groups()), (None, 0));
        // Removed rules' traffic, and traffic folded after removal, stay
        // billed.
        assert!(!t.account(1, 1, 64));
        assert_eq!(
            t.retired(),
            Counters {
                packets: 4,
                bytes: 364
            }
        );
        assert_eq!(t.totals(), t.retired());
        Ok(())
    }

    #[test]
    fn invalid_rules_are_refused_as_the_device_would() -> Result {
        let mut t = FlowTable::new();
        let pkt = tcp([10, 0, 0, 1], [10, 0, 0, 2], 1000, 80);
        let mut r = rule(1, 1, ACTION_ALLOW, pkt, five_tuple_mask());
        r.action = ACTION_ENCAP + 1;
        assert_eq!(validate(&r), Err(FlowError::BadAction));
        let mut r = rule(1, 1, ACTION_ALLOW, pkt, dst_prefix_mask(8));
        r.key = pkt;
        assert_eq!(validate(&r), Err(FlowError::KeyOutsideMask));
        // IP fields without an exact IP ethertype.
        let mut m = dst_prefix_mask(24);
        m.ethertype = 0xff00;
        let r = rule(1, 1, ACTION_ALLOW, pkt, m);
        assert_eq!(validate(&r), Err(FlowError::NeedsIpEthertype));
        // IPv4 masks beyond the 4-byte address.
        let mut m = dst_prefix_mask(24);
        m.ip_dst[5] = 0xff;
        let r = rule(1, 1, ACTION_ALLOW, pkt, m);
        assert_eq!(validate(&r), Err(FlowError::Ipv4MaskBeyondAddress));
        // Ports without an exact L4 protocol.
        let mut m = five_tuple_mask();
        m.ip_proto = 0;
        let r = rule(1, 1, ACTION_ALLOW, pkt, m);
        assert_eq!(validate(&r), Err(FlowError::NeedsL4Protocol));
        assert_eq!(t.insert(r).err(), Some(EINVAL));
        // ICMP type/code as ports over IPv4 is fine; over IPv6 it needs
        // ICMPv6.
        let mut icmp = pkt;
        icmp.ip_proto = IPPROTO_ICMP;
        assert_eq!(
            validate(&rule(1, 1, ACTION_ALLOW, icmp, five_tuple_mask())),
            Ok(())
        );
        icmp.ethertype = ETHERTYPE_IPV6;
        let mut m6 = five_tuple_mask();
        m6.ip_src = [0xff; 16];
        m6.ip_dst = [0xff; 16];
        assert_eq!(
            validate(&rule(1, 1, ACTION_ALLOW, icmp, m6)),
            Err(FlowError::NeedsL4Protocol)
        );
        // Nothing was inserted; a valid rule goes in once.
        assert!(t.is_empty());
        t.insert(rule(1, 1, ACTION_ALLOW, pkt, five_tuple_mask()))?;
        let dup = rule(1, 2, ACTION_DROP, pkt, dst_prefix_mask(8));
        assert_eq!(t.insert(dup).err(), Some(EEXIST));
        assert_eq!((t.len(), t.mask_groups()), (1, 1));
        Ok(())
    }

    #[test]
    fn lookup_agrees_with_a_linear_scan() -> Result {
        const RULES: u32 = 600;
        const LOOKUPS: u32 = 400;
        let masks = [
            five_tuple_mask(),
            dst_prefix_mask(8),
            dst_prefix_mask(16),
            dst_prefix_mask(24),
            dst_prefix_mask(32),
            FlowKey {
                ethertype: 0xffff,
                ip_proto: 0xff,
                l4_dst: 0xffff,
                ..FlowKey::default()
            },
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        // Few distinct addresses and priorities, so that rules overlap
        // and tie.
        let pick = |rng: &mut Rng| {
            let a = [
                10,
                rng.below(2) as u8,
                rng.below(3) as u8,
                rng.below(4) as u8,
            ];
            let b = [10, 0, 0, rng.below(3) as u8];
            tcp(b, a, 1000 + rng.below(2) as u16, 80 + rng.below(2) as u16)
        };
        let mut t = FlowTable::new();
        let mut all = KVec::with_capacity(RULES as usize, GFP_KERNEL)?;
        for id in 0..RULES {
            let key = pick(&mut rng);
            let mask = masks[rng.below(masks.len() as u64) as usize];
            let r = rule(id * 7 % RULES, rng.below(4) as u16, ACTION_ALLOW, key, mask);
            t.insert(r)?;
            all.push(r, GFP_KERNEL)?;
        }
        // Remove a third, so that deletions are exercised too.
        let mut live = KVec::with_capacity(RULES as usize, GFP_KERNEL)?;
        for r in all.iter() {
            if r.id % 3 == 0 {
                t.remove(r.id)?;
            } else {
                live.push(*r, GFP_KERNEL)?;
            }
        }
        for _ in 0..LOOKUPS {
            let pkt = pick(&mut rng);
            let expected = live
                .iter()
                .filter(|r| pkt.masked(&r.mask) == r.key)
                .min_by_key(|r| rank(r.priority, r.id))
                .map(|r| r.id);
            assert_eq!(hit(&t, &pkt), expected);
        }
        Ok(())
    }

    #[test]
    fn hundred_thousand_rules() -> Result {
        const N: u32 = 100_000;
        // /32 destinations, half of them also with a TCP port: two masks,
        // priorities 0..8 by ID.
        let key_of = |i: u32| {
            let [_, b, c, d] = i.to_be_bytes();
            tcp([10, 0, 0, 1], [10, b, c, d], 40000, 443 + (i % 2) as u16)
        };
        let mut port_mask = dst_prefix_mask(32);
        port_mask.ip_proto = 0xff;
        port_mask.l4_dst = 0xffff;
        let mut t = FlowTable::new();
        for i in 0..N {
            let mask = if i % 2 == 0 {
                dst_prefix_mask(32)
            } else {
                port_mask
            };
            t.insert(rule(i, (i % 8) as u16, ACTION_ALLOW, key_of(i), mask))?;
        }
        // A low-priority /8 catch-all for the tenant's range.
        t.insert(rule(N, 0, ACTION_DROP, key_of(0), dst_prefix_mask(8)))?;
        assert_eq!((t.len(), t.mask_groups()), (N as usize + 1, 3));
        for i in 0..N {
            assert_eq!(hit(&t, &key_of(i)), Some(i));
        }
        // Another port: only the /32 and /8 rules can match.
        let mut miss = key_of(3);
        miss.l4_dst = 22;
        assert_eq!(hit(&t, &miss), Some(N));
        // Every lookup is right after deleting half of the rules.
        for i in (0..N).step_by(2) {
            t.remove(i)?;
        }
        for i in 0..N {
            let expected = if i % 2 == 0 { N } else { i };
            assert_eq!(hit(&t, &key_of(i)), Some(expected));
        }
        Ok(())
    }
}
