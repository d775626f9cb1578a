// SPDX-License-Identifier: GPL-2.0

//! Ethtool operations of network devices.
//!
//! The core answers `ethtool -i` (driver and bus from the parent device)
//! and the link state (`ethtool_op_get_link`) by itself; drivers add ring
//! sizes, interrupt coalescing and device statistics.
//!
//! C header: [`include/linux/ethtool.h`](srctree/include/linux/ethtool.h)

use crate::{
    bindings,
    error::from_result,
    net::netdev::{self, Device},
    prelude::*,
};
use core::marker::PhantomData;

// `ETHTOOL_COALESCE_*` are `BIT()` macros, which bindgen does not see.
/// `ethtool -C` parameter: `rx-usecs` (`ETHTOOL_COALESCE_RX_USECS`).
pub const COALESCE_RX_USECS: u32 = 1 << 0;
/// `ethtool -C` parameter: `tx-usecs` (`ETHTOOL_COALESCE_TX_USECS`).
pub const COALESCE_TX_USECS: u32 = 1 << 4;

/// Ring sizes (`ethtool -g` / `-G`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingParam {
    /// Largest receive ring.
    pub rx_max: u32,
    /// Largest transmit ring.
    pub tx_max: u32,
    /// Current (or requested) receive ring.
    pub rx: u32,
    /// Current (or requested) transmit ring.
    pub tx: u32,
}

/// Interrupt coalescing (`ethtool -c` / `-C`), the parameters a driver
/// declares in [`Operations::SUPPORTED_COALESCE_PARAMS`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Coalesce {
    /// Microseconds to hold back a receive interrupt.
    pub rx_usecs: u32,
    /// Microseconds to hold back a transmit interrupt.
    pub tx_usecs: u32,
}

/// Where a request's error message goes (`struct netlink_ext_ack`).
///
/// # Invariants
///
/// `ptr` is null or points to an extack valid for `'a`.
pub struct ExtAck<'a> {
    ptr: *mut bindings::netlink_ext_ack,
    _p: PhantomData<&'a mut bindings::netlink_ext_ack>,
}

impl ExtAck<'_> {
    /// Sets the message user space prints with the error (`NL_SET_ERR_MSG`).
    pub fn set_message(&mut self, msg: &'static CStr) {
        if !self.ptr.is_null() {
            // SAFETY: Non-null, so valid (type invariant); `msg` is static.
            unsafe { (*self.ptr)._msg = msg.as_char_ptr() };
        }
    }
}

/// A network device's ethtool operations. Implement it with no methods for
/// a device that adds nothing to what the core reports.
#[vtable]
pub trait Operations: netdev::Operations {
    /// The `ethtool -C` parameters [`Self::set_coalesce`] accepts; the core
    /// refuses the others.
    const SUPPORTED_COALESCE_PARAMS: u32 = 0;

