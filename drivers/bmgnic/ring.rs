// SPDX-License-Identifier: GPL-2.0

//! Descriptor-ring bookkeeping of the tenant driver.
//!
//! Pure arithmetic on the device's ring format (`regs::desc`): free-running
//! `u32` producer and consumer indices, descriptor encoding, and the
//! folding of device counters into the netdev statistics. Kept apart from
//! the DMA and netdev code so that KUnit checks it.

use crate::regs::{desc, guest};
use kernel::{
    net::{netdev::Stats64, skb::TxOffload},
    prelude::*,
};

/// A ring's producer and consumer indices.
///
/// # Invariants
///
/// `size` is a power of two in `guest::RING_MIN..=guest::RING_MAX`, and
/// `tail - head` (wrapping) never exceeds `size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RingIndex {
    size: u32,
    /// Next slot the driver fills (producer).
    tail: u32,
    /// Next slot the device completes (consumer, from the status block).
    head: u32,
}

impl RingIndex {
    /// A ring of `size` entries, or `None` if the device would refuse it.
    pub(crate) fn new(size: u32) -> Option<Self> {
        (size.is_power_of_two() && (guest::RING_MIN..=guest::RING_MAX).contains(&size)).then_some(
            // INVARIANT: `size` checked above; `tail == head`.
            Self {
                size,
                tail: 0,
                head: 0,
            },
        )
    }

    /// Entries posted and not yet completed.
    pub(crate) fn in_flight(&self) -> u32 {
        desc::pending(self.head, self.tail)
    }

    /// Entries the driver may still post.
    pub(crate) fn free(&self) -> u32 {
        self.size - self.in_flight()
    }

    /// Slot of the next entry to post.
    pub(crate) fn tail_slot(&self) -> u32 {
        desc::slot(self.tail, self.size)
    }

    /// The producer index to write to the doorbell.
    pub(crate) fn tail(&self) -> u32 {
        self.tail
    }

    /// Posts one entry; `false` if the ring is full.
    pub(crate) fn push(&mut self) -> bool {
        if self.free() == 0 {
            return false;
        }
        // INVARIANT: at most `size` in flight after this.
        self.tail = self.tail.wrapping_add(1);
        true
    }

    /// Takes the device's consumer index from the status block; returns the
    /// slots completed since the last call, oldest first, as a range of
    /// free-running indices. A value that would complete more than was
    /// posted (a misbehaving device) completes nothing.
    pub(crate) fn complete(&mut self, device_head: u32) -> core::ops::Range<u32> {
        let done = desc::pending(self.head, device_head);
        if done > self.in_flight() {
            return self.head..self.head;
        }
        let start = self.head;
        // INVARIANT: `done <= in_flight`, so `tail - head` stays in range.
        self.head = device_head;
        start..start.wrapping_add(done)
    }

    /// Like [`Self::complete`], but completes at most `max` slots (a NAPI
    /// budget); the rest stay for the next call.
    pub(crate) fn complete_at_most(&mut self, device_head: u32, max: u32) -> core::ops::Range<u32> {
        let done = desc::pending(self.head, device_head);
        if done > self.in_flight() {
            return self.head..self.head;
        }
        self.complete(self.head.wrapping_add(done.min(max)))
    }

    /// Slot of free-running index `index`.
    pub(crate) fn slot(&self, index: u32) -> u32 {
        desc::slot(index, self.size)
    }
}

/// What the first TX descriptor of a frame carries for the offload the
/// stack asks: its flags, the `CSUM_START` (or `TSO_MSS`) field and
/// `CSUM_OFFSET`. `None` for one the device cannot do (a checksum field
/// more than 255 bytes into the header; the stack only asks for TCP's and
/// UDP's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TxFields {
    flags: u16,
    field: u16,
    csum_offset: u8,
}

impl TxFields {
    pub(crate) fn of(offload: TxOffload) -> Option<Self> {
        let (flags, field, csum_offset) = match offload {
            TxOffload::None => (0, 0, 0),
            TxOffload::Checksum { start, offset } => {
                (desc::TX_FLAG_CSUM, start, u8::try_from(offset).ok()?)
            }
            TxOffload::Segment { mss, .. } => (desc::TX_FLAG_TSO, mss, 0),
        };
        Some(Self {
            flags,
            field,
            csum_offset,
        })
    }
}

/// Encodes descriptor `index` of the `count` that carry one frame: the
/// first holds the offload, the last ends the frame.
pub(crate) fn tx_descriptor(
    addr: u64,
    len: u16,
    index: usize,
    count: usize,
    fields: TxFields,
) -> [u8; desc::SIZE] {
    let eop = if index + 1 == count {
        desc::TX_FLAG_EOP
    } else {
        0
    };
    if index == 0 {
        desc::encode_tx_offload(
            addr,
            len,
            eop | fields.flags,
            fields.field,
            fields.csum_offset,
        )
    } else {
        desc::encode(addr, len, eop)
    }
}

