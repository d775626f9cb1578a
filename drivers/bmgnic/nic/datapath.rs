// SPDX-License-Identifier: GPL-2.0

//! The poll's datapath: TX completions and RX frames.

use super::*;

/// Completes transmitted frames up to the device's TX head.
pub(super) fn clean_tx(dev: &Device<Nic>, poll: &Poll<'_>, head: u32) {
    let mut guard = dev.data().tx.lock();
    let Some(tx) = &mut *guard else {
        return;
    };
    let (mut packets, mut bytes) = (0u32, 0u32);
    for i in tx.index.complete(head) {
        let slot = tx.index.slot(i) as usize;
        if let Some(mapped) = tx.bufs[slot].take() {
            packets += 1;
            // CAST: A frame is at most 64 KiB (`start_xmit`).
            bytes = bytes.wrapping_add(mapped.len() as u32);
            poll.consume(mapped.unmap());
        }
    }
    if packets > 0 {
        dev.completed_queue(packets, bytes);
    }
    if dev.queue_stopped() && tx.index.free() >= TX_WAKE_THRESHOLD {
        dev.wake_queue();
    }
}

/// Passes up to the poll's budget of received frames to the stack and
/// reposts buffers; returns the frames handled and whether the ring is
/// short of buffers.
pub(super) fn clean_rx(
    dev: &Device<Nic>,
    bar: Regs<'_>,
    poll: &Poll<'_>,
    rx: &mut RxState,
    head: u32,
) -> Result<(u32, bool)> {
    let done = rx.ring.index.complete_at_most(head, poll.budget());
    let count = done.len() as u32;
    // CAST: `buf_len` fits the descriptor's `u16` (see `post_rx`).
    let buf_len = rx.buf_len as u16;
    for i in done {
        let slot = rx.ring.index.slot(i);
        let d = rx.ring.read(slot)?;
        let Some(mapped) = rx.ring.bufs[slot as usize].take() else {
            continue;
        };
        // A bad length, or a frame too short for an Ethernet header, is
        // the device's fault: count it, drop the buffer.
        let received = ring::rx_completed(&d, buf_len)
            .and_then(|len| mapped.unmap_received(u32::from(len)).ok())
            .is_some_and(|skb| poll.receive(skb));
        if !received {
            dev.data().rx_bad_descriptor.fetch_add(1, Relaxed);
        }
    }
    let refill = refill_rx(dev, rx);
    if refill.posted {
        bar.write(
            WithBase::of::<bar0::Queue0>(),
            bar0::RX_TAIL::from(rx.ring.index.tail()),
        );
    }
    Ok((count, refill.short))
}
