// SPDX-License-Identifier: GPL-2.0

//! Network devices.
//!
//! C header: [`include/linux/netdevice.h`](srctree/include/linux/netdevice.h)

use crate::{
    bindings,
    prelude::*,
    str::CStrExt,
    sync::aref::{ARef, AlwaysRefCounted},
    types::Opaque,
};
use core::ptr::NonNull;

/// A network device (`struct net_device`) that this code does not own.
///
/// Instances are reached through [`ARef<Device>`], which holds a reference
/// (`dev_hold`) for as long as it lives: the device may be unregistered
/// meanwhile, but its memory stays valid.
///
/// # Invariants
///
/// A `&Device` points to a valid `struct net_device` whose reference count
/// is non-zero for the lifetime of the reference.
#[repr(transparent)]
pub struct Device(Opaque<bindings::net_device>);

impl Device {
    /// Looks a device up by interface name in the initial network
    /// namespace, taking a reference on it.
    ///
    /// Returns [`ENODEV`] if no device has that name.
    pub fn get_by_name(name: &CStr) -> Result<ARef<Self>> {
        // SAFETY: `init_net` is a static the networking core initialises
        // before any module can run; `name` is NUL-terminated and outlives
        // the call.
        let raw =
            unsafe { bindings::dev_get_by_name(&raw mut bindings::init_net, name.as_char_ptr()) };
        let raw = NonNull::new(raw).ok_or(ENODEV)?;
        // SAFETY: `dev_get_by_name` returned a device with a reference taken
        // for us; the `ARef` now owns that reference.
        Ok(unsafe { ARef::from_raw(raw.cast()) })
    }

    /// # Safety
    ///
    /// `ptr` points to a valid `struct net_device` whose reference count is
    /// non-zero for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::net_device) -> &'a Self {
        // SAFETY: `Device` is a transparent wrapper; validity per the safety
        // requirements.
        unsafe { &*ptr.cast() }
    }

    pub(crate) fn as_raw(&self) -> *mut bindings::net_device {
        self.0.get()
    }

    /// Whether the device is registered (not yet being unregistered).
    ///
    /// Under RTNL, or after registering a [`super::notifier::Registration`]
    /// (which takes RTNL), a `false` here means the unregistration has
    /// already been notified.
    pub fn is_registered(&self) -> bool {
        // SAFETY: By the type invariant the device is valid; `reg_state` is
        // a `u8` written under RTNL and read locklessly by the core too.
        let state = unsafe { core::ptr::read_volatile(&raw const (*self.as_raw()).reg_state) };
        u32::from(state) == bindings::netdev_reg_state_NETREG_REGISTERED
    }

    /// The interface index.
    pub fn ifindex(&self) -> i32 {
        // SAFETY: By the type invariant the device is valid; `ifindex` is set
        // at registration and never changes afterwards.
        unsafe { (*self.as_raw()).ifindex }
    }

    /// The interface name, copied.
    ///
    /// A rename rewrites the name in place under RTNL while others read it,
    /// so it is copied byte by byte with volatile reads into a buffer that
    /// always ends in a NUL; racing a rename, the copy may mix the two
    /// names, never read out of bounds.
    pub fn name(&self) -> Name {
        let mut name = Name([0; IFNAMSIZ]);
        // SAFETY: By the type invariant the device is valid; `name` is an
        // array of `IFNAMSIZ` bytes.
        let src = unsafe { &raw const (*self.as_raw()).name }.cast::<u8>();
        for (i, b) in name.0.iter_mut().take(IFNAMSIZ - 1).enumerate() {
            // SAFETY: `i < IFNAMSIZ`, within the array.
            *b = unsafe { core::ptr::read_volatile(src.add(i)) };
        }
        name
    }

    /// The hardware address, for an Ethernet device.
    pub fn mac(&self) -> [u8; 6] {
        let mut mac = [0u8; 6];
        // SAFETY: By the type invariant the device is valid; an Ethernet
        // device's `dev_addr` holds at least 6 bytes.
        unsafe {
            let addr = (*self.as_raw()).dev_addr;
            if !addr.is_null() && (*self.as_raw()).addr_len as usize >= mac.len() {
                core::ptr::copy_nonoverlapping(addr, mac.as_mut_ptr(), mac.len());
            }
        }
        mac
    }

    /// The current MTU.
    pub fn mtu(&self) -> u32 {
        // SAFETY: By the type invariant the device is valid; `mtu` is read
        // locklessly by the core too (`READ_ONCE`), a torn value is impossible
        // for an aligned `u32`.
        unsafe { core::ptr::read_volatile(&raw const (*self.as_raw()).mtu) }
    }

    /// Whether the device is administratively up (`IFF_UP`).
    pub fn is_up(&self) -> bool {
        // SAFETY: By the type invariant the device is valid; `flags` is an
        // aligned `unsigned int` read without the RTNL like `netif_running`
        // callers do.
        let flags = unsafe { core::ptr::read_volatile(&raw const (*self.as_raw()).flags) };
        flags & bindings::net_device_flags_IFF_UP != 0
    }
}

/// Length of an interface name buffer, NUL included.
const IFNAMSIZ: usize = bindings::IFNAMSIZ as usize;

/// An interface name copied out of a device ([`Device::name`]).
///
/// # Invariants
///
/// The last byte is a NUL.
#[derive(Clone, Copy)]
pub struct Name([u8; IFNAMSIZ]);

impl Name {
    /// The name as a C string.
    pub fn as_c_str(&self) -> &CStr {
        // INVARIANT: There is a NUL at the end at the latest.
        CStr::from_bytes_until_nul(&self.0).unwrap_or(c"")
    }
}

// SAFETY: Instances of `Device` are always reference-counted through
// `dev_hold`/`dev_put`.
unsafe impl AlwaysRefCounted for Device {
    #[inline]
    fn inc_ref(&self) {
        // SAFETY: The existence of a shared reference guarantees that the
        // refcount is non-zero.
        unsafe { bindings::dev_hold(self.as_raw()) };
    }

    #[inline]
    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The safety requirements guarantee that the refcount is
        // non-zero and that the caller owns one reference.
        unsafe { bindings::dev_put(obj.cast().as_ptr()) }
    }
}

// SAFETY: A `struct net_device` reference can be dropped from any thread.
unsafe impl Send for Device {}

// SAFETY: The accessors above only read fields that are safe to read
// concurrently; all mutation goes through the C core and its locks.
unsafe impl Sync for Device {}
