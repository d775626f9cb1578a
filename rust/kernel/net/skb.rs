// SPDX-License-Identifier: GPL-2.0

//! Socket buffers.
//!
//! C header: [`include/linux/skbuff.h`](srctree/include/linux/skbuff.h)

use crate::{
    bindings,
    device::{Bound, Device},
    dma::{DataDirection, DmaAddress},
    error::to_result,
    net::dev,
    prelude::*,
    sync::aref::ARef,
};
use core::{mem::ManuallyDrop, ptr::NonNull};

/// An owned socket buffer (`struct sk_buff`).
///
/// Dropping it frees the buffer with `dev_kfree_skb_any`, which is valid in
/// any context.
///
/// # Invariants
///
/// `self.0` points to a valid `struct sk_buff` of which this instance owns
/// one reference.
pub struct SkBuff(NonNull<bindings::sk_buff>);

// SAFETY: An owned `sk_buff` may be freed or handed over on any CPU.
unsafe impl Send for SkBuff {}

impl SkBuff {
    /// Takes ownership of a buffer handed over by the networking core.
    ///
    /// # Safety
    ///
    /// `ptr` points to a valid `struct sk_buff` whose reference the caller
    /// transfers to the returned value.
    pub unsafe fn from_raw(ptr: NonNull<bindings::sk_buff>) -> Self {
        // INVARIANT: Per the safety requirements.
        Self(ptr)
    }

    /// Gives up ownership, returning the raw pointer (for the core to take
    /// the buffer back, e.g. on `NETDEV_TX_BUSY`).
    pub fn into_raw(self) -> *mut bindings::sk_buff {
        ManuallyDrop::new(self).0.as_ptr()
    }

    /// Allocates a buffer for a received frame of up to `len` bytes on
    /// `dev`, in any context (`netdev_alloc_skb`, `GFP_ATOMIC`).
    pub fn alloc_rx(dev: &dev::Device, len: u32) -> Result<Self> {
        // SAFETY: `dev` is a valid net_device by its type invariant.
        let skb = unsafe { bindings::__netdev_alloc_skb(dev.as_raw(), len, bindings::GFP_ATOMIC) };
        // INVARIANT: A new buffer with one reference, now ours.
        NonNull::new(skb).map(Self).ok_or(ENOMEM)
    }

    fn as_raw(&self) -> *mut bindings::sk_buff {
        self.0.as_ptr()
    }

    /// Total length of the frame in bytes (linear part and fragments).
    pub fn len(&self) -> u32 {
        // SAFETY: `self.0` is valid by the type invariant; we own the buffer.
        unsafe { (*self.as_raw()).len }
    }

    /// Whether the frame holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Length of the linear part (`skb_headlen`).
    pub fn headlen(&self) -> u32 {
        // SAFETY: `self.0` is valid by the type invariant.
        unsafe { bindings::skb_headlen(self.as_raw()) }
    }

    /// Room after the data in the linear buffer (`skb_tailroom`).
    pub fn tailroom(&self) -> u32 {
        // SAFETY: `self.0` is valid by the type invariant.
        let room = unsafe { bindings::skb_tailroom(self.as_raw()) };
        u32::try_from(room).unwrap_or(0)
    }

    /// Pulls every fragment into the linear part, so that the whole frame
    /// is one contiguous buffer.
    pub fn linearize(&mut self) -> Result {
        // SAFETY: `self.0` is valid and exclusively ours by the type
        // invariant.
        to_result(unsafe { bindings::skb_linearize(self.as_raw()) })
    }

    /// The linear part of the frame.
    pub fn data(&self) -> &[u8] {
        // SAFETY: `data` points to `skb_headlen` initialised bytes that stay
        // in place while we own the buffer and do not change its layout.
        unsafe { core::slice::from_raw_parts((*self.as_raw()).data, self.headlen() as usize) }
    }

    /// Maps the linear part for the device to read (transmit). Fails with
    /// [`EINVAL`] for a buffer with fragments (see [`Self::linearize`]).
    pub fn map_to_device(self, dev: &Device<Bound>) -> Result<MappedSkBuff> {
        // SAFETY: `self.0` is valid by the type invariant.
        if unsafe { (*self.as_raw()).data_len } != 0 {
            return Err(EINVAL);
        }
        let len = self.headlen() as usize;
        MappedSkBuff::new(self, dev, len, DataDirection::ToDevice)
    }

