// SPDX-License-Identifier: GPL-2.0

//! The NIC's flow table as a cache of the software table.
//!
//! The NIC has a fixed number of slots (`flow_slots` of its table info);
//! the software table ([`crate::flow_table`]) has many more rules. This is
//! the bookkeeping of which rule sits in which slot, with no I/O: the
//! caller sends the OEM commands each decision calls for.
//!
//! - [`NicCache::install`] places a rule (on a table-miss AEN): in a free
//!   slot, or, when the NIC is full, in the slot of the least recently used
//!   rule, which the caller first deletes with an OEM flow DEL.
//! - The DEL's answer carries the entry's final counters, which
//!   [`NicCache::fold`] attributes to the evicted rule; periodic counter
//!   reads go through [`NicCache::absorb`], which attributes what was
//!   counted since the previous read and learns which rules were hit.
//!
//! Each slot remembers the NIC counters of its entry already attributed,
//! so every packet and byte the NIC reports is attributed exactly once, to
//! the rule whose entry counted it: the sum over rules of what is folded
//! equals the sum of what the NIC counted, across any sequence of
//! installs, evictions and reads.
//!
//! Answers must be handed over in the order the NIC executed the commands
//! (NC-SI answers one command at a time per channel): a counter read
//! issued before a DEL is absorbed before the DEL's answer is folded.

use crate::ncsi_oem::{FlowCountersRecord, TableInfoRecord};
use kernel::{
    prelude::*,
    rbtree::{RBTree, RBTreeNode},
};

/// Most NIC slots the cache manages.
pub(crate) const MAX_SLOTS: u32 = 1 << 20;

/// What the caller sends for [`NicCache::install`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// The rule is in the NIC already, at `slot`: nothing to send.
    Present {
        /// Its slot.
        slot: u32,
    },
    /// `slot` was free: send a flow SET of the rule at `slot`.
    Install {
        /// The slot to write.
        slot: u32,
    },
    /// The NIC is full: send a flow DEL of `slot`, which holds `evicted`,
    /// hand its answer to [`NicCache::fold`], then send a flow SET of the
    /// rule at `slot`.
    Evict {
        /// The slot to delete and rewrite.
        slot: u32,
        /// The rule it held.
        evicted: u32,
    },
}

/// Traffic the NIC counted for a rule, not yet attributed before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Folded {
    /// The rule whose entry counted it.
    pub(crate) rule: u32,
    /// Packets.
    pub(crate) packets: u64,
    /// Bytes.
    pub(crate) bytes: u64,
}

/// State of one NIC slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Slot {
    /// The rule installed here, or being installed once the DEL of
    /// `leaving` is done.
    rule: Option<u32>,
    /// The rule whose entry a DEL in flight removes; its final counters
    /// are still to be folded.
    leaving: Option<u32>,
    /// NIC counters of the slot's current entry already attributed.
    seen_packets: u64,
    seen_bytes: u64,
    /// Time of the last install or hit, the key of the slot in `lru`.
    stamp: u64,
}

impl Slot {
    /// Counted since the last read, by the NIC record `rec` of this slot.
    fn delta(&self, rec: &FlowCountersRecord) -> (u64, u64) {
        if !rec.in_use {
            return (0, 0);
        }
        // NIC counters wrap like hardware counters: take differences.
        (
            rec.packets.wrapping_sub(self.seen_packets),
            rec.bytes.wrapping_sub(self.seen_bytes),
        )
    }
}

/// Which rule each NIC slot holds, and which to evict next.
///
/// # Invariants
///
/// A slot is either free (no rule, nothing leaving, in `free`), installed
/// (a rule, in `by_rule` and `lru`), replaced (a rule and a leaving one,
/// in `by_rule` and `lru`, not evictable before the fold) or drained (no
/// rule, a leaving one, in neither `free`, `by_rule` nor `lru`).
pub(crate) struct NicCache {
    slots: KVVec<Slot>,
    /// Free slots, the next one last; its capacity is the number of slots.
    free: KVVec<u32>,
    /// Rule to slot.
    by_rule: RBTree<u32, u32>,
    /// Stamp to slot, for slots holding a rule: least recently used first.
    lru: RBTree<u64, u32>,
    /// Logical clock of the stamps.
    clock: u64,
    installed: usize,
}

