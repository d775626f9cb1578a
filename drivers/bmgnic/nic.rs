// SPDX-License-Identifier: GPL-2.0

//! The BMGNIC network interface: descriptor rings, NAPI, and the netdev and
//! ethtool operations.
//!
//! One TX and one RX ring of 16-byte descriptors and a status block live in
//! coherent DMA memory. The device writes its consumer indices, `STATUS`
//! and the interrupt causes to the status block, so the per-packet path
//! never reads a register: it writes descriptors and rings one doorbell per
//! batch. Every vector only schedules NAPI; the poll reads the status block
//! and handles TX completions, RX frames, link and quarantine changes, and
//! device errors (by resetting the device and starting over).

use crate::{
    regs::{desc, guest},
    ring::{self, RingIndex},
};
use kernel::{
    device::{Bound, Device as BusDevice},
    dma::Coherent,
    io::{io_read, io_write, Io},
    net::{
        ethtool::{self, Coalesce, ExtAck, RingParam},
        napi::Napi,
        netdev::{self, Device, Stats64},
        skb::{MappedSkBuff, SkBuff},
    },
    new_spinlock, pci,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        barrier::{dma_mb, Full, Read},
        Arc, SpinLock,
    },
};

/// The guest register block of BAR0, revoked when the device unbinds.
pub(crate) type Bar0 = pci::DevresBar<{ guest::REGS_END }>;

/// Default ring sizes: enough to cover a doorbell's round trip at line
/// rate without holding much memory.
pub(crate) const TX_RING_DEFAULT: u32 = 256;
pub(crate) const RX_RING_DEFAULT: u32 = 256;

/// Default interrupt moderation in microseconds.
pub(crate) const MODERATION_DEFAULT_US: u32 = 0;

/// Largest moderation the device accepts (`INT_MODERATION`).
const MODERATION_MAX_US: u32 = 10_000;

/// Free TX slots under which the queue stops, and over which it restarts:
/// room for one more frame, and a batch of them.
const TX_STOP_THRESHOLD: u32 = 1;
const TX_WAKE_THRESHOLD: u32 = 32;

/// Bytes an RX buffer holds beyond the MTU: Ethernet header, one VLAN tag
/// and the FCS, as the device counts (`mtu + 18`).
const RX_OVERHEAD: u32 = 18;

/// Statistics the driver keeps itself, after the device's in `ethtool -S`.
const DRIVER_STAT_NAMES: [&str; 4] = [
    "driver_tx_dropped",
    "driver_rx_alloc_failed",
    "driver_rx_bad_descriptor",
    "driver_resets",
];
const STAT_NAMES: [&str; guest::STAT_COUNT + DRIVER_STAT_NAMES.len()] = {
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

/// Size of an RX buffer for `mtu`, as `RX_BUF_SIZE` takes it.
pub(crate) fn rx_buf_len(mtu: u32) -> u32 {
    (mtu + RX_OVERHEAD).next_multiple_of(64).max(256)
}

/// A descriptor ring in coherent memory, two little-endian `u64` words per
/// descriptor, and the buffers posted in it.
struct Ring {
    words: Coherent<[u64]>,
    bufs: KVVec<Option<MappedSkBuff>>,
    index: RingIndex,
}

impl Ring {
    fn new(dev: &BusDevice<Bound>, size: u32) -> Result<Self> {
        let index = RingIndex::new(size).ok_or(EINVAL)?;
        let n = size as usize;
        let words = Coherent::<u64>::zeroed_slice(dev, 2 * n, GFP_KERNEL)?;
        let mut bufs = KVVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            bufs.push(None, GFP_KERNEL)?;
        }
        Ok(Self { words, bufs, index })
    }

    fn size(&self) -> u32 {
        self.bufs.len() as u32
    }

    /// Writes a descriptor; the device reads the bytes in `desc` layout.
    fn write(&self, slot: u32, d: &[u8; desc::SIZE]) -> Result {
        let (lo, hi) = ring::words(d);
        let i = 2 * slot as usize;
        io_write!(&self.words, [try: i], lo);
        io_write!(&self.words, [try: i + 1], hi);
        Ok(())
    }

    fn read(&self, slot: u32) -> Result<[u8; desc::SIZE]> {
        let i = 2 * slot as usize;
        let lo: u64 = io_read!(&self.words, [try: i]);
        let hi: u64 = io_read!(&self.words, [try: i + 1]);
        Ok(ring::from_words(lo, hi))
    }

    /// Frees every posted buffer (the device must be stopped).
    fn clear(&mut self) {
        self.bufs.iter_mut().for_each(|b| *b = None);
    }
}