    /// Maps `len` bytes of an empty buffer's tailroom for the device to
    /// write a received frame into (see [`MappedSkBuff::unmap_received`]).
    /// The area is zeroed first, so whatever the device leaves unwritten
    /// reads as zeroes, never as stale memory. Fails with [`EINVAL`] for a
    /// buffer that holds data or whose tailroom is smaller.
    pub fn map_from_device(self, dev: &Device<Bound>, len: u32) -> Result<MappedSkBuff> {
        if len == 0 || !self.is_empty() || len > self.tailroom() {
            return Err(EINVAL);
        }
        // SAFETY: The buffer is empty, so its tailroom starts at `data`, and
        // `len` bytes of it are ours to write (checked above).
        unsafe { core::ptr::write_bytes((*self.as_raw()).data, 0, len as usize) };
        MappedSkBuff::new(self, dev, len as usize, DataDirection::FromDevice)
    }
}

impl Drop for SkBuff {
    fn drop(&mut self) {
        // SAFETY: We own one reference to a valid buffer (type invariant).
        unsafe { bindings::dev_kfree_skb_any(self.as_raw()) };
    }
}

/// A socket buffer whose data area is mapped for streaming DMA.
///
/// The mapping covers the buffer's linear data (transmit) or the tailroom
/// after it (receive). Dropping it unmaps the area and frees the buffer;
/// [`MappedSkBuff::unmap`] gives the buffer back instead.
///
/// # Invariants
///
/// `addr` is a live `dma_map_single` mapping on `dev` of `len` bytes at the
/// buffer's `data` pointer in direction `dir`; the buffer is not touched by
/// the CPU in ways that move `data` while mapped.
pub struct MappedSkBuff {
    skb: ManuallyDrop<SkBuff>,
    dev: ARef<Device>,
    addr: DmaAddress,
    len: usize,
    dir: DataDirection,
}

impl MappedSkBuff {
    fn new(skb: SkBuff, dev: &Device<Bound>, len: usize, dir: DataDirection) -> Result<Self> {
        // SAFETY: `data` and the `len` bytes after it lie in the buffer's
        // linear area (checked by the callers), which is kmalloc'ed or page
        // memory, never vmalloc; `dev` is bound, so its DMA setup is live.
        let addr = unsafe {
            bindings::dma_map_single_attrs(
                dev.as_raw(),
                (*skb.as_raw()).data.cast(),
                len,
                dir.into(),
                0,
            )
        };
        // SAFETY: `dev` is valid; `addr` came from it.
        if unsafe { bindings::dma_mapping_error(dev.as_raw(), addr) } != 0 {
            return Err(ENOMEM);
        }
        // INVARIANT: Mapped just above.
        Ok(Self {
            skb: ManuallyDrop::new(skb),
            dev: dev.into(),
            addr,
            len,
            dir,
        })
    }

    /// The address the device uses for the mapped area.
    pub fn dma_address(&self) -> DmaAddress {
        self.addr
    }

    /// The mapped length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: mapping zero bytes fails).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn do_unmap(&mut self) {
        // SAFETY: By the type invariant the mapping is live on `dev` with
        // these parameters; callers unmap it once.
        unsafe {
            bindings::dma_unmap_single_attrs(
                self.dev.as_raw(),
                self.addr,
                self.len,
                self.dir.into(),
                0,
            )
        };
    }

    /// Ends a receive mapping in which the device wrote a frame of `len`
    /// bytes, and returns the buffer holding it (`skb_put`). Fails with
    /// [`EINVAL`] (and frees the buffer) for a transmit mapping or a length
    /// beyond the mapped area.
    pub fn unmap_received(self, len: u32) -> Result<SkBuff> {
        if self.dir != DataDirection::FromDevice || len as usize > self.len {
            return Err(EINVAL);
        }
        let skb = self.unmap();
        // SAFETY: The buffer was empty when mapped, and the `len` bytes at
        // its data are within the mapped tailroom, zeroed then and written
        // by the device since: initialised, and within the tailroom.
        unsafe { bindings::skb_put(skb.as_raw(), len) };
        Ok(skb)
    }

    /// Ends the mapping (the device is done with the area) and returns the
    /// buffer, whose data the CPU may now read.
    pub fn unmap(self) -> SkBuff {
        let mut this = ManuallyDrop::new(self);
        this.do_unmap();
        // SAFETY: `this` is never used or dropped again, so the buffer and
        // the device reference are moved out exactly once.
        unsafe {
            core::ptr::drop_in_place(&mut this.dev);
            ManuallyDrop::take(&mut this.skb)
        }
    }
}

impl Drop for MappedSkBuff {
    fn drop(&mut self) {
        self.do_unmap();
        // SAFETY: The buffer is dropped exactly once, here.
        unsafe { ManuallyDrop::drop(&mut self.skb) };
    }
}

// SAFETY: The buffer is owned and the device reference is thread-safe.
unsafe impl Send for MappedSkBuff {}