impl NicCache {
    /// A cache of an empty NIC table of `slots` slots (1 to
    /// [`MAX_SLOTS`], else `EINVAL`).
    pub(crate) fn new(slots: u32) -> Result<Self> {
        if slots == 0 || slots > MAX_SLOTS {
            return Err(EINVAL);
        }
        let n = slots as usize;
        let mut free = KVVec::with_capacity(n, GFP_KERNEL)?;
        // Slot 0 is taken first.
        for slot in (0..slots).rev() {
            free.push(slot, GFP_KERNEL)?;
        }
        Ok(Self {
            slots: KVVec::from_elem(Slot::default(), n, GFP_KERNEL)?,
            free,
            by_rule: RBTree::new(),
            lru: RBTree::new(),
            clock: 0,
            installed: 0,
        })
    }

    /// A cache of the NIC table that `info` (OEM table info) describes.
    pub(crate) fn from_table_info(info: &TableInfoRecord) -> Result<Self> {
        Self::new(info.flow_slots)
    }

    /// Number of rules installed (or being installed).
    pub(crate) fn installed(&self) -> usize {
        self.installed
    }

    /// The slot of `rule`, if it is installed.
    pub(crate) fn slot_of(&self, rule: u32) -> Option<u32> {
        self.by_rule.get(&rule).copied()
    }

