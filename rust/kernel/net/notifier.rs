// SPDX-License-Identifier: GPL-2.0

//! Netdevice notifiers: what happens to network devices (`struct
//! notifier_block` on the netdev chain, `register_netdevice_notifier`).
//!
//! Code that keeps a reference to a device it does not own (a sideband, an
//! uplink) must let go when the device is unregistered: until every
//! reference is dropped, `unregister_netdevice` waits ("waiting for ethN to
//! become free"). A [`Registration`] tells its [`Handler`] of each event.
//!
//! C header: [`include/linux/netdevice.h`](srctree/include/linux/netdevice.h)

use crate::{bindings, error::to_result, net::dev, prelude::*, types::Opaque};
use core::marker::PhantomPinned;

/// What happened to a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The device was registered (`NETDEV_REGISTER`).
    Register,
    /// The device is being unregistered: drop every reference to it
    /// (`NETDEV_UNREGISTER`).
    Unregister,
    /// The device came up (`NETDEV_UP`).
    Up,
    /// The device went down (`NETDEV_DOWN`).
    Down,
    /// The device was renamed (`NETDEV_CHANGENAME`).
    ChangeName,
    /// Another event, by its `NETDEV_*` number.
    Other(u64),
}

impl Event {
    fn from_raw(action: u64) -> Self {
        match action {
            a if a == u64::from(bindings::netdev_cmd_NETDEV_REGISTER) => Self::Register,
            a if a == u64::from(bindings::netdev_cmd_NETDEV_UNREGISTER) => Self::Unregister,
            a if a == u64::from(bindings::netdev_cmd_NETDEV_UP) => Self::Up,
            a if a == u64::from(bindings::netdev_cmd_NETDEV_DOWN) => Self::Down,
            a if a == u64::from(bindings::netdev_cmd_NETDEV_CHANGENAME) => Self::ChangeName,
            a => Self::Other(a),
        }
    }
}

/// What a [`Registration`] calls for each event, in process context with
/// RTNL held: it may sleep, but must not take RTNL or wait for anything
/// that does.
pub trait Handler: Send + Sync {
    /// `event` happened to `dev`, which is valid for the call.
    fn event(&self, event: Event, dev: &dev::Device);
}

/// A registered netdevice notifier.
///
/// Registering replays [`Event::Register`] and [`Event::Up`] for the devices
/// that exist; dropping it replays [`Event::Down`] and [`Event::Unregister`]
/// for them (as `unregister_netdevice_notifier` does), then no callback
/// runs any more.
///
/// # Invariants
///
/// `nb` is registered on the netdev chain and its callback reaches
/// `handler` through the `notifier_block`'s address.
#[pin_data(PinnedDrop)]
pub struct Registration<T: Handler> {
    handler: T,
    #[pin]
    nb: Opaque<bindings::notifier_block>,
    #[pin]
    _pin: PhantomPinned,
}

impl<T: Handler> Registration<T> {
    /// Tells `handler` of every netdevice event from now on. Sleeps (takes
    /// RTNL).
    pub fn new(handler: T) -> impl PinInit<Self, Error> {
        // `nb` is initialised last: the replayed events find `handler`.
        try_pin_init!(Self {
            handler,
            _pin: PhantomPinned,
            nb <- Opaque::try_ffi_init(move |nb: *mut bindings::notifier_block| {
                // SAFETY: `nb` is ours and uninitialised; zero is a valid
                // `notifier_block`, then we set its callback. It is pinned
                // inside `Self`, where the callback finds it.
                to_result(unsafe {
                    nb.write(core::mem::zeroed());
                    (*nb).notifier_call = Some(Self::callback);
                    bindings::register_netdevice_notifier(nb)
                })
            }),
        }? Error)
    }

    /// # Safety
    ///
    /// Called by the netdev chain for a `notifier_block` registered by
    /// [`Self::new`], with `data` a `struct netdev_notifier_info`.
    unsafe extern "C" fn callback(
        nb: *mut bindings::notifier_block,
        action: c_ulong,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: `nb` is the `nb` field of a pinned `Self`, registered until
        // it drops (type invariant).
        let this = unsafe { &*crate::container_of!(Opaque::cast_from(nb), Self, nb) };
        let info = data.cast::<bindings::netdev_notifier_info>();
        // SAFETY: Every netdev chain event carries a `netdev_notifier_info`
        // (or a struct that starts with one) naming a valid device, which
        // the core keeps valid for the call.
        let raw = unsafe { (*info).dev };
        if raw.is_null() {
            return bindings::NOTIFY_DONE as c_int;
        }
        // SAFETY: As above: `raw` is valid and referenced for the call.
        let dev = unsafe { dev::Device::from_raw(raw) };
        // CAST: `unsigned long` is 64 bits or fewer.
        this.handler.event(Event::from_raw(action as u64), dev);
        bindings::NOTIFY_DONE as c_int
    }
}

#[pinned_drop]
impl<T: Handler> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Registered in `new` (type invariant). Returns once no
        // callback runs, so `handler` can go with `self`.
        unsafe { bindings::unregister_netdevice_notifier(self.nb.get()) };
    }
}

// SAFETY: The registration only touches the `notifier_block` on creation
// and drop; the handler is `Send + Sync`.
unsafe impl<T: Handler> Send for Registration<T> {}

// SAFETY: `&Registration` gives nothing but what `T: Sync` allows.
unsafe impl<T: Handler> Sync for Registration<T> {}