    /// Reports ring sizes.
    fn get_ringparam(_dev: &Device<Self>, _ring: &mut RingParam) {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Applies ring sizes (at most the maxima [`Self::get_ringparam`]
    /// reports; the core checks that).
    fn set_ringparam(_dev: &Device<Self>, _ring: &RingParam, _extack: &mut ExtAck<'_>) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Reports interrupt coalescing.
    fn get_coalesce(_dev: &Device<Self>, _coalesce: &mut Coalesce) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Applies interrupt coalescing.
    fn set_coalesce(_dev: &Device<Self>, _coalesce: &Coalesce, _extack: &mut ExtAck<'_>) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Names of the device statistics (`ethtool -S`), each under 32 bytes.
    ///
    /// A constant: the core asks for the count, the names and the values
    /// in separate calls and sizes its buffers by the first answer, so the
    /// answers must never differ.
    const STAT_NAMES: &'static [&'static str] = &[];

    /// Fills `values`, one per name of [`Self::STAT_NAMES`].
    fn get_stats(_dev: &Device<Self>, _values: &mut [u64]) {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }
}

/// The `ethtool_ops` of `T`, for [`netdev::Registration`].
pub(crate) fn ops<T: Operations>() -> &'static bindings::ethtool_ops {
    &Adapter::<T>::OPS
}

struct Adapter<T>(PhantomData<T>);

impl<T: Operations> Adapter<T> {
    const OPS: bindings::ethtool_ops = bindings::ethtool_ops {
        supported_coalesce_params: T::SUPPORTED_COALESCE_PARAMS,
        get_link: Some(bindings::ethtool_op_get_link),
        get_ringparam: if T::HAS_GET_RINGPARAM {
            Some(Self::get_ringparam)
        } else {
            None
        },
        set_ringparam: if T::HAS_SET_RINGPARAM {
            Some(Self::set_ringparam)
        } else {
            None
        },
        get_coalesce: if T::HAS_GET_COALESCE {
            Some(Self::get_coalesce)
        } else {
            None
        },
        set_coalesce: if T::HAS_SET_COALESCE {
            Some(Self::set_coalesce)
        } else {
            None
        },
        get_sset_count: if !T::STAT_NAMES.is_empty() {
            Some(Self::get_sset_count)
        } else {
            None
        },
        get_strings: if !T::STAT_NAMES.is_empty() {
            Some(Self::get_strings)
        } else {
            None
        },
        get_ethtool_stats: if T::HAS_GET_STATS {
            Some(Self::get_ethtool_stats)
        } else {
            None
        },
        // SAFETY: All-zero is a valid `ethtool_ops` (no operations).
        ..unsafe { core::mem::zeroed() }
    };

    /// # Safety
    ///
    /// Called by the core on a device registered for `T`.
    unsafe fn device<'a>(dev: *mut bindings::net_device) -> &'a Device<T> {
        // SAFETY: `Device<T>` is transparent over the net_device, registered
        // for `T` per the safety requirements.
        unsafe { &*dev.cast() }
    }

    /// # Safety
    ///
    /// Called by the core with valid arguments.
    unsafe extern "C" fn get_ringparam(
        dev: *mut bindings::net_device,
        ring: *mut bindings::ethtool_ringparam,
        _kernel: *mut bindings::kernel_ethtool_ringparam,
        _extack: *mut bindings::netlink_ext_ack,
    ) {
        let mut r = RingParam::default();
        // SAFETY: Per the function's safety requirements.
        T::get_ringparam(unsafe { Self::device(dev) }, &mut r);
        // SAFETY: `ring` is valid and exclusively ours for the call.
        let ring = unsafe { &mut *ring };
        ring.rx_max_pending = r.rx_max;
        ring.tx_max_pending = r.tx_max;
        ring.rx_pending = r.rx;
        ring.tx_pending = r.tx;
    }

    /// # Safety
    ///
    /// Called by the core with valid arguments.
    unsafe extern "C" fn set_ringparam(
        dev: *mut bindings::net_device,
        ring: *mut bindings::ethtool_ringparam,
        _kernel: *mut bindings::kernel_ethtool_ringparam,
        extack: *mut bindings::netlink_ext_ack,
    ) -> c_int {
        // SAFETY: `ring` is valid for the call.
        let ring = unsafe { &*ring };
        let r = RingParam {
            rx_max: ring.rx_max_pending,
            tx_max: ring.tx_max_pending,
            rx: ring.rx_pending,
            tx: ring.tx_pending,
        };
        // INVARIANT: The core passes a null or valid extack.
        let mut extack = ExtAck {
            ptr: extack,
            _p: PhantomData,
        };
        // SAFETY: Per the function's safety requirements.
        let dev = unsafe { Self::device(dev) };
        from_result(|| T::set_ringparam(dev, &r, &mut extack).map(|()| 0))
    }

    /// # Safety
    ///
    /// Called by the core with valid arguments.
    unsafe extern "C" fn get_coalesce(
        dev: *mut bindings::net_device,
        coalesce: *mut bindings::ethtool_coalesce,
        _kernel: *mut bindings::kernel_ethtool_coalesce,
        _extack: *mut bindings::netlink_ext_ack,
    ) -> c_int {
        // SAFETY: Per the function's safety requirements.
        let dev = unsafe { Self::device(dev) };
        from_result(|| {
            let mut c = Coalesce::default();
            T::get_coalesce(dev, &mut c)?;
            // SAFETY: `coalesce` is valid and exclusively ours for the call.
            let out = unsafe { &mut *coalesce };
            out.rx_coalesce_usecs = c.rx_usecs;
            out.tx_coalesce_usecs = c.tx_usecs;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the core with valid arguments.
    unsafe extern "C" fn set_coalesce(
        dev: *mut bindings::net_device,
        coalesce: *mut bindings::ethtool_coalesce,
        _kernel: *mut bindings::kernel_ethtool_coalesce,
        extack: *mut bindings::netlink_ext_ack,
    ) -> c_int {
        // SAFETY: `coalesce` is valid for the call.
        let c = unsafe { &*coalesce };
        let c = Coalesce {
            rx_usecs: c.rx_coalesce_usecs,
            tx_usecs: c.tx_coalesce_usecs,
        };
        // INVARIANT: The core passes a null or valid extack.
        let mut extack = ExtAck {
            ptr: extack,
            _p: PhantomData,
        };
        // SAFETY: Per the function's safety requirements.
        let dev = unsafe { Self::device(dev) };
        from_result(|| T::set_coalesce(dev, &c, &mut extack).map(|()| 0))
    }

    extern "C" fn get_sset_count(_dev: *mut bindings::net_device, sset: c_int) -> c_int {
        if sset == bindings::ethtool_stringset_ETH_SS_STATS as c_int {
            c_int::try_from(T::STAT_NAMES.len()).unwrap_or(0)
        } else {
            EOPNOTSUPP.to_errno()
        }
    }

    /// # Safety
    ///
    /// Called by the core with `data` holding `ETH_GSTRING_LEN` bytes per
    /// string that [`Self::get_sset_count`] announced (the length of the
    /// constant [`Operations::STAT_NAMES`]).
    unsafe extern "C" fn get_strings(_dev: *mut bindings::net_device, sset: u32, data: *mut u8) {
        if sset != bindings::ethtool_stringset_ETH_SS_STATS {
            return;
        }
        const SLOT: usize = bindings::ETH_GSTRING_LEN as usize;
        let names = T::STAT_NAMES;
        // SAFETY: Per the function's safety requirements.
        let out = unsafe { core::slice::from_raw_parts_mut(data, names.len() * SLOT) };
        // Indexing rather than `chunks_exact_mut`, whose division objtool
        // flags in modules.
        for (i, name) in names.iter().enumerate() {
            let dst = &mut out[i * SLOT..(i + 1) * SLOT];
            // Keep a NUL at the end of each slot.
            let n = name.len().min(SLOT - 1);
            dst[..n].copy_from_slice(&name.as_bytes()[..n]);
            dst[n..].fill(0);
        }
    }

    /// # Safety
    ///
    /// Called by the core on a device registered for `T`, with `data`
    /// holding one `u64` per announced statistic.
    unsafe extern "C" fn get_ethtool_stats(
        dev: *mut bindings::net_device,
        _stats: *mut bindings::ethtool_stats,
        data: *mut u64,
    ) {
        let n = T::STAT_NAMES.len();
        // SAFETY: Per the function's safety requirements.
        let values = unsafe { core::slice::from_raw_parts_mut(data, n) };
        values.fill(0);
        // SAFETY: Per the function's safety requirements.
        T::get_stats(unsafe { Self::device(dev) }, values);
    }
}
