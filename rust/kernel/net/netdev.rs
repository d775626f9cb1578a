// SPDX-License-Identifier: GPL-2.0

//! Network device drivers.
//!
//! A driver describes its device with [`Operations`] (the `net_device_ops`
//! it implements) and [`super::ethtool::Operations`], and registers it with
//! [`Registration`], which owns the `struct net_device`, the driver's data,
//! one NAPI context and the interrupts that schedule it.
//!
//! C header: [`include/linux/netdevice.h`](srctree/include/linux/netdevice.h)

use crate::{
    bindings, device,
    error::{from_result, to_result},
    irq,
    net::{
        dev, ethtool,
        napi::{Napi, Poll},
        skb::SkBuff,
    },
    pci,
    prelude::*,
    sync::Arc,
};
use core::{marker::PhantomData, ops::Deref, ptr::NonNull};

/// Length of an Ethernet hardware address.
pub const ETH_ALEN: usize = bindings::ETH_ALEN as usize;

/// Interface statistics, as `ip -s link` shows them (`rtnl_link_stats64`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats64 {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames transmitted.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Received frames that were bad.
    pub rx_errors: u64,
    /// Frames that failed to transmit.
    pub tx_errors: u64,
    /// Received frames dropped for lack of resources or by policy.
    pub rx_dropped: u64,
    /// Frames dropped before or instead of transmission.
    pub tx_dropped: u64,
}

/// Settings of a device at registration.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// The permanent hardware address.
    pub mac: [u8; ETH_ALEN],
    /// The initial MTU.
    pub mtu: u32,
    /// The smallest MTU the device accepts.
    pub min_mtu: u32,
    /// The largest MTU the device accepts.
    pub max_mtu: u32,
}

