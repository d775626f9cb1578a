// SPDX-License-Identifier: GPL-2.0

//! Counters (the device's and the driver's own) and the ethtool
//! operations.

use super::*;

/// Statistics the driver keeps itself, after the device's in `ethtool -S`.
pub(super) const DRIVER_STAT_NAMES: [&str; 4] = [
    "driver_tx_dropped",
    "driver_rx_alloc_failed",
    "driver_rx_bad_descriptor",
    "driver_resets",
];
pub(super) const STAT_NAMES: [&str; guest::STAT_COUNT + DRIVER_STAT_NAMES.len()] = {
    let mut names = [""; guest::STAT_COUNT + DRIVER_STAT_NAMES.len()];
    let mut i = 0;
    while i < guest::STAT_COUNT {
        names[i] = guest::STAT_NAMES[i];
        i += 1;
    }
    while i < names.len() {
        names[i] = DRIVER_STAT_NAMES[i - guest::STAT_COUNT];
        i += 1;
    }
    names
};

/// Reads the device's 64-bit counters (slow path: MMIO reads of both
/// halves). The high half is read before and after the low one: if it
/// moved, the low half wrapped in between and is read again, so a value
/// never tears.
pub(super) fn read_counters(bar: Regs<'_>, out: &mut [u64; guest::STAT_COUNT]) {
    for (i, value) in out.iter_mut().enumerate() {
        let read_lo = || bar0::STAT_LO::try_at(i).map_or(0, |r| bar.read(r).into_raw());
        let read_hi = || bar0::STAT_HI::try_at(i).map_or(0, |r| bar.read(r).into_raw());
        let mut hi = read_hi();
        let mut lo = read_lo();
        let hi_after = read_hi();
        if hi_after != hi {
            hi = hi_after;
            lo = read_lo();
        }
        *value = u64::from(lo) | (u64::from(hi) << 32);
    }
}

#[vtable]
impl ethtool::Operations for Nic {
    const SUPPORTED_COALESCE_PARAMS: u32 = ethtool::COALESCE_RX_USECS;

    fn get_ringparam(dev: &Device<Self>, ring: &mut RingParam) {
        let s = *dev.data().settings.lock();
        *ring = RingParam {
            rx_max: guest::RING_MAX,
            tx_max: guest::RING_MAX,
            rx: s.rx_size,
            tx: s.tx_size,
        };
    }

    fn set_ringparam(dev: &Device<Self>, ring: &RingParam, extack: &mut ExtAck<'_>) -> Result {
        if RingIndex::new(ring.rx).is_none() || RingIndex::new(ring.tx).is_none() {
            extack.set_message(c"ring sizes must be powers of two from 16 to 4096");
            return Err(EINVAL);
        }
        if ring.tx < TX_RING_MIN {
            extack.set_message(c"the TX ring takes at least 64 descriptors");
            return Err(EINVAL);
        }
        Nic::reconfigure(dev, |s| {
            s.rx_size = ring.rx;
            s.tx_size = ring.tx;
        })
    }

    fn get_coalesce(dev: &Device<Self>, coalesce: &mut Coalesce) -> Result {
        coalesce.rx_usecs = dev.data().settings.lock().moderation_us;
        Ok(())
    }

    fn set_coalesce(dev: &Device<Self>, coalesce: &Coalesce, extack: &mut ExtAck<'_>) -> Result {
        if coalesce.rx_usecs > MODERATION_MAX_US {
            extack.set_message(c"rx-usecs above the device's maximum of 10000");
            return Err(EINVAL);
        }
        let nic = dev.data();
        nic.settings.lock().moderation_us = coalesce.rx_usecs;
        // One interval for every vector; takes effect at once.
        nic.bar
            .access(dev.parent())?
            .write_reg(bar0::INT_MODERATION::from(coalesce.rx_usecs));
        Ok(())
    }

    const STAT_NAMES: &'static [&'static str] = &STAT_NAMES;

    fn get_stats(dev: &Device<Self>, values: &mut [u64]) {
        let nic = dev.data();
        let mut counters = [0u64; guest::STAT_COUNT];
        if let Ok(bar) = nic.bar.access(dev.parent()) {
            read_counters(bar, &mut counters);
        }
        let driver = [
            nic.tx_dropped.load(Relaxed),
            nic.rx_alloc_failed.load(Relaxed),
            nic.rx_bad_descriptor.load(Relaxed),
            nic.resets.load(Relaxed),
        ];
        for (v, c) in values
            .iter_mut()
            .zip(Iterator::chain(counters.iter(), driver.iter()))
        {
            *v = *c;
        }
    }
}