/// The transmit side while the interface is up: the ring, and the status
/// block whose driver area holds the producer index when the device reads
/// it there instead of waiting for doorbells (`FEATURE_TX_SHADOW`).
struct TxState {
    ring: Ring,
    status_block: Arc<Coherent<[u32]>>,
    shadow: bool,
}

impl core::ops::Deref for TxState {
    type Target = Ring;

    fn deref(&self) -> &Ring {
        &self.ring
    }
}

impl core::ops::DerefMut for TxState {
    fn deref_mut(&mut self) -> &mut Ring {
        &mut self.ring
    }
}

impl TxState {
    /// Publishes the producer index in the status block, where a polling
    /// device reads it.
    fn publish(&self) {
        if self.shadow {
            let _ = sb_write(&self.status_block, desc::SB_TX_TAIL, self.ring.index.tail());
        }
    }

    /// Rings the doorbell, unless the device says it is polling the
    /// published index.
    fn notify(&self, bar: Regs<'_>) {
        if self.shadow {
            // The device clears its polling flag, then reads the index; we
            // wrote the index, now read the flag: one of us sees the other.
            dma_mb(Full);
            let polling = sb_read(&self.status_block, desc::SB_STATUS)
                .is_ok_and(|st| st & guest::STATUS_TX_POLLING != 0);
            if polling {
                return;
            }
        }
        let _ = bar.try_write32(self.ring.index.tail(), guest::queue_reg(0, guest::TX_TAIL));
    }
}

/// Reads a word of the status block (little-endian in memory).
fn sb_read(sb: &Coherent<[u32]>, offset: usize) -> Result<u32> {
    let v: u32 = io_read!(sb, [try: offset / 4]);
    Ok(u32::from_le(v))
}

/// Writes a word of the status block's driver area.
fn sb_write(sb: &Coherent<[u32]>, offset: usize, value: u32) -> Result {
    io_write!(sb, [try: offset / 4], value.to_le());
    Ok(())
}

/// The receive side while the interface is up, with the status block,
/// which the poll reads under the same lock.
struct RxState {
    ring: Ring,
    buf_len: u32,
    /// Consumer indices, STATUS and INT_CAUSE, written by the device.
    status_block: Arc<Coherent<[u32]>>,
    /// The last `STATUS` acted upon.
    status: u32,
    /// The settings the rings were started with, for a reset from the
    /// poll (the `settings` lock is for process context only).
    settings: Settings,
}

impl RxState {
    fn status_word(&self, offset: usize) -> Result<u32> {
        sb_read(&self.status_block, offset)
    }
}

/// Ring and interrupt settings that survive down/up.
#[derive(Clone, Copy, Debug)]
struct Settings {
    tx_size: u32,
    rx_size: u32,
    mtu: u32,
    moderation_us: u32,
}

/// Driver data of a BMGNIC interface.
///
/// # Invariants
///
/// `tx` and `rx` are `Some` exactly while the interface is up (between a
/// successful open and stop); buffers posted in them are mapped. Lock
/// order: `rx` before `tx` (the poll holds `rx` and takes `tx`; transmit,
/// which the stack may call from the poll's receive path, takes only
/// `tx`).
#[pin_data]
pub(crate) struct Nic {
    bar: Bar0,
    #[pin]
    tx: SpinLock<Option<TxState>>,
    #[pin]
    rx: SpinLock<Option<RxState>>,
    #[pin]
    settings: SpinLock<Settings>,
    tx_dropped: Atomic<u64>,
    rx_alloc_failed: Atomic<u64>,
    rx_bad_descriptor: Atomic<u64>,
    resets: Atomic<u64>,
}

