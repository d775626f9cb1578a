// SPDX-License-Identifier: GPL-2.0

//! Token-bucket meters: the bandwidth limits the RME sets per tenant flow.
//!
//! A meter holds up to `burst` bytes of tokens and gains `rate` bytes of
//! tokens per second; a packet passes if the bucket holds its length, which
//! it then spends. Over any interval T a meter thus admits at most
//! `burst + rate * T` bytes.
//!
//! Tokens are kept in nanobytes (10^-9 byte), the unit in which `rate`
//! bytes/s times elapsed nanoseconds is exact, so frequent small refills
//! lose nothing to rounding. Every bound fits the integers used:
//!
//! - tokens never exceed `burst * 10^9 <= u32::MAX * 10^9 < 2^62`;
//! - a refill `rate * elapsed_ns` is computed in `u128`, where even
//!   `u64::MAX * u64::MAX` fits, so any rate (100 Gbit/s is 1.25 * 10^10
//!   bytes/s) after any idle time is safe, and is then capped at the burst.
//!
//! The clock is the caller's (`now_ns`), so tests run on simulated time.

use crate::ncsi_oem::{self, MeterCountersRecord, MeterRecord};

/// Number of meters of the model's table.
pub const DEFAULT_METERS: u16 = 256;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A token-bucket meter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meter {
    /// The rate and burst count packets (each costs one token), not bytes.
    packets: bool,
    /// Refill rate in bytes (or packets) per second; 0 blocks everything.
    rate: u64,
    /// Bucket depth in bytes.
    burst: u32,
    /// Tokens in nanobytes, at most `burst * NANOS_PER_SEC`.
    tokens: u64,
    /// Caller's clock at the last refill.
    last_ns: u64,
    /// What the meter let through and dropped since it was set.
    passed_packets: u64,
    passed_bytes: u64,
    dropped_packets: u64,
    dropped_bytes: u64,
}

impl Meter {
    /// A meter configured by `rec`, its bucket full at `now_ns`: a new
    /// limit does not penalise the traffic that was flowing before it.
    pub fn new(rec: &MeterRecord, now_ns: u64) -> Self {
        Self {
            packets: rec.counts_packets(),
            rate: rec.rate,
            burst: rec.burst,
            tokens: Self::capacity_nanobytes(rec.burst),
            last_ns: now_ns,
            passed_packets: 0,
            passed_bytes: 0,
            dropped_packets: 0,
            dropped_bytes: 0,
        }
    }

    fn capacity_nanobytes(burst: u32) -> u64 {
        // u32::MAX * 10^9 < 2^62: no overflow.
        u64::from(burst) * NANOS_PER_SEC
    }

    /// Sustained rate in bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Bucket depth in bytes.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Whole bytes of tokens in the bucket as of the last call.
    pub fn tokens(&self) -> u64 {
        self.tokens / NANOS_PER_SEC
    }

    /// The meter's configuration as the NC-SI record at `index`.
    pub fn record(&self, index: u16) -> MeterRecord {
        MeterRecord {
            index,
            flags: if self.packets {
                ncsi_oem::METER_FLAG_PACKETS
            } else {
                0
            },
            rate: self.rate,
            burst: self.burst,
        }
    }

    /// The meter's counters as the NC-SI record at `index`.
    pub fn counters(&self, index: u16) -> MeterCountersRecord {
        MeterCountersRecord {
            index,
            in_use: true,
            passed_packets: self.passed_packets,
            passed_bytes: self.passed_bytes,
            dropped_packets: self.dropped_packets,
            dropped_bytes: self.dropped_bytes,
        }
    }

