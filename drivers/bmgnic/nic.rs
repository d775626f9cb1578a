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
//!
//! This file is the device's life cycle (start, stop, reset, reconfigure)
//! and the netdev operations; `rings` holds the rings and RX buffers,
//! `datapath` the TX completions and RX frames of the poll, `ethtool_ops`
//! the counters and the ethtool operations.

mod datapath;
mod ethtool_ops;
mod rings;

use crate::{
    bar0,
    regs::{desc, guest},
    ring::{self, RingIndex},
};
use datapath::*;
use ethtool_ops::*;
use kernel::{
    device::{Bound, Device as BusDevice},
    dma::{Coherent, DmaAddress},
    io::{
        io_read, io_write,
        register::{Array, WithBase},
        Io,
    },
    net::{
        ethtool::{self, Coalesce, ExtAck, RingParam},
        napi::Poll,
        netdev::{self, Device, Stats64},
        skb::{self, MappedSkBuff, SkBuff},
    },
    new_mutex, new_spinlock_bh, pci,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        barrier::{dma_mb, Full, Read, Write},
        Arc, Mutex, SpinLockBh,
    },
};
pub(crate) use rings::rx_buf_len;
use rings::*;

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
/// room for one more frame of the most fragments, and a batch of them.
// CAST: `MAX_SKB_FRAGS` is at most 45 (`CONFIG_MAX_SKB_FRAGS`).
const TX_STOP_THRESHOLD: u32 = skb::MAX_FRAGS as u32 + 1;
const TX_WAKE_THRESHOLD: u32 = 2 * TX_STOP_THRESHOLD;
/// Smallest TX ring the driver uses: room for several frames of the most
/// fragments (the device takes 16).
pub(crate) const TX_RING_MIN: u32 = 64;
// A ring that can never have the wake threshold free would stop its queue
// for good: a kernel built with more fragments per buffer needs a larger
// minimum, and must not build with this one.
const _: () = assert!(TX_WAKE_THRESHOLD < TX_RING_MIN);

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
/// successful open and stop); buffers posted in them are mapped. Both
/// locks keep bottom halves off, as the poll and transmit take them in
/// softirq context. Lock order: `rx` before `tx` (the poll holds `rx` and
/// takes `tx`; transmit, which the stack may call from the poll's receive
/// path, takes only `tx`).
#[pin_data]
pub(crate) struct Nic {
    bar: Bar0,
    #[pin]
    tx: SpinLockBh<Option<TxState>>,
    #[pin]
    rx: SpinLockBh<Option<RxState>>,
    /// Process context only (RTNL held), never under `rx` or `tx`.
    #[pin]
    settings: Mutex<Settings>,
    tx_dropped: Atomic<u64>,
    rx_alloc_failed: Atomic<u64>,
    rx_bad_descriptor: Atomic<u64>,
    resets: Atomic<u64>,
}

impl Nic {
    /// The guest register block.
    pub(crate) fn bar(&self) -> &Bar0 {
        &self.bar
    }