impl Nic {
    pub(crate) fn new(bar: Bar0, mtu: u32) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            bar,
            tx <- new_spinlock!(None, "bmgnic_tx"),
            rx <- new_spinlock!(None, "bmgnic_rx"),
            settings <- new_spinlock!(
                Settings {
                    tx_size: TX_RING_DEFAULT,
                    rx_size: RX_RING_DEFAULT,
                    mtu,
                    moderation_us: MODERATION_DEFAULT_US,
                },
                "bmgnic_settings"
            ),
            tx_dropped: Atomic::new(0),
            rx_alloc_failed: Atomic::new(0),
            rx_bad_descriptor: Atomic::new(0),
            resets: Atomic::new(0),
        })
    }
}

/// Carrier as the tenant should see it: link up, not quarantined, no error.
fn carrier(status: u32) -> bool {
    status & (guest::STATUS_LINK_UP | guest::STATUS_QUARANTINED | guest::STATUS_ERROR)
        == guest::STATUS_LINK_UP
}

type Regs<'a> = &'a pci::Bar<'a, { guest::REGS_END }>;

/// Allocates and posts one RX buffer at the ring's tail.
fn post_rx(dev: &Device<Nic>, rx: &mut Ring, buf_len: u32) -> Result {
    let skb = SkBuff::alloc_rx(dev, buf_len)?;
    let mapped = skb.map_from_device(dev.parent(), buf_len)?;
    let slot = rx.index.tail_slot();
    // CAST: `buf_len` is at most `rx_buf_len(MTU_MAX)`, well under 64 KiB.
    rx.write(
        slot,
        &ring::rx_descriptor(mapped.dma_address(), buf_len as u16),
    )?;
    rx.bufs[slot as usize] = Some(mapped);
    if !rx.index.push() {
        return Err(ENOSPC);
    }
    Ok(())
}

/// Fills the RX ring's free slots; returns whether any was posted.
fn refill_rx(dev: &Device<Nic>, rx: &mut RxState) -> bool {
    let mut posted = false;
    while rx.ring.index.free() > 0 {
        if post_rx(dev, &mut rx.ring, rx.buf_len).is_err() {
            dev.data().rx_alloc_failed.fetch_add(1, Relaxed);
            break;
        }
        posted = true;
    }
    posted
}

/// Resets the device, programs it with the rings and enables it; the
/// rings' indices must be at zero. Slow path: reads registers back.
fn start_device(
    dev: &Device<Nic>,
    bar: Regs<'_>,
    tx: &mut TxState,
    rx: &mut RxState,
    settings: &Settings,
) -> Result {
    bar.write32(guest::CONTROL_RESET, guest::CONTROL);
    let split = |a: u64| (a as u32, (a >> 32) as u32);
    let (lo, hi) = split(rx.status_block.dma_address());
    bar.write32(lo, guest::STATUS_BLOCK_LO);
    bar.write32(hi, guest::STATUS_BLOCK_HI);
    let (lo, hi) = split(tx.words.dma_address());
    bar.try_write32(lo, guest::queue_reg(0, guest::TX_BASE_LO))?;
    bar.try_write32(hi, guest::queue_reg(0, guest::TX_BASE_HI))?;
    bar.try_write32(tx.size(), guest::queue_reg(0, guest::TX_SIZE))?;
    let (lo, hi) = split(rx.ring.words.dma_address());
    bar.try_write32(lo, guest::queue_reg(0, guest::RX_BASE_LO))?;
    bar.try_write32(hi, guest::queue_reg(0, guest::RX_BASE_HI))?;
    bar.try_write32(rx.ring.size(), guest::queue_reg(0, guest::RX_SIZE))?;
    bar.write32(rx.buf_len, guest::RX_BUF_SIZE);
    bar.write32(settings.mtu, guest::MTU);
    bar.write32(settings.moderation_us, guest::INT_MODERATION);
    bar.write32(0, guest::INT_MASK);
    // Doorbell suppression where the device offers it; its producer index
    // starts from zero like the ring's.
    tx.shadow = bar.read32(guest::FEATURES) & guest::FEATURE_TX_SHADOW != 0;
    sb_write(&tx.status_block, desc::SB_TX_TAIL, 0)?;
    let control = if tx.shadow {
        guest::CONTROL_ENABLE | guest::CONTROL_TX_SHADOW
    } else {
        guest::CONTROL_ENABLE
    };
    bar.write32(control, guest::CONTROL);
    let status = bar.read32(guest::STATUS);
    if status & guest::STATUS_ERROR != 0 {
        dev_err!(
            dev.parent(),
            "device refused the rings: error {}, info {:#x}\n",
            bar.read32(guest::ERROR_CODE),
            bar.read32(guest::ERROR_INFO)
        );
        return Err(EIO);
    }
    refill_rx(dev, rx);
    bar.try_write32(rx.ring.index.tail(), guest::queue_reg(0, guest::RX_TAIL))?;
    rx.status = status;
    if carrier(status) {
        dev.carrier_on();
    } else {
        dev.carrier_off();
    }
    Ok(())
}

