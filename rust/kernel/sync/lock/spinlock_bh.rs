// SPDX-License-Identifier: GPL-2.0

//! A kernel spinlock that keeps bottom halves off while held.
//!
//! Network drivers share state between process context (`ndo_open`,
//! ethtool) and softirq context (the NAPI poll, `ndo_start_xmit`). A plain
//! [`super::spinlock::SpinLock`] taken in process context with bottom
//! halves enabled can be interrupted by a softirq on the same CPU that
//! spins on it forever; lockdep reports it as an inconsistent lock state.
//! [`SpinLockBh`] takes the lock with `spin_lock_bh`, which is cheap when
//! bottom halves are already off (in softirq context it only raises the
//! count).
//!
//! C header: [`include/linux/spinlock.h`](srctree/include/linux/spinlock.h)

use super::{Backend, Guard, Lock};
use crate::bindings;

/// Creates a [`SpinLockBh`] initialiser with the given name and a
/// newly-created lock class.
///
/// It uses the name if one is given, otherwise it generates one based on
/// the file name and line number.
#[macro_export]
macro_rules! new_spinlock_bh {
    ($inner:expr $(, $name:literal)? $(,)?) => {
        $crate::sync::SpinLockBh::new(
            $inner, $crate::optional_name!($($name)?), $crate::static_lock_class!())
    };
}
pub use new_spinlock_bh;

/// A spinlock taken with bottom halves disabled (`spin_lock_bh`).
///
/// Use it for data that process context and softirq context (NAPI, timers,
/// tasklets, the transmit path) both reach. It may be taken in either; not
/// in hard interrupt context.
///
/// # Examples
///
/// ```
/// use kernel::sync::{new_spinlock_bh, SpinLockBh};
///
/// let counter = KBox::pin_init(new_spinlock_bh!(0u32, "counter"), GFP_KERNEL)?;
/// *counter.lock() += 1;
/// assert_eq!(*counter.lock(), 1);
/// # Ok::<(), Error>(())
/// ```
pub type SpinLockBh<T> = Lock<T, SpinLockBhBackend>;

/// A kernel `spinlock_t` lock backend that disables bottom halves while
/// held.
pub struct SpinLockBhBackend;

/// A [`Guard`] of a [`SpinLockBh`]: dropping it unlocks and re-enables
/// bottom halves.
pub type SpinLockBhGuard<'a, T> = Guard<'a, T, SpinLockBhBackend>;

// SAFETY: The underlying kernel `spinlock_t` ensures mutual exclusion;
// `relock` uses the default implementation, which calls the same locking
// method.
unsafe impl Backend for SpinLockBhBackend {
    type State = bindings::spinlock_t;
    type GuardState = ();

    #[inline]
    unsafe fn init(
        ptr: *mut Self::State,
        name: *const crate::ffi::c_char,
        key: *mut bindings::lock_class_key,
    ) {
        // SAFETY: The safety requirements ensure that `ptr` is valid for
        // writes, and `name` and `key` are valid for read indefinitely.
        unsafe { bindings::__spin_lock_init(ptr, name, key) }
    }

    #[inline]
    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: The safety requirements ensure that `ptr` points to an
        // initialised lock.
        unsafe { bindings::spin_lock_bh(ptr) }
    }

    #[inline]
    unsafe fn unlock(ptr: *mut Self::State, _guard_state: &Self::GuardState) {
        // SAFETY: The safety requirements ensure that `ptr` is valid and
        // that the caller holds the lock.
        unsafe { bindings::spin_unlock_bh(ptr) }
    }

    #[inline]
    unsafe fn try_lock(ptr: *mut Self::State) -> Option<Self::GuardState> {
        // SAFETY: The safety requirements ensure that `ptr` points to an
        // initialised lock.
        (unsafe { bindings::spin_trylock_bh(ptr) } != 0).then_some(())
    }

    #[inline]
    unsafe fn assert_is_held(ptr: *mut Self::State) {
        // SAFETY: The safety requirements ensure that `ptr` points to an
        // initialised lock.
        unsafe { bindings::spin_assert_is_held(ptr) }
    }
}