/// The operations of a network device (`struct net_device_ops`), and its
/// NAPI poll.
///
/// Callbacks receive the [`Device`], whose [`Device::data`] is the driver's
/// data given to [`Registration::new`].
#[vtable]
pub trait Operations: Sized + Send + Sync + 'static {
    /// Brings the interface up (`ndo_open`).
    fn open(dev: &Device<Self>) -> Result;

    /// Brings the interface down (`ndo_stop`).
    fn stop(dev: &Device<Self>) -> Result;

    /// Queues a frame for transmission (`ndo_start_xmit`). Returning the
    /// buffer (`Err`) asks the stack to retry it later (`NETDEV_TX_BUSY`);
    /// a driver that stops its queue before it fills never needs to.
    fn start_xmit(dev: &Device<Self>, skb: SkBuff) -> core::result::Result<(), SkBuff>;

    /// Reports interface statistics (`ndo_get_stats64`).
    fn get_stats64(_dev: &Device<Self>, _stats: &mut Stats64) {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Validates and applies a new MTU (`ndo_change_mtu`); on success the
    /// abstraction records it in the net_device. The core has already
    /// checked it against [`Config::min_mtu`] and [`Config::max_mtu`].
    fn change_mtu(_dev: &Device<Self>, _new_mtu: u32) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Changes the hardware address (`ndo_set_mac_address`); on success the
    /// abstraction records it in the net_device.
    fn set_mac_address(_dev: &Device<Self>, _addr: &[u8; ETH_ALEN]) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Polls for completed work, doing at most [`Poll::budget`] receive
    /// units, and returns the work done (`napi_struct.poll`). A return
    /// below the budget ends the poll (`napi_complete_done`); the budget
    /// itself asks to be polled again.
    ///
    /// The registration enables NAPI before [`Self::open`] and disables it
    /// (waiting for a running poll) before [`Self::stop`], so a poll only
    /// runs between the two.
    fn poll(_dev: &Device<Self>, _poll: &Poll<'_>) -> u32 {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }
}

/// What the net_device's private area holds.
#[repr(C)]
struct Private<T> {
    /// From [`Arc::into_raw`]; the [`Registration`] owns that reference.
    data: *const T,
    napi: Napi,
    /// Under RTNL: set by [`Registration::suspend`] when it stopped the
    /// running interface, cleared by whatever undoes that stop (resume, or
    /// a close in between).
    stopped_for_sleep: bool,
}

/// A network device registered by [`Registration<T>`], as its callbacks
/// see it.
///
/// # Invariants
///
/// The net_device was allocated by [`Registration::new`] with a
/// [`Private<T>`] area whose `data` is valid and whose NAPI context, if `T`
/// has a poll, is added; both stay so while a reference exists. The
/// device's parent is bound while the device is registered.
#[repr(transparent)]
pub struct Device<T>(dev::Device, PhantomData<T>);

impl<T: Operations> Device<T> {
    /// # Safety
    ///
    /// `ptr` is a net_device allocated by [`Registration::new`] for `T` that
    /// stays allocated and registered for `'a`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::net_device) -> &'a Self {
        // SAFETY: `Device<T>` is a transparent wrapper of `dev::Device`,
        // itself transparent over `net_device`; validity per the safety
        // requirements.
        unsafe { &*ptr.cast() }
    }

    fn private(&self) -> *mut Private<T> {
        // SAFETY: The device is valid (type invariant); its private area was
        // sized for `Private<T>`.
        unsafe { bindings::netdev_priv(self.0.as_raw()).cast() }
    }

    /// The driver's data.
    pub fn data(&self) -> &T {
        // SAFETY: By the type invariant `data` is valid while `self` is.
        unsafe { &*(*self.private()).data }
    }

    /// The device's NAPI context, if `T` has a poll.
    fn napi(&self) -> Option<&Napi> {
        if !T::HAS_POLL {
            return None;
        }
        // SAFETY: The context is added when `T` has a poll (type invariant)
        // and lives in the private area, as long as `self`.
        Some(unsafe { Napi::from_raw((*self.private()).napi.as_raw()) })
    }

    /// Clears the private `stopped_for_sleep` flag, returning its value.
    ///
    /// # Safety
    ///
    /// RTNL is held.
    unsafe fn take_stopped_for_sleep(&self) -> bool {
        // SAFETY: The private area is valid (type invariant); RTNL, held per
        // the safety requirements, serialises every access to the flag.
        unsafe { core::mem::take(&mut (*self.private()).stopped_for_sleep) }
    }

    /// The bus device the interface belongs to, for DMA.
    pub fn parent(&self) -> &device::Device<device::Bound> {
        // SAFETY: `Registration::new` set a bound parent, which stays bound
        // while the device is registered (type invariant), i.e. while any
        // callback runs.
        unsafe { device::Device::from_raw((*self.0.as_raw()).dev.parent) }
    }

    /// Whether the interface is up (`netif_running`).
    pub fn is_running(&self) -> bool {
        // SAFETY: The device is valid (type invariant).
        unsafe { bindings::netif_running(self.0.as_raw()) }
    }

    /// Reports the link up (`netif_carrier_on`); any context.
    pub fn carrier_on(&self) {
        // SAFETY: The device is valid (type invariant).
        unsafe { bindings::netif_carrier_on(self.0.as_raw()) }
    }

    /// Reports the link down (`netif_carrier_off`); any context.
    pub fn carrier_off(&self) {
        // SAFETY: The device is valid (type invariant).
        unsafe { bindings::netif_carrier_off(self.0.as_raw()) }
    }

    /// Whether the link is reported up.
    pub fn carrier_ok(&self) -> bool {
        // SAFETY: The device is valid (type invariant).
        unsafe { bindings::netif_carrier_ok(self.0.as_raw()) }
    }

    /// Lets the stack transmit (`netif_start_queue`).
    pub fn start_queue(&self) {
        // SAFETY: The device is valid (type invariant).
        unsafe { bindings::netif_start_queue(self.0.as_raw()) }
    }

    /// Stops the stack from transmitting (`netif_stop_queue`).
    pub fn stop_queue(&self) {
        // SAFETY: The device is valid (type invariant).
        unsafe { bindings::netif_stop_queue(self.0.as_raw()) }
    }

    /// Restarts a stopped transmit queue (`netif_wake_queue`).
    pub fn wake_queue(&self) {
        // SAFETY: The device is valid (type invariant).
        unsafe { bindings::netif_wake_queue(self.0.as_raw()) }
    }

    /// Whether the transmit queue is stopped.
    pub fn queue_stopped(&self) -> bool {
        // SAFETY: The device is valid (type invariant).
        unsafe { bindings::netif_queue_stopped(self.0.as_raw()) }
    }

    /// In [`Operations::start_xmit`]: whether the stack has more frames
    /// coming right away, so the doorbell can wait (`netdev_xmit_more`).
    pub fn xmit_more(&self) -> bool {
        // SAFETY: Reads a per-CPU/per-task flag; no precondition.
        unsafe { bindings::netdev_xmit_more() }
    }

    /// In [`Operations::start_xmit`], for a frame of `bytes` handed to the
    /// device: accounts it to byte queue limits (which may stop the queue)
    /// and returns whether to ring the doorbell now: no more frames are
    /// coming right away, or the queue stopped (`__netdev_sent_queue`).
    pub fn sent_queue(&self, bytes: u32) -> bool {
        // SAFETY: The device is valid (type invariant); BQL state is per
        // queue and serialised by the transmit path's callers.
        unsafe {
            bindings::__netdev_sent_queue(self.0.as_raw(), bytes, bindings::netdev_xmit_more())
        }
    }

    /// Reports `packets` frames of `bytes` in total completed by the device
    /// to byte queue limits, which may wake the queue
    /// (`netdev_completed_queue`).
    pub fn completed_queue(&self, packets: u32, bytes: u32) {
        // SAFETY: The device is valid (type invariant).
        unsafe { bindings::netdev_completed_queue(self.0.as_raw(), packets, bytes) }
    }

    /// Forgets the frames in flight for byte queue limits, when the driver
    /// dropped them with its ring (`netdev_reset_queue`).
    pub fn reset_queue(&self) {
        // SAFETY: The device is valid (type invariant).
        unsafe { bindings::netdev_reset_queue(self.0.as_raw()) }
    }
}