/// Stops the device's DMA: once the reset is read back, it touches no ring
/// or buffer.
fn stop_device(bar: Regs<'_>) {
    bar.write32(guest::CONTROL_RESET, guest::CONTROL);
    // Flush the posted write before the caller unmaps anything.
    let _ = bar.read32(guest::STATUS);
}

fn alloc_rings(dev: &Device<Nic>, settings: &Settings) -> Result<(TxState, RxState)> {
    let parent = dev.parent();
    let status_block = Arc::new(
        Coherent::<u32>::zeroed_slice(parent, desc::STATUS_BLOCK_SIZE / 4, GFP_KERNEL)?,
        GFP_KERNEL,
    )?;
    let tx = TxState {
        ring: Ring::new(parent, settings.tx_size)?,
        status_block: status_block.clone(),
        shadow: false,
    };
    let rx = RxState {
        ring: Ring::new(parent, settings.rx_size)?,
        buf_len: rx_buf_len(settings.mtu),
        status_block,
        status: 0,
        settings: *settings,
    };
    Ok((tx, rx))
}

/// Recovers from a device error, from the poll: stop the queue, drop what
/// was in flight, and start over with empty rings.
fn recover(dev: &Device<Nic>, bar: Regs<'_>, rx: &mut RxState) {
    let nic = dev.data();
    nic.resets.fetch_add(1, Relaxed);
    dev_warn!(
        dev.parent(),
        "device error {} (info {:#x}): resetting\n",
        bar.read32(guest::ERROR_CODE),
        bar.read32(guest::ERROR_INFO)
    );
    dev.stop_queue();
    dev.carrier_off();
    stop_device(bar);
    let settings = rx.settings;
    let mut tx_guard = nic.tx.lock();
    let Some(tx) = &mut *tx_guard else {
        return;
    };
    nic.tx_dropped
        .fetch_add(u64::from(tx.index.in_flight()), Relaxed);
    tx.clear();
    rx.ring.clear();
    let restarted = match (RingIndex::new(tx.size()), RingIndex::new(rx.ring.size())) {
        (Some(t), Some(r)) => {
            tx.index = t;
            rx.ring.index = r;
            start_device(dev, bar, tx, rx, &settings)
        }
        _ => Err(EINVAL),
    };
    drop(tx_guard);
    match restarted {
        Ok(()) => dev.wake_queue(),
        Err(e) => dev_err!(
            dev.parent(),
            "reset failed ({:?}); bring the interface down and up\n",
            e
        ),
    }
}

/// Completes transmitted frames up to the device's TX head.
fn clean_tx(dev: &Device<Nic>, head: u32, budget: u32) {
    let mut guard = dev.data().tx.lock();
    let Some(tx) = &mut *guard else {
        return;
    };
    for i in tx.index.complete(head) {
        let slot = tx.index.slot(i) as usize;
        if let Some(mapped) = tx.bufs[slot].take() {
            mapped.unmap().consume(budget);
        }
    }
    if dev.queue_stopped() && tx.index.free() >= TX_WAKE_THRESHOLD {
        dev.wake_queue();
    }
}