    /// Adds the tokens earned since the last refill. A clock that went
    /// backwards earns nothing, and the later of the two times is kept so
    /// that no interval is credited twice.
    fn refill(&mut self, now_ns: u64) {
        let Some(elapsed) = now_ns.checked_sub(self.last_ns) else {
            return;
        };
        let earned = u128::from(self.rate) * u128::from(elapsed);
        let capacity = Self::capacity_nanobytes(self.burst);
        let filled = u128::from(self.tokens).saturating_add(earned);
        // At most `capacity`, which is a u64.
        self.tokens = filled.min(u128::from(capacity)) as u64;
        self.last_ns = now_ns;
    }

    /// Whether a packet of `bytes` conforms at `now_ns`; if so its tokens
    /// are spent (one per packet for a packet meter). A packet longer than
    /// the burst of a byte meter never conforms, so that burst should be
    /// at least the largest frame (MTU plus headers). Either way the packet
    /// is counted, as passed or dropped.
    pub fn admit(&mut self, bytes: u32, now_ns: u64) -> bool {
        let conforms = self.conforms(bytes, now_ns);
        let (packets, total) = if conforms {
            (&mut self.passed_packets, &mut self.passed_bytes)
        } else {
            (&mut self.dropped_packets, &mut self.dropped_bytes)
        };
        *packets = packets.wrapping_add(1);
        *total = total.wrapping_add(u64::from(bytes));
        conforms
    }

    fn conforms(&mut self, bytes: u32, now_ns: u64) -> bool {
        if self.rate == 0 {
            // A zero rate blocks the flow outright, whatever tokens are
            // left: the RME's way of cutting a flow off with one record.
            return false;
        }
        self.refill(now_ns);
        let cost = if self.packets { 1 } else { u64::from(bytes) } * NANOS_PER_SEC;
        match self.tokens.checked_sub(cost) {
            Some(left) => {
                self.tokens = left;
                true
            }
            None => false,
        }
    }

    /// Applies a new rate and burst at `now_ns`, keeping the tokens already
    /// earned (up to the new burst) so that changing a limit neither grants
    /// a fresh burst nor takes away earned credit.
    pub fn reconfigure(&mut self, rec: &MeterRecord, now_ns: u64) {
        self.refill(now_ns);
        self.packets = rec.counts_packets();
        self.rate = rec.rate;
        self.burst = rec.burst;
        self.tokens = self.tokens.min(Self::capacity_nanobytes(rec.burst));
    }
}

/// Why a meter table operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeterError {
    /// The index is not below the table's capacity.
    IndexOutOfRange {
        /// The index asked for.
        index: u16,
        /// The table's number of meters.
        capacity: u16,
    },
}

impl std::fmt::Display for MeterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::IndexOutOfRange { index, capacity } => {
                write!(f, "meter {index} out of range (capacity {capacity})")
            }
        }
    }
}

impl std::error::Error for MeterError {}

/// The meters, by index. Since capacity is a `u16`, the highest valid
/// index is 0xfffe and [`crate::ncsi_oem::NO_METER`] never names a meter.
#[derive(Clone, Debug)]
pub struct MeterTable {
    meters: Vec<Option<Meter>>,
}

impl Default for MeterTable {
    fn default() -> Self {
        Self::new(DEFAULT_METERS)
    }
}

impl MeterTable {
    /// An empty table of `capacity` meters.
    pub fn new(capacity: u16) -> Self {
        Self {
            meters: vec![None; usize::from(capacity)],
        }
    }

    /// Number of meter indices.
    pub fn capacity(&self) -> u16 {
        // Built from a u16 in `new`.
        self.meters.len() as u16
    }

    /// Number of configured meters.
    pub fn len(&self) -> usize {
        self.meters.iter().flatten().count()
    }