    /// Installed rules and their slots, by rule: what a periodic counter
    /// read covers.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.by_rule.iter().map(|(&rule, &slot)| (rule, slot))
    }

    fn tick(&mut self) -> u64 {
        // 2^64 installs and hits would take far longer than a lifetime.
        self.clock = self.clock.wrapping_add(1);
        self.clock
    }

    /// Marks the rule in `slot` as just used.
    fn touch(&mut self, slot: u32) {
        let stamp = self.tick();
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if s.rule.is_none() {
            return;
        }
        // Re-key the slot's node: no allocation.
        if let Some(node) = self.lru.remove_node(&s.stamp) {
            self.lru
                .insert(node.into_reservation().into_node(stamp, slot));
            s.stamp = stamp;
        }
    }

    /// Decides where `rule` goes in the NIC (see [`Plan`]).
    ///
    /// `EBUSY` if the NIC is full and every slot waits for a fold; `ENOMEM`.
    /// A failure changes nothing.
    pub(crate) fn install(&mut self, rule: u32) -> Result<Plan> {
        if let Some(slot) = self.slot_of(rule) {
            self.touch(slot);
            return Ok(Plan::Present { slot });
        }
        if let Some(&slot) = self.free.last() {
            let rule_node = RBTreeNode::new(rule, slot, GFP_KERNEL)?;
            let stamp = self.clock.wrapping_add(1);
            let lru_node = RBTreeNode::new(stamp, slot, GFP_KERNEL)?;
            let s = self.slots.get_mut(slot as usize).ok_or(EINVAL)?;
            self.clock = stamp;
            self.free.pop();
            *s = Slot {
                rule: Some(rule),
                stamp,
                ..Slot::default()
            };
            self.by_rule.insert(rule_node);
            self.lru.insert(lru_node);
            self.installed += 1;
            return Ok(Plan::Install { slot });
        }

        // Full: the least recently used rule whose slot waits for nothing.
        let slots = &self.slots;
        let victim = self.lru.iter().find_map(|(&stamp, &slot)| {
            let s = slots.get(slot as usize)?;
            match (s.rule, s.leaving) {
                (Some(rule), None) => Some((stamp, slot, rule)),
                _ => None,
            }
        });
        let (old_stamp, slot, evicted) = victim.ok_or(EBUSY)?;
        let stamp = self.clock.wrapping_add(1);
        let s = self.slots.get_mut(slot as usize).ok_or(EINVAL)?;
        // Reuse the evicted rule's nodes: nothing allocates.
        let (Some(rule_node), Some(lru_node)) = (
            self.by_rule.remove_node(&evicted),
            self.lru.remove_node(&old_stamp),
        ) else {
            return Err(EINVAL);
        };
        self.clock = stamp;
        self.by_rule
            .insert(rule_node.into_reservation().into_node(rule, slot));
        self.lru
            .insert(lru_node.into_reservation().into_node(stamp, slot));
        // The counters seen so far stay: they are the leaving entry's.
        s.rule = Some(rule);
        s.leaving = Some(evicted);
        s.stamp = stamp;
        Ok(Plan::Evict { slot, evicted })
    }

    /// Takes `rule` out of the NIC (it was removed or changed in the
    /// software table): returns the slot to send a flow DEL for, whose
    /// answer goes to [`NicCache::fold`], or `None` if the rule is not
    /// installed. `EBUSY` while the slot waits for the fold of an earlier
    /// DEL.
    pub(crate) fn evict_rule(&mut self, rule: u32) -> Result<Option<u32>> {
        let Some(slot) = self.slot_of(rule) else {
            return Ok(None);
        };
        let s = self.slots.get_mut(slot as usize).ok_or(EINVAL)?;
        if s.leaving.is_some() {
            return Err(EBUSY);
        }
        self.by_rule.remove(&rule);
        self.lru.remove(&s.stamp);
        s.rule = None;
        s.leaving = Some(rule);
        self.installed -= 1;
        Ok(Some(slot))
    }

    /// Undoes the placement of `rule` whose flow SET (or the DEL before
    /// it) failed or timed out: the rule is no longer installed, and the
    /// slot waits for a DEL whose answer goes to [`NicCache::fold`], as the
    /// NIC may have applied the SET anyway. Returns that slot, or `None` if
    /// `rule` is not placed.
    pub(crate) fn cancel_install(&mut self, rule: u32) -> Result<Option<u32>> {
        let Some(slot) = self.slot_of(rule) else {
            return Ok(None);
        };
        let s = self.slots.get_mut(slot as usize).ok_or(EINVAL)?;
        self.by_rule.remove(&rule);
        self.lru.remove(&s.stamp);
        s.rule = None;
        // A replaced slot's leaving entry is deleted first, and the SET
        // was never sent; otherwise the SET's entry may be in the NIC.
        s.leaving = s.leaving.or(Some(rule));
        self.installed -= 1;
        Ok(Some(slot))
    }

    /// Folds the answer of the flow DEL of `slot` (its entry's final
    /// counters) and returns what the leaving rule counted since the last
    /// read. The slot's next entry starts from zero, as the NIC's SET
    /// starts it. `EINVAL` if no DEL of `slot` is in flight or `counters`
    /// is another slot's.
    pub(crate) fn fold(&mut self, slot: u32, counters: &FlowCountersRecord) -> Result<Folded> {
        if counters.slot != slot {
            return Err(EINVAL);
        }
        let s = self.slots.get_mut(slot as usize).ok_or(EINVAL)?;
        let rule = s.leaving.ok_or(EINVAL)?;
        if s.rule.is_none() {
            // Drained: the slot is free again. `free` has room for every
            // slot, so this does not allocate.
            self.free.push(slot, GFP_KERNEL)?;
        }
        let (packets, bytes) = s.delta(counters);
        s.leaving = None;
        s.seen_packets = 0;
        s.seen_bytes = 0;
        Ok(Folded {
            rule,
            packets,
            bytes,
        })
    }

    /// Absorbs a periodic read of `slot`'s counters (an OEM flow counters
    /// GET): returns what was counted since the previous read, if
    /// anything, and marks the rule as used if it was hit. `EINVAL` if
    /// `counters` is another slot's.
    pub(crate) fn absorb(
        &mut self,
        slot: u32,
        counters: &FlowCountersRecord,
    ) -> Result<Option<Folded>> {
        if counters.slot != slot {
            return Err(EINVAL);
        }
        let s = self.slots.get_mut(slot as usize).ok_or(EINVAL)?;
        // Before its DEL, the NIC still holds the leaving rule's entry.
        let Some(rule) = s.leaving.or(s.rule) else {
            return Ok(None);
        };
        if !counters.in_use {
            // No entry (its SET is still to come): it counted nothing,
            // and its entry will start from zero.
            s.seen_packets = 0;
            s.seen_bytes = 0;
            return Ok(None);
        }
        let (packets, bytes) = s.delta(counters);
        s.seen_packets = counters.packets;
        s.seen_bytes = counters.bytes;
        if packets != 0 && s.leaving.is_none() {
            self.touch(slot);
        }
        Ok((packets != 0 || bytes != 0).then_some(Folded {
            rule,
            packets,
            bytes,
        }))
    }
}