impl<T> Deref for Device<T> {
    type Target = dev::Device;

    fn deref(&self) -> &dev::Device {
        &self.0
    }
}

/// A registered network device with its driver data and interrupts.
///
/// Dropping it frees the interrupts (waiting for running handlers),
/// unregisters the interface (which brings it down through
/// [`Operations::stop`] and waits for every callback), frees the
/// net_device with its NAPI context, then drops the driver's data and the
/// interrupt vectors, in that order.
///
/// # Invariants
///
/// `dev` is a registered net_device allocated by [`Registration::new`]
/// for `T` whose parent is bound for `'a`; each of `irqs` is a handler
/// for one of `vectors` that schedules the device's NAPI context.
pub struct Registration<'a, T: Operations + ethtool::Operations> {
    dev: NonNull<bindings::net_device>,
    irqs: KVec<Pin<KBox<irq::Registration<'a, NapiScheduler>>>>,
    vectors: Option<pci::IrqVectorRegistration<'a>>,
    _data: PhantomData<(&'a device::Device<device::Bound>, Arc<T>)>,
}

struct Adapter<T>(PhantomData<T>);

impl<T: Operations + ethtool::Operations> Adapter<T> {
    const NETDEV_OPS: bindings::net_device_ops = bindings::net_device_ops {
        ndo_open: Some(Self::open),
        ndo_stop: Some(Self::stop),
        ndo_start_xmit: Some(Self::start_xmit),
        ndo_get_stats64: if T::HAS_GET_STATS64 {
            Some(Self::get_stats64)
        } else {
            None
        },
        ndo_change_mtu: if T::HAS_CHANGE_MTU {
            Some(Self::change_mtu)
        } else {
            None
        },
        ndo_set_mac_address: if T::HAS_SET_MAC_ADDRESS {
            Some(Self::set_mac_address)
        } else {
            None
        },
        ndo_validate_addr: Some(bindings::eth_validate_addr),
        // SAFETY: All-zero is a valid `net_device_ops` (no operations).
        ..unsafe { core::mem::zeroed() }
    };

    /// # Safety
    ///
    /// Called by the core on a device registered for `T`.
    unsafe extern "C" fn open(dev: *mut bindings::net_device) -> c_int {
        // SAFETY: Per the function's safety requirements.
        let dev = unsafe { Device::<T>::from_raw(dev) };
        let napi = dev.napi();
        if let Some(napi) = napi {
            // SAFETY: Under RTNL; the core pairs a successful open with one
            // stop, so the context is disabled here (as added, or by the
            // last stop or failed open).
            unsafe { napi.enable() };
        }
        let ret = from_result(|| T::open(dev).map(|()| 0));
        if let (Some(napi), true) = (napi, ret != 0) {
            // SAFETY: Enabled just above; under RTNL.
            unsafe { napi.disable() };
        }
        ret
    }

