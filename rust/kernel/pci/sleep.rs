// SPDX-License-Identifier: GPL-2.0

//! System sleep callbacks of PCI drivers.
//!
//! C header: [`include/linux/pm.h`](srctree/include/linux/pm.h)

use super::{Device, Driver};
use crate::{bindings, container_of, device, error::from_result, prelude::*};
use core::marker::PhantomData;

/// The system sleep callbacks of a PCI [`Driver`] (`struct dev_pm_ops`).
///
/// A driver implements this trait and sets [`Driver::SLEEP_OPS`] to
/// `Some(SleepOps::new())` to have them called. The PCI core saves and
/// restores the config space and picks the low-power state itself, as it
/// does for C drivers.
///
/// The PM core calls them with the device lock held and only while the
/// driver is bound, so none of them runs concurrently with, or after,
/// [`Driver::probe`] and [`Driver::unbind`].
///
/// Once a suspend-type callback ([`Self::suspend`], [`Self::freeze`],
/// [`Self::poweroff`]) returns `Ok`, the device must do no DMA and raise no
/// interrupt until the matching resume-type callback. A resume-type callback
/// must not assume the device kept any state: after [`Self::restore`] it may
/// be powered on from scratch, or be another device of the same kind if the
/// hibernated system was restored on another machine.
pub trait Sleep: Driver {
    /// Before a suspend to RAM or to idle (`suspend`).
    fn suspend<'bound>(
        dev: &'bound Device<device::Core<'_>>,
        this: Pin<&Self::Data<'bound>>,
    ) -> Result;

    /// After a suspend to RAM or to idle (`resume`), or after a suspend
    /// that failed later in the sequence.
    fn resume<'bound>(
        dev: &'bound Device<device::Core<'_>>,
        this: Pin<&Self::Data<'bound>>,
    ) -> Result;

    /// Before the hibernation image is created (`freeze`). Defaults to
    /// [`Self::suspend`].
    fn freeze<'bound>(
        dev: &'bound Device<device::Core<'_>>,
        this: Pin<&Self::Data<'bound>>,
    ) -> Result {
        Self::suspend(dev, this)
    }

    /// After the hibernation image is created, or when creating or saving it
    /// failed (`thaw`). Defaults to [`Self::resume`].
    fn thaw<'bound>(
        dev: &'bound Device<device::Core<'_>>,
        this: Pin<&Self::Data<'bound>>,
    ) -> Result {
        Self::resume(dev, this)
    }

    /// After the hibernation image is saved, before the system powers off
    /// (`poweroff`). Defaults to [`Self::suspend`].
    fn poweroff<'bound>(
        dev: &'bound Device<device::Core<'_>>,
        this: Pin<&Self::Data<'bound>>,
    ) -> Result {
        Self::suspend(dev, this)
    }

    /// In the kernel restored from a hibernation image (`restore`), on a
    /// device in whatever state the firmware and the boot kernel left it.
    /// Defaults to [`Self::resume`].
    fn restore<'bound>(
        dev: &'bound Device<device::Core<'_>>,
        this: Pin<&Self::Data<'bound>>,
    ) -> Result {
        Self::resume(dev, this)
    }
}

/// The `struct dev_pm_ops` of a PCI driver `T`, for [`Driver::SLEEP_OPS`].
///
/// # Invariants
///
/// `ops` holds the callbacks [`SleepOps::new`] set for `T` and no others.
pub struct SleepOps<T: ?Sized> {
    ops: bindings::dev_pm_ops,
    _driver: PhantomData<fn(&T)>,
}

macro_rules! sleep_callback {
    ($callback:ident => $method:ident) => {
        extern "C" fn $callback(dev: *mut bindings::device) -> c_int {
            // SAFETY: The PCI core calls the callbacks of `driver.pm` with the
            // `struct device` of a PCI device bound to `T`, under its device
            // lock (see `SleepOps::new`).
            let pdev = unsafe { Self::bound_device(dev) };
            // SAFETY: The PM core calls a driver's callbacks only while
            // `dev->driver` is set, and holds the device lock that probe and
            // remove also take: probe has stored `T::Data` with
            // `set_drvdata` and remove has not run.
            let data = unsafe { pdev.as_ref().drvdata_borrow::<T::Data<'_>>() };
            from_result(|| T::$method(pdev, data).map(|()| 0))
        }
    };
}

impl<T: Sleep> SleepOps<T> {
    /// The callbacks of `T`.
    pub const fn new() -> Self {
        // SAFETY: All-zero is a valid `dev_pm_ops` (no callbacks).
        let mut ops: bindings::dev_pm_ops = unsafe { core::mem::zeroed() };
        ops.suspend = Some(Self::suspend_callback);
        ops.resume = Some(Self::resume_callback);
        ops.freeze = Some(Self::freeze_callback);
        ops.thaw = Some(Self::thaw_callback);
        ops.poweroff = Some(Self::poweroff_callback);
        ops.restore = Some(Self::restore_callback);
        // INVARIANT: Only `T`'s callbacks are set.
        Self {
            ops,
            _driver: PhantomData,
        }
    }

    /// # Safety
    ///
    /// `dev` is the `struct device` of a PCI device bound to `T`, whose
    /// device lock is held for `'a`.
    unsafe fn bound_device<'a>(dev: *mut bindings::device) -> &'a Device<device::CoreInternal<'a>> {
        // SAFETY: Per the safety requirements `dev` is embedded in a
        // `struct pci_dev`.
        let pdev = unsafe { container_of!(dev, bindings::pci_dev, dev) };
        // SAFETY: `pdev` is valid for `'a`; `Device` is a transparent wrapper
        // of `struct pci_dev`, and the device lock held for `'a` is what the
        // `CoreInternal` context stands for.
        unsafe { &*pdev.cast() }
    }

    sleep_callback!(suspend_callback => suspend);
    sleep_callback!(resume_callback => resume);
    sleep_callback!(freeze_callback => freeze);
    sleep_callback!(thaw_callback => thaw);
    sleep_callback!(poweroff_callback => poweroff);
    sleep_callback!(restore_callback => restore);
}

impl<T: ?Sized> SleepOps<T> {
    /// The `struct dev_pm_ops`.
    pub(super) const fn as_raw(&self) -> *const bindings::dev_pm_ops {
        &self.ops
    }
}