    /// Whether no meter is configured.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slot_mut(&mut self, index: u16) -> Result<&mut Option<Meter>, MeterError> {
        let capacity = self.capacity();
        self.meters
            .get_mut(usize::from(index))
            .ok_or(MeterError::IndexOutOfRange { index, capacity })
    }

    /// Configures meter `rec.index`: a new meter starts full, an existing
    /// one is reconfigured (see [`Meter::reconfigure`]).
    pub fn set(&mut self, rec: &MeterRecord, now_ns: u64) -> Result<(), MeterError> {
        match self.slot_mut(rec.index)? {
            Some(meter) => meter.reconfigure(rec, now_ns),
            empty => *empty = Some(Meter::new(rec, now_ns)),
        }
        Ok(())
    }

    /// The configuration of meter `index`, if configured.
    pub fn get(&self, index: u16) -> Option<MeterRecord> {
        let meter = self.meters.get(usize::from(index))?.as_ref()?;
        Some(meter.record(index))
    }

    /// The counters of meter `index`; a meter not set has none.
    pub fn counters(&self, index: u16) -> MeterCountersRecord {
        match self.meters.get(usize::from(index)) {
            Some(Some(meter)) => meter.counters(index),
            _ => MeterCountersRecord {
                index,
                ..MeterCountersRecord::default()
            },
        }
    }

    /// The meter at `index`, if configured.
    pub fn get_mut(&mut self, index: u16) -> Option<&mut Meter> {
        self.meters.get_mut(usize::from(index))?.as_mut()
    }

    /// Removes meter `index`, returning its configuration if it had one.
    pub fn del(&mut self, index: u16) -> Result<Option<MeterRecord>, MeterError> {
        let removed = self.slot_mut(index)?.take();
        Ok(removed.map(|m| m.record(index)))
    }

    /// [`Meter::admit`] on meter `index`; `None` if no such meter.
    pub fn admit(&mut self, index: u16, bytes: u32, now_ns: u64) -> Option<bool> {
        Some(self.get_mut(index)?.admit(bytes, now_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncsi_oem::NO_METER;

    const MS: u64 = 1_000_000;
    const SEC: u64 = 1_000_000_000;

    fn record(rate: u64, burst: u32) -> MeterRecord {
        MeterRecord {
            flags: 0,
            index: 0,
            rate,
            burst,
        }
    }

    /// Offers `bytes`-long packets every `interval_ns` over
    /// `[start, start + duration)` and returns the bytes admitted.
    fn offer(m: &mut Meter, bytes: u32, interval_ns: u64, start: u64, duration: u64) -> u64 {
        let mut admitted = 0;
        let mut t = start;
        while t < start + duration {
            if m.admit(bytes, t) {
                admitted += u64::from(bytes);
            }
            t += interval_ns;
        }
        admitted
    }

    /// Admits back-to-back at one instant until refused; returns the bytes.
    fn drain(m: &mut Meter, bytes: u32, now: u64) -> u64 {
        let mut admitted = 0;
        while m.admit(bytes, now) {
            admitted += u64::from(bytes);
        }
        admitted
    }

    #[test]
    fn tenfold_overload_admits_rate_plus_burst() {
        const RATE: u64 = 1_000_000;
        const BURST: u32 = 15_000;
        let mut m = Meter::new(&record(RATE, BURST), 0);
        // 1500 bytes at 10 MB/s: one packet every 150 us.
        let interval = 1500 * SEC / (10 * RATE);
        let admitted = offer(&mut m, 1500, interval, 0, SEC);
        let expected = RATE + u64::from(BURST);
        let error = admitted.abs_diff(expected);
        assert!(
            error * 50 <= expected,
            "admitted {admitted}, expected {expected} within 2%"
        );
        // The arithmetic is exact: off by less than one packet.
        assert!(admitted <= expected && error < 1500, "admitted {admitted}");
    }

    #[test]
    fn burst_is_allowed_up_to_burst() {
        let mut m = Meter::new(&record(1_000_000, 15_000), 0);
        assert_eq!(drain(&mut m, 1500, 0), 15_000);
        assert!(!m.admit(1, 0));

        // Partial fills: what is left can still pass smaller packets.
        let mut m = Meter::new(&record(1_000_000, 4_000), 5 * SEC);
        assert!(m.admit(1500, 5 * SEC));
        assert!(m.admit(1500, 5 * SEC));
        assert!(!m.admit(1500, 5 * SEC));
        assert!(m.admit(1000, 5 * SEC));
        assert!(!m.admit(1, 5 * SEC));
        assert_eq!(m.tokens(), 0);
    }

    #[test]
    fn idle_does_not_accumulate_beyond_burst() {
        let mut m = Meter::new(&record(1_000_000, 15_000), 0);
        drain(&mut m, 1500, 0);
        let an_hour = 3600 * SEC;
        assert_eq!(m.tokens(), 0);
        assert_eq!(drain(&mut m, 1500, an_hour), 15_000);
        assert_eq!(drain(&mut m, 1, an_hour), 0);
    }

    #[test]
    fn rate_zero_admits_nothing() {
        let mut m = Meter::new(&record(0, 15_000), 0);
        for t in [0, 1, SEC, 3600 * SEC, u64::MAX] {
            assert!(!m.admit(1, t));
            assert!(!m.admit(0, t));
        }
    }

    #[test]
    fn packet_larger_than_burst_never_passes() {
        let mut m = Meter::new(&record(1_000_000, 1500), 0);
        assert!(!m.admit(1501, 10 * SEC));
        assert!(m.admit(1500, 10 * SEC));
    }

    #[test]
    fn small_refills_lose_nothing_to_rounding() {
        // 1000 bytes/s checked every 100 us earns 0.1 byte per call: a
        // meter that rounded each refill down would admit nothing.
        let mut m = Meter::new(&record(1000, 100), 0);
        drain(&mut m, 1, 0);
        let admitted = offer(&mut m, 1, 100_000, 100_000, SEC);
        assert_eq!(admitted, 1000);
    }

    #[test]
    fn clock_going_backwards_credits_nothing_twice() {
        let mut m = Meter::new(&record(1_000_000, 15_000), 0);
        drain(&mut m, 1500, SEC);
        assert!(!m.admit(1500, SEC / 2));
        // From SEC, not from SEC / 2: 1 ms earns 1000 bytes.
        assert_eq!(drain(&mut m, 100, SEC + MS), 1000);
    }

    #[test]
    fn high_rates_and_long_idle_do_not_overflow() {
        // 100 Gbit/s.
        const RATE: u64 = 12_500_000_000;
        let mut m = Meter::new(&record(RATE, u32::MAX), 0);
        assert!(m.admit(u32::MAX, 0));
        assert!(!m.admit(1, 0));
        assert!(m.admit(u32::MAX, u64::MAX));
        assert!(!m.admit(1, u64::MAX));

        let mut extreme = Meter::new(&record(u64::MAX, u32::MAX), 0);
        drain(&mut extreme, u32::MAX, 0);
        assert!(extreme.admit(u32::MAX, u64::MAX));

        // 1 ms at 100 Gbit/s with 9000-byte frames at twice the rate.
        let mut m = Meter::new(&record(RATE, 64_000), 0);
        let interval = 9000 * SEC / (2 * RATE);
        let admitted = offer(&mut m, 9000, interval, 0, MS);
        let expected = RATE / 1000 + 64_000;
        // Short by the last interval's earnings and one frame's rounding.
        assert!(admitted <= expected && (expected - admitted) * 1000 < expected);
    }

    #[test]
    fn reconfigure_keeps_earned_tokens_up_to_new_burst() {
        let mut m = Meter::new(&record(1_000_000, 15_000), 0);
        drain(&mut m, 1000, 0);
        // 5 ms at the old rate earns 5000 bytes, kept across the change.
        m.reconfigure(&record(2_000_000, 30_000), 5 * MS);
        assert_eq!(m.tokens(), 5000);
        // Shrinking the burst caps what is held.
        m.reconfigure(&record(2_000_000, 2_000), 5 * MS);
        assert_eq!(m.tokens(), 2000);
        assert_eq!((m.rate(), m.burst()), (2_000_000, 2_000));
    }

    #[test]
    fn table_set_get_del() {
        let mut t = MeterTable::new(4);
        assert!(t.is_empty());
        assert_eq!(MeterTable::default().capacity(), DEFAULT_METERS);
        let rec = MeterRecord {
            flags: 0,
            index: 2,
            rate: 1_000_000,
            burst: 3000,
        };
        t.set(&rec, 0).unwrap();
        assert_eq!(t.get(2), Some(rec));
        assert_eq!(t.len(), 1);
        assert_eq!(t.admit(2, 1500, 0), Some(true));
        assert_eq!(t.admit(2, 1500, 0), Some(true));
        assert_eq!(t.admit(2, 1500, 0), Some(false));
        assert_eq!(t.admit(1, 1500, 0), None);

        // Setting again reconfigures in place: no fresh burst, and the
        // counters go on.
        t.set(&rec, 0).unwrap();
        assert_eq!(t.admit(2, 1500, 0), Some(false));
        assert_eq!(t.get_mut(2).map(|m| m.tokens()), Some(0));
        let counted = MeterCountersRecord {
            index: 2,
            in_use: true,
            passed_packets: 2,
            passed_bytes: 3000,
            dropped_packets: 2,
            dropped_bytes: 3000,
        };
        assert_eq!(t.counters(2), counted);
        assert!(!t.counters(1).in_use);

        assert_eq!(t.del(2), Ok(Some(rec)));
        assert_eq!(t.del(2), Ok(None));
        assert_eq!(t.get(2), None);
        assert!(t.is_empty());
        // A meter set again starts counting from zero.
        assert_eq!(
            t.counters(2),
            MeterCountersRecord {
                index: 2,
                ..MeterCountersRecord::default()
            }
        );
        t.set(&rec, 0).unwrap();
        assert_eq!(t.counters(2).dropped_packets, 0);
    }

    #[test]
    fn table_index_out_of_range() {
        let mut t = MeterTable::new(4);
        let out = |index| MeterError::IndexOutOfRange { index, capacity: 4 };
        let rec = MeterRecord {
            flags: 0,
            index: 4,
            rate: 1,
            burst: 1,
        };
        assert_eq!(t.set(&rec, 0), Err(out(4)));
        assert_eq!(t.del(NO_METER), Err(out(NO_METER)));
        assert_eq!(t.get(4), None);
        assert_eq!(t.admit(NO_METER, 1, 0), None);

        let mut full = MeterTable::new(u16::MAX);
        let top = MeterRecord {
            flags: 0,
            index: NO_METER,
            ..rec
        };
        let err = MeterError::IndexOutOfRange {
            index: NO_METER,
            capacity: u16::MAX,
        };
        assert_eq!(full.set(&top, 0), Err(err), "NO_METER never names a meter");
    }

    #[test]
    fn a_packet_meter_counts_packets_whatever_their_size() {
        let rec = MeterRecord {
            flags: ncsi_oem::METER_FLAG_PACKETS,
            index: 0,
            rate: 1000,
            burst: 10,
        };
        let mut m = Meter::new(&rec, 0);
        // The burst: 10 packets, jumbo or tiny, then nothing until tokens
        // come back at 1000 packets/s (one per millisecond).
        let admitted = (0..20)
            .filter(|i| m.admit(if i % 2 == 0 { 9000 } else { 60 }, 0))
            .count();
        assert_eq!(admitted, 10);
        assert!(!m.admit(60, MS / 2));
        assert!(m.admit(9000, MS));
        // Over a second at 5000 packets/s offered: 1000 (+ the burst) pass.
        let mut m = Meter::new(&rec, 0);
        let passed = (0..5000).filter(|i| m.admit(1400, i * SEC / 5000)).count();
        assert!((1000..=1011).contains(&passed), "{passed} packets passed");
        assert_eq!(m.record(0), rec);
    }
}
