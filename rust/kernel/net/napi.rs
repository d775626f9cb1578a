// SPDX-License-Identifier: GPL-2.0

//! NAPI, the polled receive and completion context of network drivers.
//!
//! C header: [`include/linux/netdevice.h`](srctree/include/linux/netdevice.h)

use crate::{bindings, net::skb::SkBuff, types::Opaque};

/// A NAPI context (`struct napi_struct`) of a device registered by
/// [`super::netdev::Registration`].
///
/// Drivers reach it only through [`super::netdev::Device::napi`] and in
/// their [`super::netdev::Operations::poll`] callback.
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
    /// Safe from hard interrupt context.
    pub fn schedule(&self) -> bool {
        // SAFETY: The context is added (type invariant).
        unsafe { bindings::napi_schedule(self.as_raw()) }
    }

    /// Reports a poll that did `work_done` (less than its budget) and ends
    /// it. Returns `false` if the core wants another poll anyway, in which
    /// case the driver must not re-arm its interrupts.
    pub fn complete_done(&self, work_done: u32) -> bool {
        let work = i32::try_from(work_done).unwrap_or(i32::MAX);
        // SAFETY: The context is added (type invariant).
        unsafe { bindings::napi_complete_done(self.as_raw(), work) }
    }

    /// Allows polls (from `ndo_open`).
    pub fn enable(&self) {
        // SAFETY: The context is added (type invariant).
        unsafe { bindings::napi_enable(self.as_raw()) }
    }

    /// Forbids polls and waits for a running one to finish (from
    /// `ndo_stop`). May sleep.
    pub fn disable(&self) {
        // SAFETY: The context is added (type invariant).
        unsafe { bindings::napi_disable(self.as_raw()) }
    }

    /// Hands a received Ethernet frame to the stack through GRO, after
    /// setting its protocol from the Ethernet header (`eth_type_trans`).
    pub fn receive(&self, skb: SkBuff) {
        let skb = skb.into_raw();
        // SAFETY: The context is added, so `dev` is its valid device; `skb`
        // is a buffer we owned, whose reference GRO takes over.
        unsafe {
            let protocol = bindings::eth_type_trans(skb, (*self.as_raw()).dev);
            bindings::skb_set_protocol(skb, protocol);
            bindings::napi_gro_receive(self.as_raw(), skb);
        }
    }
}

// SAFETY: NAPI contexts are designed to be scheduled from any CPU; the core
// serialises polls.
unsafe impl Sync for Napi {}

// SAFETY: As above.
unsafe impl Send for Napi {}