/// Passes up to `budget` received frames to the stack and reposts buffers;
/// returns the frames handled.
fn clean_rx(
    dev: &Device<Nic>,
    bar: Regs<'_>,
    napi: &Napi,
    rx: &mut RxState,
    head: u32,
    budget: u32,
) -> Result<u32> {
    let done = rx.ring.index.complete_at_most(head, budget);
    let count = done.len() as u32;
    // CAST: `buf_len` fits the descriptor's `u16` (see `post_rx`).
    let buf_len = rx.buf_len as u16;
    for i in done {
        let slot = rx.ring.index.slot(i);
        let d = rx.ring.read(slot)?;
        let Some(mapped) = rx.ring.bufs[slot as usize].take() else {
            continue;
        };
        let mut skb = mapped.unmap();
        match ring::rx_completed(&d, buf_len) {
            Some(len) if skb.put(u32::from(len)).is_ok() => napi.receive(skb),
            _ => {
                dev.data().rx_bad_descriptor.fetch_add(1, Relaxed);
                drop(skb);
            }
        }
    }
    if refill_rx(dev, rx) {
        bar.try_write32(rx.ring.index.tail(), guest::queue_reg(0, guest::RX_TAIL))?;
    }
    Ok(count)
}

#[vtable]
impl netdev::Operations for Nic {
    fn open(dev: &Device<Self>) -> Result {
        let nic = dev.data();
        let bar = nic.bar.access(dev.parent())?;
        let settings = *nic.settings.lock();
        let (mut tx, mut rx) = alloc_rings(dev, &settings)?;
        if let Err(e) = start_device(dev, bar, &mut tx, &mut rx, &settings) {
            stop_device(bar);
            return Err(e);
        }
        *nic.rx.lock() = Some(rx);
        *nic.tx.lock() = Some(tx);
        dev.napi().enable();
        dev.start_queue();
        Ok(())
    }

    fn stop(dev: &Device<Self>) -> Result {
        let nic = dev.data();
        dev.stop_queue();
        dev.napi().disable();
        dev.carrier_off();
        if let Ok(bar) = nic.bar.access(dev.parent()) {
            stop_device(bar);
        }
        // Dropping the rings unmaps and frees every buffer.
        let rx = nic.rx.lock().take();
        let tx = nic.tx.lock().take();
        drop((rx, tx));
        Ok(())
    }

    fn start_xmit(dev: &Device<Self>, mut skb: SkBuff) -> core::result::Result<(), SkBuff> {
        let nic = dev.data();
        let dropped = || {
            nic.tx_dropped.fetch_add(1, Relaxed);
            Ok(())
        };
        if skb.linearize().is_err() {
            return dropped();
        }
        let Ok(len) = u16::try_from(skb.len()) else {
            return dropped();
        };
        let Ok(mapped) = skb.map_to_device(dev.parent()) else {
            return dropped();
        };
        let Ok(bar) = nic.bar.access(dev.parent()) else {
            return dropped();
        };
        let mut guard = nic.tx.lock();
        let Some(tx) = &mut *guard else {
            return dropped();
        };
        let slot = tx.index.tail_slot();
        if tx.index.free() == 0
            || tx
                .write(slot, &ring::tx_descriptor(mapped.dma_address(), len))
                .is_err()
        {
            dev.stop_queue();
            return dropped();
        }
        tx.bufs[slot as usize] = Some(mapped);
        tx.index.push();
        tx.publish();
        if tx.index.free() <= TX_STOP_THRESHOLD {
            dev.stop_queue();
        }
        if !dev.xmit_more() || dev.queue_stopped() {
            // The descriptor writes above reach memory before the index
            // (`writel` and the barrier in `notify` order them).
            tx.notify(bar);
        }
        Ok(())
    }