    /// # Safety
    ///
    /// Called by the core on a device registered for `T`.
    unsafe extern "C" fn stop(dev: *mut bindings::net_device) -> c_int {
        // SAFETY: Per the function's safety requirements.
        let dev = unsafe { Device::<T>::from_raw(dev) };
        // SAFETY: Under RTNL, as the core calls `ndo_stop`.
        if unsafe { dev.take_stopped_for_sleep() } {
            // Closed while asleep: `Registration::suspend` already stopped
            // it, NAPI included.
            return 0;
        }
        if let Some(napi) = dev.napi() {
            // SAFETY: Under RTNL, after a successful open, which enabled it.
            unsafe { napi.disable() };
        }
        from_result(|| T::stop(dev).map(|()| 0))
    }

    /// # Safety
    ///
    /// Called by the core on a device registered for `T`, handing over
    /// `skb`.
    unsafe extern "C" fn start_xmit(
        skb: *mut bindings::sk_buff,
        dev: *mut bindings::net_device,
    ) -> bindings::netdev_tx_t {
        // SAFETY: Per the function's safety requirements.
        let dev = unsafe { Device::<T>::from_raw(dev) };
        let Some(skb) = NonNull::new(skb) else {
            return bindings::netdev_tx_NETDEV_TX_OK;
        };
        // SAFETY: The core hands the buffer's reference to the driver.
        let skb = unsafe { SkBuff::from_raw(skb) };
        match T::start_xmit(dev, skb) {
            Ok(()) => bindings::netdev_tx_NETDEV_TX_OK,
            Err(skb) => {
                // The core keeps the buffer and retries it.
                let _ = skb.into_raw();
                bindings::netdev_tx_NETDEV_TX_BUSY
            }
        }
    }

    /// # Safety
    ///
    /// Called by the core on a device registered for `T` with a valid,
    /// exclusive `stats`.
    unsafe extern "C" fn get_stats64(
        dev: *mut bindings::net_device,
        stats: *mut bindings::rtnl_link_stats64,
    ) {
        // SAFETY: Per the function's safety requirements.
        let dev = unsafe { Device::<T>::from_raw(dev) };
        let mut s = Stats64::default();
        T::get_stats64(dev, &mut s);
        // SAFETY: `stats` is valid and exclusively ours for the call.
        let out = unsafe { &mut *stats };
        out.rx_packets = s.rx_packets;
        out.tx_packets = s.tx_packets;
        out.rx_bytes = s.rx_bytes;
        out.tx_bytes = s.tx_bytes;
        out.rx_errors = s.rx_errors;
        out.tx_errors = s.tx_errors;
        out.rx_dropped = s.rx_dropped;
        out.tx_dropped = s.tx_dropped;
    }