/// Encodes an RX descriptor posting a buffer.
pub(crate) fn rx_descriptor(addr: u64, buf_len: u16) -> [u8; desc::SIZE] {
    desc::encode(addr, buf_len, 0)
}

/// A completed RX descriptor: the frame length, if the device filled it
/// with a whole frame.
pub(crate) fn rx_completed(d: &[u8; desc::SIZE], buf_len: u16) -> Option<u16> {
    let (_, len, flags) = desc::decode(d);
    let whole = desc::RX_FLAG_DONE | desc::RX_FLAG_EOP;
    (flags & whole == whole && len != 0 && len <= buf_len).then_some(len)
}

/// A descriptor as the two `u64` words that hold its bytes in memory, for
/// rings kept as `u64` arrays.
pub(crate) fn words(d: &[u8; desc::SIZE]) -> (u64, u64) {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&d[..8]);
    hi.copy_from_slice(&d[8..]);
    (u64::from_ne_bytes(lo), u64::from_ne_bytes(hi))
}

/// The inverse of [`words`].
pub(crate) fn from_words(lo: u64, hi: u64) -> [u8; desc::SIZE] {
    let mut d = [0u8; desc::SIZE];
    d[..8].copy_from_slice(&lo.to_ne_bytes());
    d[8..].copy_from_slice(&hi.to_ne_bytes());
    d
}

/// Folds the device's counters (`guest::STAT_NAMES` order) and the
/// driver's own drops into netdev statistics. Packets the NIC dropped for
/// policy (spoofing, rules, meters, quarantine, misses) were handed to the
/// device and are TX drops; bad descriptors are TX errors; RX drops are
/// frames that reached the tenant's port and found no room or were refused.
pub(crate) fn fold_stats(device: &[u64; guest::STAT_COUNT], driver_tx_dropped: u64) -> Stats64 {
    use guest::Stat::*;
    let c = |s: guest::Stat| device[s as usize];
    let sum = |stats: &[guest::Stat]| stats.iter().fold(0u64, |a, &s| a.wrapping_add(c(s)));
    Stats64 {
        rx_packets: c(RxPackets),
        tx_packets: c(TxPackets),
        rx_bytes: c(RxBytes),
        tx_bytes: c(TxBytes),
        tx_dropped: sum(&[
            TxDropSpoofed,
            TxDropDenied,
            TxDropMetered,
            TxDropQuarantined,
            TxDropTableMiss,
        ])
        .wrapping_add(driver_tx_dropped),
        tx_errors: sum(&[TxDropTooLong, TxDropBadDescriptor]),
        rx_dropped: sum(&[RxDropNoBuffer, RxDropDenied, RxDropQuarantined]),
        rx_errors: sum(&[RxDropTooLong]),
    }
}

#[kunit_tests(bmgnic_ring)]
mod tests {
    use super::*;

    #[test]
    fn ring_sizes_follow_the_device_rules() {
        assert!(RingIndex::new(16).is_some());
        assert!(RingIndex::new(4096).is_some());
        assert!(RingIndex::new(8).is_none());
        assert!(RingIndex::new(100).is_none());
        assert!(RingIndex::new(8192).is_none());
    }

    #[test]
    fn ring_fills_completes_and_wraps() {
        let mut r = RingIndex::new(16).unwrap_or_else(|| unreachable!());
        for _ in 0..16 {
            assert!(r.push());
        }
        // A full ring refuses a 17th entry.
        assert!(!r.push());
        assert_eq!((r.in_flight(), r.free()), (16, 0));
        assert_eq!(r.complete(5), 0..5);
        assert_eq!((r.in_flight(), r.free()), (11, 5));
        // The tail slot wraps to 0.
        assert_eq!(r.tail_slot(), 0);
        // A device head past the tail completes nothing.
        assert_eq!(r.complete(40), 5..5);
        assert_eq!(r.complete(16), 5..16);
        assert_eq!(r.in_flight(), 0);
    }

    #[test]
    fn free_running_indices_survive_u32_wrap() {
        let mut r = RingIndex::new(64).unwrap_or_else(|| unreachable!());
        r.tail = u32::MAX - 2;
        r.head = u32::MAX - 2;
        for _ in 0..5 {
            assert!(r.push());
        }
        assert_eq!(r.tail(), 2);
        assert_eq!(r.in_flight(), 5);
        assert_eq!(r.slot(u32::MAX), 63);
        assert_eq!(r.slot(r.tail()), 2);
        let done = r.complete(1);
        assert_eq!((done.start, done.end), (u32::MAX - 2, 1));
        assert_eq!(r.in_flight(), 1);
    }