    pub(crate) fn new(bar: Bar0, mtu: u32) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            bar,
            tx <- new_spinlock_bh!(None, "bmgnic_tx"),
            rx <- new_spinlock_bh!(None, "bmgnic_rx"),
            settings <- new_mutex!(
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
fn carrier(status: bar0::STATUS) -> bool {
    status.link_up() && !status.quarantined() && !status.error()
}

type Regs<'a> = &'a pci::Bar<'a, { guest::REGS_END }>;

/// Resets the device, programs it with the rings and enables it; the
/// rings' indices must be at zero. Slow path: reads registers back.
fn start_device(
    dev: &Device<Nic>,
    bar: Regs<'_>,
    tx: &mut TxState,
    rx: &mut RxState,
    settings: &Settings,
) -> Result {
    bar.write_reg(bar0::CONTROL::zeroed().with_reset(true));
    let split = |a: u64| (a as u32, (a >> 32) as u32);
    let (lo, hi) = split(rx.status_block.dma_address());
    bar.write_reg(bar0::STATUS_BLOCK_LO::from(lo));
    bar.write_reg(bar0::STATUS_BLOCK_HI::from(hi));
    let (lo, hi) = split(tx.words.dma_address());
    bar.write(WithBase::of::<bar0::Queue0>(), bar0::TX_BASE_LO::from(lo));
    bar.write(WithBase::of::<bar0::Queue0>(), bar0::TX_BASE_HI::from(hi));
    bar.write(
        WithBase::of::<bar0::Queue0>(),
        bar0::TX_SIZE::from(tx.size()),
    );
    let (lo, hi) = split(rx.ring.words.dma_address());
    bar.write(WithBase::of::<bar0::Queue0>(), bar0::RX_BASE_LO::from(lo));
    bar.write(WithBase::of::<bar0::Queue0>(), bar0::RX_BASE_HI::from(hi));
    bar.write(
        WithBase::of::<bar0::Queue0>(),
        bar0::RX_SIZE::from(rx.ring.size()),
    );
    bar.write_reg(bar0::RX_BUF_SIZE::from(rx.buf_len));
    bar.write_reg(bar0::MTU::from(settings.mtu));
    bar.write_reg(bar0::INT_MODERATION::from(settings.moderation_us));
    bar.write_reg(bar0::INT_MASK::zeroed());
    // Doorbell suppression where the device offers it; its producer index
    // starts from zero like the ring's.
    tx.shadow = bar.read(bar0::FEATURES).tx_shadow();
    sb_write(&tx.status_block, desc::SB_TX_TAIL, 0)?;
    bar.write_reg(
        bar0::CONTROL::zeroed()
            .with_enable(true)
            .with_tx_shadow(tx.shadow),
    );
    let status = bar.read(bar0::STATUS);
    if status.error() {
        dev_err!(
            dev.parent(),
            "device refused the rings: error {}, info {:#x}\n",
            bar.read(bar0::ERROR_CODE).code().get(),
            bar.read(bar0::ERROR_INFO).info().get()
        );
        return Err(EIO);
    }
    // A short ring is topped up by the poll.
    refill_rx(dev, rx);
    bar.write(
        WithBase::of::<bar0::Queue0>(),
        bar0::RX_TAIL::from(rx.ring.index.tail()),
    );
    rx.status = status.into_raw();
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
    bar.write_reg(bar0::CONTROL::zeroed().with_reset(true));
    // Flush the posted write before the caller unmaps anything.
    let _ = bar.read(bar0::STATUS);
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

/// Resets the device and starts it again on the same rings, emptied:
/// what was in flight is dropped (and counted).
fn restart(dev: &Device<Nic>, bar: Regs<'_>, tx: &mut TxState, rx: &mut RxState) -> Result {
    stop_device(bar);
    let nic = dev.data();
    nic.tx_dropped
        .fetch_add(u64::from(tx.index.in_flight()), Relaxed);
    tx.clear();
    rx.ring.clear();
    dev.reset_queue();
    tx.index = RingIndex::new(tx.size()).ok_or(EINVAL)?;
    rx.ring.index = RingIndex::new(rx.ring.size()).ok_or(EINVAL)?;
    let settings = rx.settings;
    start_device(dev, bar, tx, rx, &settings)
}

/// Recovers from a device error, from the poll: stop the queue, drop what
/// was in flight, and start over with empty rings.
fn recover(dev: &Device<Nic>, bar: Regs<'_>, rx: &mut RxState) {
    let nic = dev.data();
    nic.resets.fetch_add(1, Relaxed);
    dev_warn!(
        dev.parent(),
        "device error {} (info {:#x}): resetting\n",
        bar.read(bar0::ERROR_CODE).code().get(),
        bar.read(bar0::ERROR_INFO).info().get()
    );
    dev.stop_queue();
    dev.carrier_off();
    let mut tx_guard = nic.tx.lock();
    let Some(tx) = &mut *tx_guard else {
        return;
    };
    let restarted = restart(dev, bar, tx, rx);
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

#[vtable]
impl netdev::Operations for Nic {
    fn open(dev: &Device<Self>) -> Result {
        let nic = dev.data();
        let bar = nic.bar.access(dev.parent())?;
        let settings = *nic.settings.lock();
        let (tx, rx) = alloc_rings(dev, &settings)?;
        // NAPI is already on: the rings are in place before the device
        // starts, so the first interrupt's poll finds them.
        let mut rx_guard = nic.rx.lock();
        let mut tx_guard = nic.tx.lock();
        let started = start_device(
            dev,
            bar,
            tx_guard.insert(tx),
            rx_guard.insert(rx),
            &settings,
        );
        if let Err(e) = started {
            stop_device(bar);
            let rings = (rx_guard.take(), tx_guard.take());
            drop((tx_guard, rx_guard));
            drop(rings);
            return Err(e);
        }
        drop((tx_guard, rx_guard));
        dev.start_queue();
        Ok(())
    }

    fn stop(dev: &Device<Self>) -> Result {
        // NAPI is off (the registration disabled it): no poll runs.
        let nic = dev.data();
        dev.stop_queue();
        dev.carrier_off();
        if let Ok(bar) = nic.bar.access(dev.parent()) {
            stop_device(bar);
        }
        let rx = nic.rx.lock().take();
        let tx = nic.tx.lock().take();
        dev.reset_queue();
        // Dropping the rings unmaps and frees every buffer.
        drop((rx, tx));
        Ok(())
    }

    fn start_xmit(dev: &Device<Self>, skb: SkBuff) -> core::result::Result<(), SkBuff> {
        let nic = dev.data();
        let Ok(bar) = nic.bar.access(dev.parent()) else {
            nic.tx_dropped.fetch_add(1, Relaxed);
            return Ok(());
        };
        let mut guard = nic.tx.lock();
        let Some(tx) = &mut *guard else {
            nic.tx_dropped.fetch_add(1, Relaxed);
            return Ok(());
        };
        // The offload's fields are known before the mapping takes the frame.
        let fields = ring::TxFields::of(skb.tx_offload());
        let queued = fields.and_then(|fields| {
            let mapped = skb.map_to_device(dev.parent()).ok()?;
            tx.post(mapped, fields).ok()
        });
        let ring_now = match queued {
            Some(len) => {
                tx.publish();
                if tx.index.free() < TX_STOP_THRESHOLD {
                    dev.stop_queue();
                }
                dev.sent_queue(len) || dev.queue_stopped()
            }
            None => {
                nic.tx_dropped.fetch_add(1, Relaxed);
                // Frames queued before this one may be waiting for the
                // doorbell this call would have rung.
                !dev.xmit_more()
            }
        };
        if ring_now {
            tx.notify(bar);
        }
        Ok(())
    }

    fn poll(dev: &Device<Self>, poll: &Poll<'_>) -> u32 {
        let nic = dev.data();
        let Ok(bar) = nic.bar.access(dev.parent()) else {
            return 0;
        };
        let mut guard = nic.rx.lock();
        let Some(rx) = &mut *guard else {
            return 0;
        };
        let status = rx.status_word(desc::SB_STATUS).unwrap_or(rx.status);
        if bar0::STATUS::from_raw(status).error() {
            recover(dev, bar, rx);
            return 0;
        }
        if status != rx.status {
            rx.status = status;
            if carrier(bar0::STATUS::from_raw(status)) {
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
            clean_tx(dev, poll, head);
        }
        let (done, short) = match rx_head {
            Ok(head) => clean_rx(dev, bar, poll, rx, head).unwrap_or((0, false)),
            Err(_) => (0, false),
        };
        drop(guard);
        // A ring left short of buffers is refilled by polling again.
        if short {
            poll.budget()
        } else {
            done
        }
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
        let cap = bar.read(bar0::MTU_CAP).bytes().get();
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

impl Nic {
    /// Applies new settings, restarting the rings if the interface is up.
    ///
    /// The new rings are allocated first: if that fails, nothing changed.
    /// They replace the old ones under the ring locks, with NAPI left on;
    /// if the device refuses them, the old rings are started again.
    fn reconfigure(dev: &Device<Self>, update: impl FnOnce(&mut Settings)) -> Result {
        let nic = dev.data();
        let mut settings = *nic.settings.lock();
        update(&mut settings);
        if !dev.is_running() {
            *nic.settings.lock() = settings;
            return Ok(());
        }
        let bar = nic.bar.access(dev.parent())?;
        let (mut tx, mut rx) = alloc_rings(dev, &settings)?;
        dev.stop_queue();
        dev.carrier_off();
        let mut rx_guard = nic.rx.lock();
        let mut tx_guard = nic.tx.lock();
        let (Some(old_rx), Some(old_tx)) = (&mut *rx_guard, &mut *tx_guard) else {
            return Err(ENETDOWN);
        };
        stop_device(bar);
        let result = match start_device(dev, bar, &mut tx, &mut rx, &settings) {
            Ok(()) => {
                // In flight on the old ring: dropped with it.
                nic.tx_dropped
                    .fetch_add(u64::from(old_tx.index.in_flight()), Relaxed);
                dev.reset_queue();
                core::mem::swap(old_tx, &mut tx);
                core::mem::swap(old_rx, &mut rx);
                Ok(())
            }
            Err(e) => {
                dev_warn!(
                    dev.parent(),
                    "the device refused the new rings; keeping the old ones\n"
                );
                // `tx` and `rx` now hold the new rings, freed below.
                if let Err(again) = restart(dev, bar, old_tx, old_rx) {
                    dev_err!(
                        dev.parent(),
                        "restart failed ({:?}); bring the interface down and up\n",
                        again
                    );
                }
                Err(e)
            }
        };
        drop((tx_guard, rx_guard));
        if result.is_ok() {
            *nic.settings.lock() = settings;
        }
        dev.wake_queue();
        // The rings not in use (the old ones, or the refused new ones):
        // unmapped and freed outside the locks.
        drop((tx, rx));
        result
    }
}