    fn poll(dev: &Device<Self>, napi: &Napi, budget: u32) -> u32 {
        let nic = dev.data();
        let Ok(bar) = nic.bar.access(dev.parent()) else {
            napi.complete_done(0);
            return 0;
        };
        let mut guard = nic.rx.lock();
        let Some(rx) = &mut *guard else {
            drop(guard);
            napi.complete_done(0);
            return 0;
        };
        let status = rx.status_word(desc::SB_STATUS).unwrap_or(rx.status);
        if status & guest::STATUS_ERROR != 0 {
            recover(dev, bar, rx);
            drop(guard);
            napi.complete_done(0);
            return 0;
        }
        if status != rx.status {
            rx.status = status;
            if carrier(status) {
                dev.carrier_on();
            } else {
                dev.carrier_off();
            }
        }
        let tx_head = rx.status_word(desc::SB_TX_HEAD);
        let rx_head = rx.status_word(desc::SB_RX_HEAD);
        // Descriptors were written before the status block announcing them.
        dma_mb(Read);
        if let Ok(head) = tx_head {
            clean_tx(dev, head, budget);
        }
        let done = match rx_head {
            Ok(head) => clean_rx(dev, bar, napi, rx, head, budget).unwrap_or(0),
            Err(_) => 0,
        };
        drop(guard);
        if done < budget {
            napi.complete_done(done);
        }
        done
    }

    fn get_stats64(dev: &Device<Self>, stats: &mut Stats64) {
        let nic = dev.data();
        let mut counters = [0u64; guest::STAT_COUNT];
        if let Ok(bar) = nic.bar.access(dev.parent()) {
            read_counters(bar, &mut counters);
        }
        *stats = ring::fold_stats(&counters, nic.tx_dropped.load(Relaxed));
        stats.rx_errors += nic.rx_bad_descriptor.load(Relaxed);
        stats.rx_dropped += nic.rx_alloc_failed.load(Relaxed);
    }

    fn change_mtu(dev: &Device<Self>, new_mtu: u32) -> Result {
        let nic = dev.data();
        let bar = nic.bar.access(dev.parent())?;
        // The RME may have lowered the cap since probe; the device has the
        // last word.
        let cap = bar.read32(guest::MTU_CAP);
        if new_mtu > cap {
            dev_warn!(
                dev.parent(),
                "MTU {} refused: the device allows at most {}\n",
                new_mtu,
                cap
            );
            return Err(EINVAL);
        }
        // RX buffers are sized for the MTU: restart the rings.
        Nic::reconfigure(dev, |s| s.mtu = new_mtu)
    }

    fn set_mac_address(dev: &Device<Self>, _addr: &[u8; netdev::ETH_ALEN]) -> Result {
        dev_warn!(
            dev.parent(),
            "the MAC address is assigned by the cloud's management engine and cannot be changed\n"
        );
        Err(EPERM)
    }
}

/// Reads the device's 64-bit counters (slow path: two MMIO reads each).
fn read_counters(bar: Regs<'_>, out: &mut [u64; guest::STAT_COUNT]) {
    for (i, value) in out.iter_mut().enumerate() {
        let at = guest::STATS_BASE + 8 * i;
        let lo = bar.try_read32(at).unwrap_or(0);
        let hi = bar.try_read32(at + 4).unwrap_or(0);
        *value = u64::from(lo) | (u64::from(hi) << 32);
    }
}

impl Nic {
    /// Applies new settings, restarting the rings if the interface is up.
    fn reconfigure(dev: &Device<Self>, update: impl FnOnce(&mut Settings)) -> Result {
        let running = dev.is_running();
        if running {
            <Self as netdev::Operations>::stop(dev)?;
        }
        update(&mut dev.data().settings.lock());
        if running {
            <Self as netdev::Operations>::open(dev)?;
        }
        Ok(())
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
            .write32(coalesce.rx_usecs, guest::INT_MODERATION);
        Ok(())
    }

    fn stat_names() -> &'static [&'static str] {
        &STAT_NAMES
    }

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
