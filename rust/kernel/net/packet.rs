// SPDX-License-Identifier: GPL-2.0

//! Raw Ethernet frames on one device: receiving an ethertype
//! (`struct packet_type`, `dev_add_pack`) and sending whole frames
//! (`dev_queue_xmit`), as management protocols on a sideband do.
//!
//! C header: [`include/linux/netdevice.h`](srctree/include/linux/netdevice.h)

use crate::{bindings, error::to_result, net::dev, prelude::*, sync::aref::ARef, types::Opaque};
use core::{marker::PhantomPinned, ptr::NonNull};

/// Ethernet header length.
const ETH_HLEN: usize = bindings::ETH_HLEN as usize;

/// A received frame, borrowed for the duration of
/// [`Handler::receive`].
///
/// # Invariants
///
/// `skb` is a valid received buffer whose MAC header is set and lies in
/// its linear part before `data`.
pub struct Frame<'a> {
    skb: &'a bindings::sk_buff,
}

impl Frame<'_> {
    fn header_len(&self) -> usize {
        // SAFETY: The MAC header precedes `data` in the linear part (type
        // invariant).
        let mac = unsafe { bindings::skb_mac_header(self.skb) };
        (self.skb.data as usize).saturating_sub(mac as usize)
    }

    /// Length of the whole frame, Ethernet header included.
    pub fn len(&self) -> usize {
        self.header_len() + self.skb.len as usize
    }

    /// Whether the frame is empty (never, for a received frame).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies the whole frame, Ethernet header included, to the start of
    /// `buf`; returns its length, or [`EMSGSIZE`] if `buf` is too short.
    pub fn copy_to(&self, buf: &mut [u8]) -> Result<usize> {
        let header = self.header_len();
        let len = self.len();
        let out = buf.get_mut(..len).ok_or(EMSGSIZE)?;
        // SAFETY: The `header` bytes before `data` are the linear MAC header
        // (type invariant); `out` has room for them.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bindings::skb_mac_header(self.skb),
                out.as_mut_ptr(),
                header,
            )
        };
        let body = &mut out[header..];
        // SAFETY: `body` holds `skb.len` bytes, the data `skb_copy_bits`
        // copies from offset 0, linear part and fragments alike.
        let ret = unsafe {
            bindings::skb_copy_bits(self.skb, 0, body.as_mut_ptr().cast(), body.len() as c_int)
        };
        to_result(ret)?;
        Ok(len)
    }
}

/// What a [`Registration`] calls for each received frame, in softirq
/// context: it must not sleep.
pub trait Handler: Send + Sync {
    /// A frame of the registered ethertype arrived on the device.
    fn receive(&self, frame: &Frame<'_>);
}

/// A registered receiver of one ethertype on one device.
///
/// Dropping it removes the receiver and waits for running callbacks.
///
/// # Invariants
///
/// `pt` is registered with `dev_add_pack`, its `dev` is `dev`, and its
/// callback reaches `handler` through the `packet_type`'s address.
#[pin_data(PinnedDrop)]
pub struct Registration<T: Handler> {
    #[pin]
    pt: Opaque<bindings::packet_type>,
    dev: ARef<dev::Device>,
    handler: T,
    #[pin]
    _pin: PhantomPinned,
}

impl<T: Handler> Registration<T> {
    /// Receives frames of `ethertype` arriving on `dev` with `handler`.
    pub fn new(dev: ARef<dev::Device>, ethertype: u16, handler: T) -> impl PinInit<Self, Error> {
        let raw_dev = dev.as_raw();
        // `pt` is initialised last, so the callback finds the other fields.
        pin_init!(Self {
            handler,
            dev,
            _pin: PhantomPinned,
            pt <- Opaque::ffi_init(move |pt: *mut bindings::packet_type| {
                // SAFETY: `pt` is ours and uninitialised; zero is a valid
                // `packet_type`, then we set what `dev_add_pack` reads. It is
                // pinned inside `Self`, where the callback finds it.
                unsafe {
                    pt.write(core::mem::zeroed());
                    (*pt).type_ = ethertype.to_be();
                    (*pt).dev = raw_dev;
                    (*pt).func = Some(Self::receive_callback);
                    bindings::dev_add_pack(pt);
                }
            }),
        }? Error)
    }

    /// The device frames are received on.
    pub fn device(&self) -> &dev::Device {
        &self.dev
    }

    /// # Safety
    ///
    /// Called by the core for a `packet_type` registered by [`Self::new`],
    /// handing over `skb`.
    unsafe extern "C" fn receive_callback(
        skb: *mut bindings::sk_buff,
        _dev: *mut bindings::net_device,
        pt: *mut bindings::packet_type,
        _orig_dev: *mut bindings::net_device,
    ) -> c_int {
        // SAFETY: `pt` is the `pt` field of a pinned `Self`, registered until
        // it drops (type invariant).
        let this = unsafe { &*crate::container_of!(Opaque::cast_from(pt), Self, pt) };
        if let Some(skb) = NonNull::new(skb) {
            // SAFETY: The buffer is valid while we hold it, until we free it
            // below.
            let skb_ref = unsafe { skb.as_ref() };
            // INVARIANT: Receive handlers get buffers with the MAC header set
            // and linear.
            let frame = Frame { skb: skb_ref };
            this.handler.receive(&frame);
            // SAFETY: The core gave us this reference to the buffer.
            unsafe { bindings::dev_kfree_skb_any(skb.as_ptr()) };
        }
        bindings::NET_RX_SUCCESS as c_int
    }
}

#[pinned_drop]
impl<T: Handler> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Registered in `new` (type invariant); waits for callbacks
        // in flight before `self` goes.
        unsafe { bindings::dev_remove_pack(self.pt.get()) };
    }
}

// SAFETY: The registration only touches the `packet_type` on creation and
// drop; the handler is `Send + Sync`.
unsafe impl<T: Handler> Send for Registration<T> {}

// SAFETY: `&Registration` gives only the device and `&T`, both `Sync`.
unsafe impl<T: Handler> Sync for Registration<T> {}

impl dev::Device {
    /// Transmits a whole Ethernet `frame` (header included) as is, like a
    /// packet socket does. May sleep.
    pub fn send_frame(&self, frame: &[u8]) -> Result {
        if frame.len() < ETH_HLEN {
            return Err(EINVAL);
        }
        let len = u32::try_from(frame.len())?;
        // SAFETY: The device is valid (type invariant of `dev::Device`).
        let skb = unsafe { bindings::__netdev_alloc_skb(self.as_raw(), len, bindings::GFP_KERNEL) };
        let skb = NonNull::new(skb).ok_or(ENOMEM)?.as_ptr();
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        // SAFETY: `skb` is new and ours, with room for `len` bytes; we hand
        // it to `dev_queue_xmit`, which consumes it whatever it returns.
        let ret = unsafe {
            bindings::skb_put_data(skb, frame.as_ptr().cast(), len);
            // Taps (`dev_queue_xmit_nit`) and qdiscs read the headers: the
            // MAC header at the start, the network header after it.
            bindings::skb_reset_mac_header(skb);
            bindings::skb_set_network_header(skb, ETH_HLEN as c_int);
            bindings::skb_set_protocol(skb, ethertype.to_be());
            bindings::skb_set_dev(skb, self.as_raw());
            bindings::dev_queue_xmit(skb)
        };
        match ret {
            // NET_XMIT_CN: sent, the qdisc is congested.
            0 | 2 => Ok(()),
            r if r < 0 => Err(Error::from_errno(r)),
            _ => Err(ENOBUFS),
        }
    }
}