#[kunit_tests(bmgnic_rme_nic_cache)]
mod tests {
    use super::*;
    use core::num::NonZeroU64;

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        /// A number below `n` (0 if `n` is 0).
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
            NonZeroU64::new(n).map_or(0, |n| x % n)
        }
    }

    /// What the simulated NIC holds in a slot.
    #[derive(Clone, Copy, Default)]
    struct NicSlot {
        rule: Option<u32>,
        packets: u64,
        bytes: u64,
    }

    /// The NIC's answer to a counters GET or a DEL of `slot`.
    fn read(nic: &[NicSlot], slot: u32) -> FlowCountersRecord {
        let e = nic[slot as usize];
        FlowCountersRecord {
            slot,
            in_use: e.rule.is_some(),
            packets: e.packets,
            bytes: e.bytes,
            idle_ms: 0,
        }
    }

    fn counters(slot: u32, packets: u64, bytes: u64) -> FlowCountersRecord {
        FlowCountersRecord {
            slot,
            in_use: true,
            packets,
            bytes,
            idle_ms: 0,
        }
    }

    /// Random traffic on a slot's entry, if it has one, also counted in
    /// `truth` for the entry's rule.
    fn traffic(nic: &mut [NicSlot], truth: &mut [(u64, u64)], rng: &mut Rng) {
        let slot = rng.below(nic.len() as u64) as usize;
        if let Some(rule) = nic[slot].rule {
            let packets = 1 + rng.below(4);
            let bytes = packets * (60 + rng.below(1455));
            nic[slot].packets += packets;
            nic[slot].bytes += bytes;
            let t = &mut truth[rule as usize];
            *t = (t.0 + packets, t.1 + bytes);
        }
    }

    /// Adds what `f` attributes to its rule.
    fn bill(billed: &mut [(u64, u64)], f: Folded) {
        let b = &mut billed[f.rule as usize];
        *b = (b.0 + f.packets, b.1 + f.bytes);
    }

    #[test]
    fn no_byte_lost_across_10000_evictions() -> Result {
        const SLOTS: u32 = 8;
        const RULES: u32 = 64;
        let mut cache = NicCache::new(SLOTS)?;
        let mut nic = KVec::from_elem(NicSlot::default(), SLOTS as usize, GFP_KERNEL)?;
        // Per rule: (packets, bytes) the NIC counted, and what was folded.
        let mut truth = KVec::from_elem((0u64, 0u64), RULES as usize, GFP_KERNEL)?;
        let mut billed = KVec::from_elem((0u64, 0u64), RULES as usize, GFP_KERNEL)?;
        let mut rng = Rng(0x853c_49e6_748f_ea9b);
        let mut evictions = 0;

        while evictions < 10_000 {
            let rule = rng.below(u64::from(RULES)) as u32;
            match cache.install(rule)? {
                Plan::Present { slot } => assert_eq!(nic[slot as usize].rule, Some(rule)),
                Plan::Install { slot } => {
                    assert!(nic[slot as usize].rule.is_none());
                    nic[slot as usize] = NicSlot {
                        rule: Some(rule),
                        ..NicSlot::default()
                    };
                }
                Plan::Evict { slot, evicted } => {
                    assert_eq!(nic[slot as usize].rule, Some(evicted));
                    // The old entry still counts, and may be read, until
                    // the DEL.
                    traffic(&mut nic, &mut truth, &mut rng);
                    if rng.below(2) == 0 {
                        if let Some(f) = cache.absorb(slot, &read(&nic, slot))? {
                            assert_eq!(f.rule, evicted);
                            bill(&mut billed, f);
                        }
                    }
                    // DEL: the answer carries the final counters.
                    let last = read(&nic, slot);
                    nic[slot as usize] = NicSlot::default();
                    let f = cache.fold(slot, &last)?;
                    assert_eq!(f.rule, evicted);
                    bill(&mut billed, f);
                    // SET: the new entry starts from zero.
                    nic[slot as usize] = NicSlot {
                        rule: Some(rule),
                        ..NicSlot::default()
                    };
                    evictions += 1;
                }
            }
            for _ in 0..3 {
                traffic(&mut nic, &mut truth, &mut rng);
            }
            // A periodic counter read of one slot.
            if rng.below(3) == 0 {
                let slot = rng.below(u64::from(SLOTS)) as u32;
                if let Some(f) = cache.absorb(slot, &read(&nic, slot))? {
                    bill(&mut billed, f);
                }
            }
        }
        // Take every rule out of the NIC.
        for rule in 0..RULES {
            if let Some(slot) = cache.evict_rule(rule)? {
                let last = read(&nic, slot);
                nic[slot as usize] = NicSlot::default();
                bill(&mut billed, cache.fold(slot, &last)?);
            }
        }
        assert_eq!(cache.installed(), 0);
        let (mut sum_truth, mut sum_billed) = ((0u64, 0u64), (0u64, 0u64));
        for (t, b) in truth.iter().zip(billed.iter()) {
            assert_eq!(t, b);
            sum_truth = (sum_truth.0 + t.0, sum_truth.1 + t.1);
            sum_billed = (sum_billed.0 + b.0, sum_billed.1 + b.1);
        }
        assert_eq!(sum_truth, sum_billed);
        assert!(sum_truth.1 > 10_000 * 60);
        // Every slot is free again: eight new rules need no eviction.
        for rule in 100..100 + SLOTS {
            assert!(matches!(cache.install(rule)?, Plan::Install { .. }));
        }
        Ok(())
    }

    #[test]
    fn least_recently_used_is_evicted() -> Result {
        let mut cache = NicCache::new(3)?;
        assert_eq!(cache.install(1)?, Plan::Install { slot: 0 });
        assert_eq!(cache.install(2)?, Plan::Install { slot: 1 });
        assert_eq!(cache.install(3)?, Plan::Install { slot: 2 });
        // A counter read shows rule 1 was hit: 2 is now the oldest.
        let f = cache.absorb(0, &counters(0, 5, 500))?;
        assert_eq!(
            f,
            Some(Folded {
                rule: 1,
                packets: 5,
                bytes: 500
            })
        );
        // A read with no new packets is no hit and attributes nothing.
        assert_eq!(cache.absorb(0, &counters(0, 5, 500))?, None);
        assert_eq!(
            cache.install(4)?,
            Plan::Evict {
                slot: 1,
                evicted: 2
            }
        );
        assert_eq!(cache.slot_of(2), None);
        assert_eq!(cache.slot_of(4), Some(1));
        // A hit by install (another miss for rule 3) refreshes it too.
        assert_eq!(cache.install(3)?, Plan::Present { slot: 2 });
        // Slot 1 waits for its fold: rule 4 is skipped, 1 goes, then 3.
        assert_eq!(
            cache.install(5)?,
            Plan::Evict {
                slot: 0,
                evicted: 1
            }
        );
        assert_eq!(
            cache.install(6)?,
            Plan::Evict {
                slot: 2,
                evicted: 3
            }
        );
        // Every slot waits for a fold: nothing is evictable.
        assert_eq!(cache.install(7).err(), Some(EBUSY));
        let f = cache.fold(1, &counters(1, 2, 128))?;
        assert_eq!((f.rule, f.packets, f.bytes), (2, 2, 128));
        // Rule 4, the oldest, can go now.
        assert_eq!(
            cache.install(7)?,
            Plan::Evict {
                slot: 1,
                evicted: 4
            }
        );
        // Rule 1's final counters are those already read: nothing new.
        let f = cache.fold(0, &counters(0, 5, 500))?;
        assert_eq!((f.rule, f.packets, f.bytes), (1, 0, 0));
        // Folds are checked: no DEL in flight, another slot's record.
        assert_eq!(cache.fold(0, &counters(0, 5, 500)).err(), Some(EINVAL));
        assert_eq!(cache.fold(2, &counters(1, 1, 1)).err(), Some(EINVAL));
        assert_eq!(cache.absorb(9, &counters(9, 1, 1)).err(), Some(EINVAL));
        assert_eq!(NicCache::new(0).err(), Some(EINVAL));
        Ok(())
    }

    #[test]
    fn evicted_rule_reinstalls_without_double_counting() -> Result {
        let mut cache = NicCache::new(2)?;
        assert_eq!(cache.install(10)?, Plan::Install { slot: 0 });
        assert_eq!(cache.install(20)?, Plan::Install { slot: 1 });
        // Rule 10 counted 4 packets by the periodic read, 10 in all when
        // deleted: the fold adds the remaining 6.
        let read = cache.absorb(0, &counters(0, 4, 400))?;
        assert_eq!(read.map(|f| (f.rule, f.bytes)), Some((10, 400)));
        cache.absorb(1, &counters(1, 9, 900))?;
        assert_eq!(
            cache.install(30)?,
            Plan::Evict {
                slot: 0,
                evicted: 10
            }
        );
        let f = cache.fold(0, &counters(0, 10, 1000))?;
        assert_eq!((f.rule, f.packets, f.bytes), (10, 6, 600));
        // Rule 10 misses again and comes back in rule 20's slot.
        assert_eq!(
            cache.install(10)?,
            Plan::Evict {
                slot: 1,
                evicted: 20
            }
        );
        let f = cache.fold(1, &counters(1, 9, 900))?;
        assert_eq!((f.rule, f.packets), (20, 0));
        // Its new entry starts from zero: 3 packets are 3, not 3 - 10.
        let f = cache.absorb(1, &counters(1, 3, 300))?;
        assert_eq!(
            f,
            Some(Folded {
                rule: 10,
                packets: 3,
                bytes: 300
            })
        );
        // Removing it from the software table deletes it from the NIC.
        assert_eq!(cache.evict_rule(10)?, Some(1));
        assert_eq!(cache.evict_rule(10)?, None);
        let f = cache.fold(1, &counters(1, 5, 520))?;
        assert_eq!((f.rule, f.packets, f.bytes), (10, 2, 220));
        // Its slot is free again.
        assert_eq!(cache.install(40)?, Plan::Install { slot: 1 });
        assert_eq!(cache.installed(), 2);
        Ok(())
    }

    #[test]
    fn a_failed_install_leaves_a_slot_that_a_later_del_frees() {
        let mut c = NicCache::new(2).unwrap_or_else(|_| unreachable!());
        assert_eq!(c.install(1), Ok(Plan::Install { slot: 0 }));
        // The SET timed out: the NIC may hold the entry, so the slot waits
        // for a DEL and is neither free nor installed meanwhile.
        assert_eq!(c.cancel_install(1), Ok(Some(0)));
        assert_eq!(c.installed(), 0);
        assert_eq!(c.slot_of(1), None);
        assert_eq!(c.install(2), Ok(Plan::Install { slot: 1 }));
        assert_eq!(
            c.install(3),
            Ok(Plan::Evict {
                slot: 1,
                evicted: 2
            })
        );
        // The eviction's DEL timed out too: cancel the new rule as well.
        assert_eq!(c.cancel_install(3), Ok(Some(1)));
        // Nothing is evictable until the DELs are retried.
        assert_eq!(c.install(4), Err(EBUSY));
        let gone = |slot| FlowCountersRecord {
            slot,
            ..Default::default()
        };
        // Retried DELs (the NIC had applied them, or not) free both slots.
        assert_eq!(c.fold(0, &gone(0)).map(|f| f.rule), Ok(1));
        assert_eq!(c.fold(1, &gone(1)).map(|f| f.rule), Ok(2));
        assert_eq!(c.install(4), Ok(Plan::Install { slot: 1 }));
        assert_eq!(c.install(5), Ok(Plan::Install { slot: 0 }));
        assert_eq!(c.installed(), 2);
    }
}
