// SPDX-License-Identifier: GPL-2.0

//! NAPI, the polled receive and completion context of network drivers.
//!
//! The context itself ([`Napi`]) belongs to the device's
//! [`super::netdev::Registration`], which enables it before
//! [`super::netdev::Operations::open`] and disables it after
//! [`super::netdev::Operations::stop`], and completes a poll that did less
//! than its budget. What only a running poll may do (hand frames to GRO,
//! free transmitted buffers in bulk) takes a [`Poll`], which exists only
//! for the duration of [`super::netdev::Operations::poll`].
//!
//! C header: [`include/linux/netdevice.h`](srctree/include/linux/netdevice.h)

use crate::{bindings, net::skb::SkBuff, types::Opaque};
use core::marker::PhantomData;

/// A NAPI context (`struct napi_struct`) of a device registered by
/// [`super::netdev::Registration`].
///
/// # Invariants
///
/// The context has been added to its device with `netif_napi_add` and is
/// not deleted while a reference exists.
#[repr(transparent)]
pub struct Napi(Opaque<bindings::napi_struct>);

impl Napi {
    /// # Safety
    ///
    /// `ptr` points to a NAPI context added to a device that stays valid and
    /// is not deleted for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::napi_struct) -> &'a Self {
        // SAFETY: `Napi` is a transparent wrapper; validity per the safety
        // requirements.
        unsafe { &*ptr.cast() }
    }

    pub(crate) fn as_raw(&self) -> *mut bindings::napi_struct {
        self.0.get()
    }

    /// Schedules a poll unless one is pending or the context is disabled.
    /// Safe in any context, hard interrupts included.
    pub fn schedule(&self) -> bool {
        // SAFETY: The context is added (type invariant).
        unsafe { bindings::napi_schedule(self.as_raw()) }
    }

    /// Allows polls.
    ///
    /// # Safety
    ///
    /// Called under RTNL, paired with [`Self::disable`], with the context
    /// disabled (as it is when added).
    pub(crate) unsafe fn enable(&self) {
        // SAFETY: The context is added (type invariant) and disabled, per
        // the safety requirements.
        unsafe { bindings::napi_enable(self.as_raw()) }
    }

    /// Forbids polls and waits for a running one to finish. Sleeps.
    ///
    /// # Safety
    ///
    /// Called under RTNL on an enabled context (after [`Self::enable`]): a
    /// second disable waits forever.
    pub(crate) unsafe fn disable(&self) {
        // SAFETY: The context is added (type invariant) and enabled, per the
        // safety requirements.
        unsafe { bindings::napi_disable(self.as_raw()) }
    }
}

// SAFETY: NAPI contexts are designed to be scheduled from any CPU; the core
// serialises polls.
unsafe impl Sync for Napi {}

// SAFETY: As above.
unsafe impl Send for Napi {}

/// A running NAPI poll of a device: what only the poll may do.
///
/// Made by the registration for one call of
/// [`super::netdev::Operations::poll`]; it cannot be kept past it or sent to
/// another thread.
///
/// # Invariants
///
/// `napi` is being polled (NAPI_STATE_SCHED is ours) on this CPU, in softirq
/// context, for the lifetime `'a`; `budget` is the poll's budget (zero for
/// a netpoll, which may only complete transmissions).
pub struct Poll<'a> {
    napi: &'a Napi,
    budget: u32,
    _not_send: PhantomData<*mut ()>,
}

impl<'a> Poll<'a> {
    /// # Safety
    ///
    /// `napi` is being polled on this CPU for `'a` with budget `budget`.
    pub(crate) unsafe fn new(napi: &'a Napi, budget: u32) -> Self {
        // INVARIANT: Per the safety requirements.
        Self {
            napi,
            budget,
            _not_send: PhantomData,
        }
    }

    /// The poll's budget: at most this many received frames.
    pub fn budget(&self) -> u32 {
        self.budget
    }

    /// Hands a received Ethernet frame to the stack through GRO, after
    /// setting its protocol from the Ethernet header (`eth_type_trans`).
    /// A frame shorter than an Ethernet header, or one offered to a netpoll
    /// (zero budget), is dropped: returns `false` for it, for the caller to
    /// count.
    pub fn receive(&self, skb: SkBuff) -> bool {
        if self.budget == 0 || skb.headlen() < bindings::ETH_HLEN {
            return false;
        }
        let skb = skb.into_raw();
        // SAFETY: The context is being polled (type invariant), so `dev` is
        // its valid device and GRO may run; `skb` is a linear buffer we
        // owned with at least an Ethernet header, whose reference GRO takes
        // over.
        unsafe {
            let protocol = bindings::eth_type_trans(skb, (*self.napi.as_raw()).dev);
            bindings::skb_set_protocol(skb, protocol);
            bindings::napi_gro_receive(self.napi.as_raw(), skb);
        }
        true
    }

    /// Frees a transmitted buffer, letting the core recycle it in bulk
    /// (`napi_consume_skb` with the poll's budget).
    pub fn consume(&self, skb: SkBuff) {
        // CAST: The budget came from a positive `c_int`.
        let budget = self.budget as i32;
        // SAFETY: We own the buffer and give up our reference; in a poll
        // (type invariant), as a non-zero budget requires; zero frees it as
        // outside NAPI.
        unsafe { bindings::napi_consume_skb(skb.into_raw(), budget) };
    }
}