    /// # Safety
    ///
    /// Called by the core, under RTNL, on a device registered for `T`.
    unsafe extern "C" fn change_mtu(dev: *mut bindings::net_device, new_mtu: c_int) -> c_int {
        // SAFETY: Per the function's safety requirements.
        let device = unsafe { Device::<T>::from_raw(dev) };
        from_result(|| {
            let mtu = u32::try_from(new_mtu)?;
            T::change_mtu(device, mtu)?;
            // SAFETY: Under RTNL, as the core updates it; lockless readers
            // use `READ_ONCE`, so write it with one store.
            unsafe { core::ptr::write_volatile(&raw mut (*dev).mtu, mtu) };
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the core, under RTNL, on a device registered for `T` with
    /// `addr` a `struct sockaddr`.
    unsafe extern "C" fn set_mac_address(
        dev: *mut bindings::net_device,
        addr: *mut c_void,
    ) -> c_int {
        // SAFETY: Per the function's safety requirements.
        let device = unsafe { Device::<T>::from_raw(dev) };
        from_result(|| {
            // SAFETY: `addr` is a `struct sockaddr` whose `sa_data` holds at
            // least `ETH_ALEN` bytes for an Ethernet device.
            let mac: [u8; ETH_ALEN] = unsafe {
                core::ptr::read_unaligned(
                    (&raw const (*addr.cast::<bindings::sockaddr>()).sa_data).cast(),
                )
            };
            if !is_valid_ether_addr(&mac) {
                return Err(EADDRNOTAVAIL);
            }
            T::set_mac_address(device, &mac)?;
            // SAFETY: Under RTNL; `mac` holds `ETH_ALEN` bytes.
            unsafe { bindings::eth_hw_addr_set(dev, mac.as_ptr()) };
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the core on a NAPI context added by [`Registration::new`].
    unsafe extern "C" fn poll(napi: *mut bindings::napi_struct, budget: c_int) -> c_int {
        // SAFETY: The context belongs to a device registered for `T`, valid
        // while polled.
        let (dev, napi) = unsafe { (Device::<T>::from_raw((*napi).dev), Napi::from_raw(napi)) };
        let budget = u32::try_from(budget).unwrap_or(0);
        // SAFETY: The core polls `napi` on this CPU for the duration of this
        // call.
        let poll = unsafe { Poll::new(napi, budget) };
        let done = T::poll(dev, &poll).min(budget);
        if done < budget {
            // CAST: `done < budget`, which came from a `c_int`.
            // SAFETY: We are the poll; a poll under budget may complete.
            unsafe { bindings::napi_complete_done(napi.as_raw(), done as c_int) };
        }
        // CAST: `done <= budget`, which came from a `c_int`.
        done as c_int
    }
}

/// Whether `mac` may be a station's address: not multicast (nor
/// broadcast), not all zeroes (`is_valid_ether_addr`).
pub fn is_valid_ether_addr(mac: &[u8; ETH_ALEN]) -> bool {
    mac[0] & 1 == 0 && mac.iter().any(|&b| b != 0)
}

/// The interrupt handler of a device's vectors: schedules its NAPI
/// context.
///
/// # Invariants
///
/// `napi` is a NAPI context added to a net_device that is freed only after
/// every [`irq::Registration`] of this handler has been dropped.
struct NapiScheduler {
    napi: NonNull<bindings::napi_struct>,
}

// SAFETY: The handler only hands the context to `napi_schedule`, which any
// CPU may call.
unsafe impl Send for NapiScheduler {}

// SAFETY: As for `Send`: `handle` takes `&self` and only schedules.
unsafe impl Sync for NapiScheduler {}

impl irq::Handler for NapiScheduler {
    fn handle(&self) -> irq::IrqReturn {
        // SAFETY: The context is added and outlives the handler (type
        // invariant).
        let napi = unsafe { Napi::from_raw(self.napi.as_ptr()) };
        napi.schedule();
        irq::IrqReturn::Handled
    }
}

/// Interrupt vectors that schedule a device's NAPI context, for
/// [`Registration::new`].
pub struct NapiIrqs<'a> {
    /// The vectors; every one of them schedules the NAPI context.
    pub vectors: pci::IrqVectorRegistration<'a>,
    /// The name the interrupts show in `/proc/interrupts`.
    pub name: &'static CStr,
}

impl<'a, T: Operations + ethtool::Operations> Registration<'a, T> {
    /// Allocates an Ethernet device with `data` as driver data, sets it up
    /// from `config`, requests `irqs` and registers the device under
    /// `parent`, with the link reported down.
    ///
    /// The interface appears to user space (and may be opened) before this
    /// returns.
    pub fn new(
        parent: &'a device::Device<device::Bound>,
        config: &Config,
        data: impl PinInit<T, Error>,
        irqs: Option<NapiIrqs<'a>>,
    ) -> Result<Self> {
        let data = Arc::pin_init(data, GFP_KERNEL)?;
        let mut requests = KVec::new();
        if let Some(irqs) = &irqs {
            build_assert!(T::HAS_POLL, "NAPI interrupts need a poll");
            requests = KVec::with_capacity(irqs.vectors.len(), GFP_KERNEL)?;
            for i in 0..irqs.vectors.len() {
                let number = irq::IrqRequest::from(irqs.vectors.index(i)?).irq();
                // SAFETY: `number` is one of `parent`'s vectors, which
                // `Self::vectors` keeps allocated until every handler
                // registered for them has been freed (`Drop`, `abort`).
                // A request borrowed from `irqs.vectors` could not be kept
                // beside the vectors in `Self`.
                let request = unsafe { irq::IrqRequest::new(parent, number) };
                requests.push(request, GFP_KERNEL)?;
            }
        }
        // Every allocation that can fail before the handlers' comes before
        // the net_device's, so a failure leaks nothing.
        let handlers = KVec::with_capacity(requests.len(), GFP_KERNEL)?;
        let size = core::mem::size_of::<Private<T>>();
        // SAFETY: Plain allocation; one TX and one RX queue.
        let dev = unsafe { bindings::alloc_etherdev_mqs(size as c_int, 1, 1) };
        let Some(dev) = NonNull::new(dev) else {
            return Err(ENOMEM);
        };
        let raw = dev.as_ptr();
        // SAFETY: `raw` is a new, unregistered net_device that only we
        // reach; its zeroed private area is sized for `Private<T>`.
        let napi = unsafe {
            let private = bindings::netdev_priv(raw).cast::<Private<T>>();
            (&raw mut (*private).data).write(Arc::into_raw(data));
            (*raw).dev.parent = parent.as_raw();
            (*raw).netdev_ops = &Adapter::<T>::NETDEV_OPS;
            (*raw).ethtool_ops = ethtool::ops::<T>();
            (*raw).min_mtu = config.min_mtu;
            (*raw).max_mtu = config.max_mtu;
            (*raw).mtu = config.mtu.clamp(config.min_mtu, config.max_mtu);
            bindings::eth_hw_addr_set(raw, config.mac.as_ptr());
            if T::HAS_POLL {
                bindings::netif_napi_add(raw, (*private).napi.as_raw(), Some(Adapter::<T>::poll));
            }
            // The address of a field of the private area: not null.
            NonNull::new_unchecked((*private).napi.as_raw())
        };
        // INVARIANT: `irqs` only ever holds handlers of `vectors`; `dev` is
        // registered below before `Self` escapes.
        let mut this = Self {
            dev,
            irqs: handlers,
            vectors: None,
            _data: PhantomData,
        };
        if let Some(irqs) = irqs {
            // Kept until `Drop` has freed their handlers.
            this.vectors = Some(irqs.vectors);
            for request in requests {
                // INVARIANT: The context is added above and freed by
                // `free_netdev`, after `free_irqs`.
                let handler = NapiScheduler { napi };
                // SAFETY: The registration is kept in `this.irqs` and dropped
                // there, never forgotten.
                let init = unsafe {
                    irq::Registration::new(
                        request,
                        irq::Flags::TRIGGER_NONE,
                        irqs.name,
                        Ok::<_, Error>(handler),
                    )
                };
                let handler = match KBox::pin_init(init, GFP_KERNEL) {
                    Ok(handler) => handler,
                    Err(e) => {
                        // SAFETY: Not registered.
                        unsafe { this.abort() };
                        return Err(e);
                    }
                };
                // Room for every vector was reserved above; a failure
                // would drop (free) the handler it returns.
                if this.irqs.push_within_capacity(handler).is_err() {
                    // SAFETY: Not registered.
                    unsafe { this.abort() };
                    return Err(ENOMEM);
                }
            }
        }
        // SAFETY: `raw` is valid; nothing reads the carrier before this.
        unsafe { bindings::netif_carrier_off(raw) };
        // SAFETY: `raw` is fully set up.
        if let Err(e) = to_result(unsafe { bindings::register_netdev(raw) }) {
            // SAFETY: Registration failed, so the device is not registered.
            unsafe { this.abort() };
            return Err(e);
        }
        Ok(this)
    }

    /// Frees the interrupts and everything [`Self::new`] allocated, for a
    /// device that is not registered.
    ///
    /// # Safety
    ///
    /// The device is not registered; `self` is forgotten afterwards.
    unsafe fn abort(self) {
        let mut this = core::mem::ManuallyDrop::new(self);
        this.free_irqs();
        // SAFETY: Not registered, per the safety requirements, and not used
        // again.
        unsafe { Self::free(this.dev.as_ptr()) };
        // SAFETY: `this` is not used again; the vectors go after the
        // interrupts and the device.
        unsafe {
            core::ptr::drop_in_place(&mut this.irqs);
            core::ptr::drop_in_place(&mut this.vectors);
        }
    }

    fn free_irqs(&mut self) {
        // Each handler's drop frees its interrupt, waiting for a running
        // handler.
        self.irqs.clear();
    }

    /// # Safety
    ///
    /// `raw` is an unregistered net_device from [`Self::new`], not used
    /// afterwards.
    unsafe fn free(raw: *mut bindings::net_device) {
        // SAFETY: Per the safety requirements the private area holds our data
        // reference, read before the device memory goes.
        unsafe {
            let data = (*bindings::netdev_priv(raw).cast::<Private<T>>()).data;
            bindings::free_netdev(raw);
            drop(Arc::from_raw(data));
        }
    }

    /// Takes the interface out of service for a system sleep, from a
    /// suspend-type callback of the parent's driver ([`pci::Sleep`]).
    ///
    /// The interface is detached: the stack stops its queue and refuses to
    /// open it or run ethtool requests on it. If it is up, it is stopped as
    /// a close would, NAPI first, so the driver's [`Operations::stop`] quiesces
    /// the device; it stays up as user space sees it, with its address and
    /// settings. Idempotent until [`Self::resume`].
    pub fn suspend(&self) {
        let raw = self.dev.as_ptr();
        let dev = self.device();
        let _rtnl = Rtnl::lock();
        // SAFETY: `raw` is registered (type invariant); under RTNL.
        unsafe { bindings::netif_device_detach(raw) };
        // SAFETY: The private area is valid (type invariant); RTNL, held,
        // serialises every access to the flag.
        let stopped_for_sleep = unsafe { &mut (*dev.private()).stopped_for_sleep };
        if !dev.is_running() || *stopped_for_sleep {
            return;
        }
        if let Some(napi) = dev.napi() {
            // SAFETY: Under RTNL, on a running interface whose datapath is not
            // stopped for sleep: the last open enabled NAPI and nothing has
            // disabled it since.
            unsafe { napi.disable() };
        }
        if let Err(e) = T::stop(dev) {
            dev_warn!(dev.parent(), "stopping for sleep failed: {:?}\n", e);
        }
        *stopped_for_sleep = true;
    }

    /// Puts the interface back in service after a system sleep, from a
    /// resume-type callback of the parent's driver.
    ///
    /// If [`Self::suspend`] stopped it, the interface is opened again as an
    /// open would, NAPI first: the driver's [`Operations::open`] must program
    /// the device from scratch, as after a restore it may have lost every
    /// setting or be another device. If that fails the interface is closed,
    /// as `ip link set down` would, rather than left up without a datapath,
    /// and the error returned. The interface is attached in either case.
    pub fn resume(&self) -> Result {
        let raw = self.dev.as_ptr();
        let dev = self.device();
        let _rtnl = Rtnl::lock();
        // SAFETY: Under RTNL.
        let reopen = unsafe { dev.take_stopped_for_sleep() };
        let mut result = Ok(());
        if reopen {
            if let Some(napi) = dev.napi() {
                // SAFETY: Under RTNL; `suspend` disabled NAPI and, the flag
                // being set until now, nothing has enabled it since.
                unsafe { napi.enable() };
            }
            result = T::open(dev);
            if result.is_err() {
                // SAFETY: `raw` is registered and running; under RTNL. The
                // close disables NAPI, enabled above, and calls the driver's
                // stop on what the failed open left.
                unsafe { bindings::dev_close(raw) };
            }
        }
        // SAFETY: `raw` is registered (type invariant); under RTNL.
        unsafe { bindings::netif_device_attach(raw) };
        result
    }

    /// The registered device.
    pub fn device(&self) -> &Device<T> {
        // SAFETY: Registered and allocated for `T` while `self` lives.
        unsafe { Device::from_raw(self.dev.as_ptr()) }
    }
}

/// The RTNL mutex, held while this lives.
struct Rtnl;

impl Rtnl {
    fn lock() -> Self {
        // SAFETY: Taken in process context, from callbacks that do not hold it.
        unsafe { bindings::rtnl_lock() };
        Self
    }
}

impl Drop for Rtnl {
    fn drop(&mut self) {
        // SAFETY: Taken by `Rtnl::lock`.
        unsafe { bindings::rtnl_unlock() };
    }
}

impl<T: Operations + ethtool::Operations> Drop for Registration<'_, T> {
    fn drop(&mut self) {
        self.free_irqs();
        let raw = self.dev.as_ptr();
        // SAFETY: Registered (type invariant); waits for every callback and
        // brings the interface down first.
        unsafe { bindings::unregister_netdev(raw) };
        // SAFETY: Unregistered just above and not used again.
        unsafe { Self::free(raw) };
        // `vectors` drops after this, once nothing can use them.
    }
}

// SAFETY: The registration only holds pointers to objects the core lets any
// thread unregister and free.
unsafe impl<T: Operations + ethtool::Operations> Send for Registration<'_, T> {}

// SAFETY: `&Registration` only gives `&Device<T>`, which is `Sync`.
unsafe impl<T: Operations + ethtool::Operations> Sync for Registration<'_, T> {}
