// SPDX-License-Identifier: GPL-2.0

//! The descriptor rings in coherent DMA memory, the status block, and the
//! RX buffers posted in the ring.

use super::*;

/// Size of an RX buffer for `mtu`, as `RX_BUF_SIZE` takes it.
pub(crate) fn rx_buf_len(mtu: u32) -> u32 {
    (mtu + guest::FRAME_OVERHEAD).next_multiple_of(64).max(256)
}

/// A descriptor ring in coherent memory, two little-endian `u64` words per
/// descriptor, and the buffers posted in it.
pub(super) struct Ring {
    pub(super) words: Coherent<[u64]>,
    pub(super) bufs: KVVec<Option<MappedSkBuff>>,
    pub(super) index: RingIndex,
}

impl Ring {
    pub(super) fn new(dev: &BusDevice<Bound>, size: u32) -> Result<Self> {
        let index = RingIndex::new(size).ok_or(EINVAL)?;
        let n = size as usize;
        let words = Coherent::<u64>::zeroed_slice(dev, 2 * n, GFP_KERNEL)?;
        let mut bufs = KVVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            bufs.push(None, GFP_KERNEL)?;
        }
        Ok(Self { words, bufs, index })
    }

    pub(super) fn size(&self) -> u32 {
        self.bufs.len() as u32
    }

    /// Writes a descriptor; the device reads the bytes in `desc` layout.
    pub(super) fn write(&self, slot: u32, d: &[u8; desc::SIZE]) -> Result {
        let (lo, hi) = ring::words(d);
        let i = 2 * slot as usize;
        io_write!(&self.words, [try: i], lo);
        io_write!(&self.words, [try: i + 1], hi);
        Ok(())
    }

    pub(super) fn read(&self, slot: u32) -> Result<[u8; desc::SIZE]> {
        let i = 2 * slot as usize;
        let lo: u64 = io_read!(&self.words, [try: i]);
        let hi: u64 = io_read!(&self.words, [try: i + 1]);
        Ok(ring::from_words(lo, hi))
    }

    /// Frees every posted buffer (the device must be stopped).
    pub(super) fn clear(&mut self) {
        self.bufs.iter_mut().for_each(|b| *b = None);
    }
}

/// The transmit side while the interface is up: the ring, and the status
/// block whose driver area holds the producer index when the device reads
/// it there instead of waiting for doorbells (`FEATURE_TX_SHADOW`).
pub(super) struct TxState {
    pub(super) ring: Ring,
    pub(super) status_block: Arc<Coherent<[u32]>>,
    pub(super) shadow: bool,
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
    /// Posts a mapped frame, one descriptor per area, and keeps it until
    /// the device completes its last descriptor. Returns the frame's
    /// length, or the frame if it does not fit: too few free slots, or an
    /// area longer than a descriptor takes.
    pub(super) fn post(
        &mut self,
        mapped: MappedSkBuff,
        fields: ring::TxFields,
    ) -> core::result::Result<u32, MappedSkBuff> {
        let count = mapped.areas().count();
        let fits = |(_, len): (DmaAddress, usize)| u16::try_from(len).is_ok();
        // CAST: A frame has at most `MAX_FRAGS + 1` areas.
        if count as u32 > self.index.free() || !mapped.areas().all(fits) {
            return Err(mapped);
        }
        let tail = self.index.tail();
        let written = mapped.areas().enumerate().all(|(i, (addr, len))| {
            // CAST: `i < count`, and each length fits a `u16` (checked).
            let slot = self.index.slot(tail.wrapping_add(i as u32));
            let d = ring::tx_descriptor(addr, len as u16, i, count, fields);
            self.write(slot, &d).is_ok()
        });
        if !written {
            // Nothing is published until every descriptor is written.
            return Err(mapped);
        }
        // CAST: As above.
        let last = self.index.slot(tail.wrapping_add(count as u32 - 1));
        for _ in 0..count {
            self.index.push();
        }
        // CAST: A frame is at most 64 KiB.
        let len = mapped.len() as u32;
        self.bufs[last as usize] = Some(mapped);
        Ok(len)
    }

    /// Publishes the producer index in the status block, where a polling
    /// device reads it.
    pub(super) fn publish(&self) {
        if self.shadow {
            // The descriptors reach memory before the index that announces
            // them: a polling device may read the index at any time.
            dma_mb(Write);
            let _ = sb_write(&self.status_block, desc::SB_TX_TAIL, self.ring.index.tail());
        }
    }

    /// Rings the doorbell, unless the device says it is polling the
    /// published index. With the index in the status block the doorbell is
    /// only a kick: the device reads the index from memory, so a doorbell
    /// that arrives late can never move it back.
    pub(super) fn notify(&self, bar: Regs<'_>) {
        if self.shadow {
            // The device clears its polling flag, then reads the index; we
            // wrote the index, now read the flag: one of us sees the other.
            dma_mb(Full);
            let polling = sb_read(&self.status_block, desc::SB_STATUS)
                .is_ok_and(|st| bar0::STATUS::from_raw(st).tx_polling());
            if polling {
                return;
            }
        }
        bar.write(
            WithBase::of::<bar0::Queue0>(),
            bar0::TX_TAIL::from(self.ring.index.tail()),
        );
    }
}

/// Reads a word of the status block (little-endian in memory).
pub(super) fn sb_read(sb: &Coherent<[u32]>, offset: usize) -> Result<u32> {
    let v: u32 = io_read!(sb, [try: offset / 4]);
    Ok(u32::from_le(v))
}

/// Writes a word of the status block's driver area.
pub(super) fn sb_write(sb: &Coherent<[u32]>, offset: usize, value: u32) -> Result {
    io_write!(sb, [try: offset / 4], value.to_le());
    Ok(())
}

/// The receive side while the interface is up, with the status block,
/// which the poll reads under the same lock.
pub(super) struct RxState {
    pub(super) ring: Ring,
    pub(super) buf_len: u32,
    /// Consumer indices, STATUS and INT_CAUSE, written by the device.
    pub(super) status_block: Arc<Coherent<[u32]>>,
    /// The last `STATUS` acted upon.
    pub(super) status: u32,
    /// The settings the rings were started with, for a reset from the
    /// poll (the `settings` lock is for process context only).
    pub(super) settings: Settings,
}

impl RxState {
    pub(super) fn status_word(&self, offset: usize) -> Result<u32> {
        sb_read(&self.status_block, offset)
    }
}

/// Allocates and posts one RX buffer at the ring's tail.
pub(super) fn post_rx(dev: &Device<Nic>, rx: &mut Ring, buf_len: u32) -> Result {
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

/// What a refill of the RX ring did.
pub(super) struct Refill {
    /// Buffers were posted: the tail must be written.
    pub(super) posted: bool,
    /// An allocation failed, so slots are left empty: try again soon.
    pub(super) short: bool,
}

/// Fills the RX ring's free slots.
pub(super) fn refill_rx(dev: &Device<Nic>, rx: &mut RxState) -> Refill {
    let mut done = Refill {
        posted: false,
        short: false,
    };
    while rx.ring.index.free() > 0 {
        if post_rx(dev, &mut rx.ring, rx.buf_len).is_err() {
            dev.data().rx_alloc_failed.fetch_add(1, Relaxed);
            done.short = true;
            break;
        }
        done.posted = true;
    }
    done
}