    #[test]
    fn budget_limits_completion() {
        let mut r = RingIndex::new(16).unwrap_or_else(|| unreachable!());
        for _ in 0..10 {
            assert!(r.push());
        }
        // The device finished 10; a budget of 4 takes 4, then the rest.
        assert_eq!(r.complete_at_most(10, 4), 0..4);
        assert_eq!(r.complete_at_most(10, 64), 4..10);
        assert_eq!(r.complete_at_most(10, 64), 10..10);
        // A head past the tail completes nothing.
        assert_eq!(r.complete_at_most(30, 64), 10..10);
    }

    fn plain() -> TxFields {
        TxFields::of(TxOffload::None).unwrap_or_else(|| unreachable!())
    }

    #[test]
    fn descriptor_words_keep_the_byte_layout() {
        let d = tx_descriptor(0x1122_3344_5566_7788, 60, 0, 1, plain());
        let (lo, hi) = words(&d);
        assert_eq!(from_words(lo, hi), d);
        // In memory the words are the descriptor's bytes, whatever the CPU.
        assert_eq!(lo.to_ne_bytes(), 0x1122_3344_5566_7788u64.to_le_bytes());
    }

    #[test]
    fn descriptors_encode_as_the_device_reads_them() {
        let d = tx_descriptor(0x1234_5678_9abc_def0, 1514, 0, 1, plain());
        assert_eq!(&d[0..8], &0x1234_5678_9abc_def0u64.to_le_bytes());
        assert_eq!(&d[8..10], &1514u16.to_le_bytes());
        assert_eq!(&d[10..12], &desc::TX_FLAG_EOP.to_le_bytes());
        assert_eq!(&d[12..16], &[0, 0, 0, 0]);
        let mut done = rx_descriptor(0x8000, 2048);
        // Not yet filled.
        assert_eq!(rx_completed(&done, 2048), None);
        done[8..10].copy_from_slice(&60u16.to_le_bytes());
        done[10..12].copy_from_slice(&(desc::RX_FLAG_DONE | desc::RX_FLAG_EOP).to_le_bytes());
        assert_eq!(rx_completed(&done, 2048), Some(60));
        // Longer than the buffer.
        assert_eq!(rx_completed(&done, 32), None);
    }

    #[test]
    fn a_frame_in_areas_carries_its_offload_first_and_ends_last() {
        let tso = TxFields::of(TxOffload::Segment {
            mss: 1448,
            ipv6: false,
        })
        .unwrap_or_else(|| unreachable!());
        let first = tx_descriptor(0x1000, 66, 0, 3, tso);
        assert_eq!(desc::decode(&first), (0x1000, 66, desc::TX_FLAG_TSO));
        assert_eq!(desc::decode_tx_offload(&first), (1448, 0));
        let middle = tx_descriptor(0x2000, 4096, 1, 3, tso);
        assert_eq!(desc::decode(&middle), (0x2000, 4096, 0));
        assert_eq!(&middle[12..16], &[0, 0, 0, 0]);
        let last = tx_descriptor(0x3000, 100, 2, 3, tso);
        assert_eq!(desc::decode(&last).2, desc::TX_FLAG_EOP);
        let csum = TxFields::of(TxOffload::Checksum {
            start: 34,
            offset: 16,
        })
        .unwrap_or_else(|| unreachable!());
        let only = tx_descriptor(0x1000, 60, 0, 1, csum);
        assert_eq!(
            desc::decode(&only).2,
            desc::TX_FLAG_CSUM | desc::TX_FLAG_EOP
        );
        assert_eq!(desc::decode_tx_offload(&only), (34, 16));
        // The field offset is one byte in the descriptor.
        let far = TxOffload::Checksum {
            start: 34,
            offset: 256,
        };
        assert_eq!(TxFields::of(far), None);
    }

    #[test]
    fn stats_fold_device_drop_reasons() {
        use guest::Stat::*;
        let mut dev = [0u64; guest::STAT_COUNT];
        dev[TxPackets as usize] = 10;
        dev[TxBytes as usize] = 1000;
        dev[RxPackets as usize] = 7;
        dev[RxBytes as usize] = 700;
        dev[TxDropSpoofed as usize] = 1;
        dev[TxDropMetered as usize] = 2;
        dev[TxDropBadDescriptor as usize] = 3;
        dev[RxDropNoBuffer as usize] = 4;
        dev[RxDropWrongVni as usize] = 100;
        dev[GuestRoWrites as usize] = 9;
        let s = fold_stats(&dev, 5);
        assert_eq!(
            (s.tx_packets, s.tx_bytes, s.rx_packets, s.rx_bytes),
            (10, 1000, 7, 700)
        );
        assert_eq!(s.tx_dropped, 1 + 2 + 5);
        assert_eq!(s.tx_errors, 3);
        // Frames of other tenants never reached this port: not its drops.
        assert_eq!(s.rx_dropped, 4);
        assert_eq!(s.rx_errors, 0);
    }
}
