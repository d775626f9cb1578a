// SPDX-License-Identifier: GPL-2.0

//! Generic netlink operations: attribute policies, requests, replies,
//! dumps and notifications of a family that serves commands.
//!
//! A family is a `static` [`OpsFamily<T>`] listing its [`Operation<T>`]s, each
//! with the [`AttrPolicy`] array the core validates requests against
//! (strictly: unknown attributes, bad lengths and ranges are refused with an
//! extack message before the handler runs). [`OpsFamily::register`] gives
//! it the handler `T`, which then serves every `do` and `dump`.
//!
//! C header: [`include/net/genetlink.h`](srctree/include/net/genetlink.h)

use super::{Family, MulticastGroup, GENLMSG_DEFAULT_SIZE};
use crate::{bindings, error::to_result, prelude::*, sync::Arc, ThisModule};
use core::{
    marker::PhantomData,
    ptr::{null_mut, NonNull},
    sync::atomic::{AtomicPtr, Ordering},
};

/// Validation of one attribute (`struct nla_policy`), built in const
/// context like the C `NLA_POLICY_*()` macros.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct AttrPolicy(bindings::nla_policy);

// SAFETY: Immutable data; its pointers lead to other `'static` policies.
unsafe impl Sync for AttrPolicy {}

/// A range of values for [`AttrPolicy::u32_range`] and
/// [`AttrPolicy::u64_range`] (`struct netlink_range_validation`).
#[repr(transparent)]
pub struct AttrRange(bindings::netlink_range_validation);

// SAFETY: Immutable data.
unsafe impl Sync for AttrRange {}

impl AttrRange {
    /// Values from `min` to `max`, inclusive.
    pub const fn new(min: u64, max: u64) -> Self {
        Self(bindings::netlink_range_validation { min, max })
    }
}

const fn policy(
    type_: u32,
    validation: u32,
    len: u16,
    extra: bindings::nla_policy__bindgen_ty_1,
) -> AttrPolicy {
    AttrPolicy(bindings::nla_policy {
        type_: type_ as u8,
        validation_type: validation as u8,
        len,
        __bindgen_anon_1: extra,
    })
}

const NO_EXTRA: bindings::nla_policy__bindgen_ty_1 = bindings::nla_policy__bindgen_ty_1 { mask: 0 };

const fn min_max(min: i16, max: i16) -> bindings::nla_policy__bindgen_ty_1 {
    bindings::nla_policy__bindgen_ty_1 {
        __bindgen_anon_1: bindings::nla_policy__bindgen_ty_1__bindgen_ty_1 { min, max },
    }
}

impl AttrPolicy {
    /// No attribute of this type (index 0 and unused types).
    pub const NONE: Self = policy(bindings::NLA_UNSPEC, 0, 0, NO_EXTRA);

    /// A `u8`.
    pub const fn u8() -> Self {
        policy(bindings::NLA_U8, 0, 0, NO_EXTRA)
    }

    /// A `u8` of at most `max`.
    pub const fn u8_max(max: u8) -> Self {
        policy(
            bindings::NLA_U8,
            bindings::nla_policy_validation_NLA_VALIDATE_MAX,
            0,
            min_max(0, max as i16),
        )
    }

    /// A `u16`.
    pub const fn u16() -> Self {
        policy(bindings::NLA_U16, 0, 0, NO_EXTRA)
    }

    /// A `u16` of at most `max` (at most `i16::MAX`).
    pub const fn u16_max(max: i16) -> Self {
        policy(
            bindings::NLA_U16,
            bindings::nla_policy_validation_NLA_VALIDATE_MAX,
            0,
            min_max(0, max),
        )
    }

    /// A `u32`.
    pub const fn u32() -> Self {
        policy(bindings::NLA_U32, 0, 0, NO_EXTRA)
    }

    /// A `u32` in `range`.
    pub const fn u32_range(range: &'static AttrRange) -> Self {
        policy(
            bindings::NLA_U32,
            bindings::nla_policy_validation_NLA_VALIDATE_RANGE_PTR,
            0,
            bindings::nla_policy__bindgen_ty_1 { range: &range.0 },
        )
    }

    /// A `u64`.
    pub const fn u64() -> Self {
        policy(bindings::NLA_U64, 0, 0, NO_EXTRA)
    }

    /// A NUL-terminated string of at most `max_len` bytes.
    pub const fn string(max_len: u16) -> Self {
        policy(bindings::NLA_NUL_STRING, 0, max_len, NO_EXTRA)
    }

    /// Bytes, exactly `len` of them.
    pub const fn binary_exact(len: i16) -> Self {
        policy(
            bindings::NLA_BINARY,
            bindings::nla_policy_validation_NLA_VALIDATE_RANGE_WARN_TOO_LONG,
            0,
            min_max(len, len),
        )
    }

    /// Bytes, at most `max_len` of them.
    pub const fn binary_max(max_len: u16) -> Self {
        policy(bindings::NLA_BINARY, 0, max_len, NO_EXTRA)
    }

    /// Attributes nested under `nested`.
    pub const fn nested<const N: usize>(nested: &'static [AttrPolicy; N]) -> Self {
        assert!(N > 0 && N - 1 <= u16::MAX as usize);
        policy(
            bindings::NLA_NESTED,
            0,
            (N - 1) as u16,
            bindings::nla_policy__bindgen_ty_1 {
                nested_policy: nested.as_ptr().cast(),
            },
        )
    }
}

/// What serves a family's operations.
pub trait Handler: Send + Sync + 'static {
    /// Serves a `do` request of command `cmd`; replies with
    /// [`Request::reply`].
    fn doit(&self, cmd: u8, request: &mut Request<'_>) -> Result;

    /// Serves one part of a `dump` of command `cmd`: adds entries from
    /// [`Dump::position`] on until the message is full.
    fn dumpit(&self, cmd: u8, dump: &mut Dump<'_>) -> Result;
}

/// One operation of a family served by `T` (`struct genl_split_ops`).
///
/// Its callbacks find the family's data as a `T`: the type parameter keeps
/// an operation of one family out of another's [`OpsFamily`], whose data
/// it would misread.
#[repr(transparent)]
pub struct Operation<T>(bindings::genl_split_ops, PhantomData<fn(&T)>);

// SAFETY: Immutable data with pointers to `'static` policies and functions.
unsafe impl<T> Sync for Operation<T> {}

impl<T: Handler> Operation<T> {
    const fn new<const N: usize>(
        cmd: u8,
        policy: &'static [AttrPolicy; N],
        admin: bool,
        cap: u32,
        callbacks: bindings::genl_split_ops__bindgen_ty_1,
    ) -> Self {
        assert!(N > 0);
        let mut flags = cap;
        if admin {
            flags |= bindings::GENL_ADMIN_PERM;
        }
        Self(
            bindings::genl_split_ops {
                __bindgen_anon_1: callbacks,
                policy: policy.as_ptr().cast(),
                maxattr: (N - 1) as u32,
                cmd,
                internal_flags: 0,
                flags: flags as u8,
                // Strict validation.
                validate: 0,
            },
            PhantomData,
        )
    }

    /// The `do` of command `cmd`; `admin` requires `CAP_NET_ADMIN`.
    pub const fn doit<const N: usize>(
        cmd: u8,
        policy: &'static [AttrPolicy; N],
        admin: bool,
    ) -> Self {
        Self::new(
            cmd,
            policy,
            admin,
            bindings::GENL_CMD_CAP_DO,
            bindings::genl_split_ops__bindgen_ty_1 {
                __bindgen_anon_1: bindings::genl_split_ops__bindgen_ty_1__bindgen_ty_1 {
                    pre_doit: None,
                    doit: Some(doit_callback::<T, N>),
                    post_doit: None,
                },
            },
        )
    }

    /// The `dump` of command `cmd`.
    pub const fn dumpit<const N: usize>(
        cmd: u8,
        policy: &'static [AttrPolicy; N],
        admin: bool,
    ) -> Self {
        Self::new(
            cmd,
            policy,
            admin,
            bindings::GENL_CMD_CAP_DUMP,
            bindings::genl_split_ops__bindgen_ty_1 {
                __bindgen_anon_2: bindings::genl_split_ops__bindgen_ty_1__bindgen_ty_2 {
                    start: None,
                    dumpit: Some(dumpit_callback::<T, N>),
                    done: None,
                },
            },
        )
    }
}

/// A generic netlink family that serves operations with a `T`.
///
/// # Invariants
///
/// `data` is null or comes from [`Arc::into_raw`], and is not null while
/// the family is registered.
#[repr(C)]
pub struct OpsFamily<T: Handler> {
    family: Family,
    data: AtomicPtr<T>,
}

impl<T: Handler> OpsFamily<T> {
    /// Creates the family; for `static` items. Panics (at build time) on
    /// invalid arguments.
    pub const fn const_new(
        module: &ThisModule,
        name: &[u8],
        version: u32,
        mcgrps: &'static [MulticastGroup],
        ops: &'static [Operation<T>],
    ) -> Self {
        // INVARIANT: Not registered, `data` null.
        Self {
            family: Family::const_new_with_ops(module, name, version, mcgrps, ops),
            data: AtomicPtr::new(null_mut()),
        }
    }

    /// The family, for multicast messages and listener checks.
    pub fn family(&'static self) -> &'static Family {
        &self.family
    }

    /// Registers the family, served by `handler` until the registration
    /// drops. Fails with [`EBUSY`] if it is registered already.
    pub fn register(&'static self, handler: Arc<T>) -> Result<OpsRegistration<T>> {
        let raw = Arc::into_raw(handler).cast_mut();
        if self
            .data
            .compare_exchange(null_mut(), raw, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // SAFETY: `raw` came from `Arc::into_raw` just above.
            drop(unsafe { Arc::from_raw(raw) });
            return Err(EBUSY);
        }
        // SAFETY: The family is `'static` and its operations too.
        if let Err(e) = to_result(unsafe { bindings::genl_register_family(self.family.as_raw()) }) {
            self.release();
            return Err(e);
        }
        Ok(OpsRegistration { family: self })
    }

    fn release(&self) {
        let raw = self.data.swap(null_mut(), Ordering::AcqRel);
        if !raw.is_null() {
            // SAFETY: `raw` came from `Arc::into_raw` (type invariant) and is
            // no longer reachable from the family.
            drop(unsafe { Arc::from_raw(raw) });
        }
    }

    /// Multicasts a notification of command `cmd` to `group` (an index in
    /// the family's groups) if anyone listens. Any context.
    pub fn notify(
        &'static self,
        group: u32,
        cmd: u8,
        fill: impl FnOnce(&mut Msg<'_>) -> Result,
    ) -> Result {
        if !self.family.has_listeners(group) {
            return Ok(());
        }
        let flags = GFP_ATOMIC;
        // SAFETY: Plain allocation.
        let skb = unsafe { bindings::genlmsg_new(GENLMSG_DEFAULT_SIZE, flags.as_raw()) };
        let skb = NonNull::new(skb).ok_or(ENOMEM)?.as_ptr();
        // SAFETY: `skb` is new and ours.
        let hdr = unsafe { bindings::genlmsg_put(skb, 0, 0, self.family.as_raw(), 0, cmd) };
        let mut msg = Msg {
            skb,
            _p: PhantomData,
        };
        if hdr.is_null() {
            // SAFETY: Ours, not sent.
            unsafe { bindings::nlmsg_free(skb) };
            return Err(EMSGSIZE);
        }
        if let Err(e) = fill(&mut msg) {
            // SAFETY: Ours, not sent.
            unsafe { bindings::nlmsg_free(skb) };
            return Err(e);
        }
        // SAFETY: `hdr` heads the message in `skb`, which the multicast
        // consumes.
        unsafe {
            bindings::genlmsg_end(skb, hdr);
            to_result(bindings::genlmsg_multicast(
                self.family.as_raw(),
                skb,
                0,
                group,
                flags.as_raw(),
            ))
        }
    }

    /// # Safety
    ///
    /// `family` is the `family` of an `OpsFamily<T>` (ops callbacks of this
    /// family only).
    unsafe fn handler<'a>(family: *const bindings::genl_family) -> Option<&'a T> {
        // SAFETY: `OpsFamily` is `repr(C)` with the family, itself
        // transparent over `genl_family`, first.
        let this = unsafe { &*family.cast::<Self>() };
        let raw = this.data.load(Ordering::Acquire);
        // SAFETY: Non-null while registered (type invariant), which it is
        // while an operation runs: unregistering waits for them.
        (!raw.is_null()).then(|| unsafe { &*raw })
    }
}

/// A registered [`OpsFamily`]; dropping it unregisters the family (waiting
/// for running operations), then drops the handler.
pub struct OpsRegistration<T: Handler> {
    family: &'static OpsFamily<T>,
}

impl<T: Handler> Drop for OpsRegistration<T> {
    fn drop(&mut self) {
        // SAFETY: Registered by `OpsFamily::register`.
        unsafe { bindings::genl_unregister_family(self.family.family.as_raw()) };
        self.family.release();
    }
}

/// An attribute of a request (`struct nlattr` and its payload).
///
/// # Invariants
///
/// `hdr` points to a well-formed attribute of a message that lives for
/// `'a`; `ty` is its type without flags and `data` its payload.
#[derive(Clone, Copy)]
pub struct Attr<'a> {
    hdr: *const bindings::nlattr,
    ty: u16,
    data: &'a [u8],
}

/// Size of an attribute header (`NLA_HDRLEN`).
const NLA_HDRLEN: usize = 4;
/// The type bits of `nla_type` (`NLA_TYPE_MASK`).
const NLA_TYPE_MASK: u16 = !((1 << 15) | (1 << 14));

impl<'a> Attr<'a> {
    /// # Safety
    ///
    /// `hdr` points to a validated attribute that lives for `'a`.
    unsafe fn from_raw(hdr: *const bindings::nlattr) -> Self {
        // SAFETY: Per the safety requirements.
        let (len, ty) = unsafe { ((*hdr).nla_len, (*hdr).nla_type) };
        let payload = usize::from(len).saturating_sub(NLA_HDRLEN);
        // INVARIANT: Per the safety requirements.
        Self {
            hdr,
            ty: ty & NLA_TYPE_MASK,
            // SAFETY: A validated attribute holds `nla_len` bytes.
            data: unsafe { core::slice::from_raw_parts(hdr.cast::<u8>().add(NLA_HDRLEN), payload) },
        }
    }

    /// The attribute type.
    pub fn ty(&self) -> u16 {
        self.ty
    }

    /// The payload.
    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }

    fn array<const N: usize>(&self) -> Option<[u8; N]> {
        self.data.get(..N)?.try_into().ok()
    }

    /// The payload as a `u8` (host byte order, as netlink carries it).
    pub fn u8(&self) -> Option<u8> {
        self.array::<1>().map(u8::from_ne_bytes)
    }

    /// The payload as a `u16`.
    pub fn u16(&self) -> Option<u16> {
        self.array::<2>().map(u16::from_ne_bytes)
    }

    /// The payload as a `u32`.
    pub fn u32(&self) -> Option<u32> {
        self.array::<4>().map(u32::from_ne_bytes)
    }

    /// The payload as a `u64`.
    pub fn u64(&self) -> Option<u64> {
        self.array::<8>().map(u64::from_ne_bytes)
    }

    /// The attributes nested in this one (validated by the core when the
    /// policy declares them).
    pub fn nested(&self) -> Attrs<'a> {
        Attrs { stream: self.data }
    }
}

/// The attributes of a nest, in order.
#[derive(Clone, Copy)]
pub struct Attrs<'a> {
    stream: &'a [u8],
}

impl<'a> Attrs<'a> {
    /// The last attribute of type `ty`.
    pub fn get(&self, ty: u16) -> Option<Attr<'a>> {
        self.filter(|a| a.ty == ty).last()
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        let len = usize::from(u16::from_ne_bytes(self.stream.get(..2)?.try_into().ok()?));
        if len < NLA_HDRLEN || len > self.stream.len() {
            self.stream = &[];
            return None;
        }
        // SAFETY: `len` bytes of a well-formed attribute are in `stream`,
        // which lives for `'a`.
        let attr = unsafe { Attr::from_raw(self.stream.as_ptr().cast()) };
        let next = len.next_multiple_of(4).min(self.stream.len());
        self.stream = &self.stream[next..];
        Some(attr)
    }
}

/// A message being built: a reply, a dump entry or a notification.
///
/// # Invariants
///
/// `skb` is a netlink message buffer with an open generic netlink header
/// that only this builder appends to for `'a`.
pub struct Msg<'a> {
    skb: *mut bindings::sk_buff,
    _p: PhantomData<&'a mut bindings::sk_buff>,
}

impl Msg<'_> {
    /// Puts an attribute with `payload`; [`EMSGSIZE`] when full.
    pub fn put_bytes(&mut self, ty: u16, payload: &[u8]) -> Result {
        let len = c_int::try_from(payload.len())?;
        // SAFETY: `skb` is ours to append to (type invariant); `payload` is
        // readable for its length.
        to_result(unsafe {
            bindings::nla_put(self.skb, c_int::from(ty), len, payload.as_ptr().cast())
        })
    }

    /// Puts a `u8`.
    pub fn put_u8(&mut self, ty: u16, v: u8) -> Result {
        self.put_bytes(ty, &v.to_ne_bytes())
    }

    /// Puts a `u16`.
    pub fn put_u16(&mut self, ty: u16, v: u16) -> Result {
        self.put_bytes(ty, &v.to_ne_bytes())
    }

    /// Puts a `u32`.
    pub fn put_u32(&mut self, ty: u16, v: u32) -> Result {
        self.put_bytes(ty, &v.to_ne_bytes())
    }

    /// Puts a `u64`, aligned for 64-bit reads where that needs padding.
    pub fn put_u64(&mut self, ty: u16, v: u64) -> Result {
        let bytes = v.to_ne_bytes();
        // SAFETY: As in `put_bytes`; attribute type 0 pads if needed.
        to_result(unsafe {
            bindings::nla_put_64bit(self.skb, c_int::from(ty), 8, bytes.as_ptr().cast(), 0)
        })
    }

    /// Puts a NUL-terminated string.
    pub fn put_string(&mut self, ty: u16, s: &CStr) -> Result {
        self.put_bytes(ty, s.to_bytes_with_nul())
    }

    /// Puts a nest of type `ty` with the attributes `fill` puts.
    pub fn put_nest(&mut self, ty: u16, fill: impl FnOnce(&mut Self) -> Result) -> Result {
        // SAFETY: `skb` is ours to append to.
        let start = unsafe { bindings::nla_nest_start(self.skb, c_int::from(ty)) };
        if start.is_null() {
            return Err(EMSGSIZE);
        }
        match fill(self) {
            Ok(()) => {
                // SAFETY: `start` opened the nest in this `skb`.
                unsafe { bindings::nla_nest_end(self.skb, start) };
                Ok(())
            }
            Err(e) => {
                // SAFETY: As above; removes what the nest added.
                unsafe { bindings::nla_nest_cancel(self.skb, start) };
                Err(e)
            }
        }
    }
}

/// A `do` request being served.
///
/// # Invariants
///
/// `info` is the core's valid request information for the call, whose
/// `attrs` has `maxattr + 1` entries, and whose family is an
/// [`OpsFamily`]; `skb` is the request message, valid for the call.
pub struct Request<'a> {
    info: &'a mut bindings::genl_info,
    maxattr: usize,
    /// The request message, for its sender's credentials.
    skb: *const bindings::sk_buff,
}

impl<'a> Request<'a> {
    /// The request's attribute of type `ty`, if present.
    pub fn attr(&self, ty: u16) -> Option<Attr<'a>> {
        attr_of(self.info, self.maxattr, ty)
    }

    /// Whether the sender has `CAP_NET_ADMIN` in the initial user
    /// namespace (`netlink_capable`), for operations open to everyone that
    /// serve privileged senders differently.
    pub fn sender_is_admin(&self) -> bool {
        // SAFETY: `skb` is the request message, valid for the call (type
        // invariant).
        unsafe { bindings::netlink_capable(self.skb, bindings::CAP_NET_ADMIN as c_int) }
    }

    /// Sets the message (and, with `attr`, the offending attribute) that
    /// user space shows with the error the handler returns.
    pub fn set_error(&mut self, msg: &'static CStr, attr: Option<&Attr<'_>>) {
        let extack = self.info.extack;
        if !extack.is_null() {
            // SAFETY: The core's extack for this request.
            unsafe {
                (*extack)._msg = msg.as_char_ptr();
                if let Some(a) = attr {
                    (*extack).bad_attr = a.hdr;
                }
            }
        }
    }

    /// Replies to the request with a message of command `cmd` holding the
    /// attributes `fill` puts.
    pub fn reply(&mut self, cmd: u8, fill: impl FnOnce(&mut Msg<'_>) -> Result) -> Result {
        // SAFETY: Plain allocation.
        let skb = unsafe { bindings::genlmsg_new(GENLMSG_DEFAULT_SIZE, GFP_KERNEL.as_raw()) };
        let skb = NonNull::new(skb).ok_or(ENOMEM)?.as_ptr();
        // SAFETY: `skb` is new; `info` is valid (type invariant).
        let hdr = unsafe { bindings::genlmsg_put_reply(skb, self.info, self.info.family, 0, cmd) };
        if hdr.is_null() {
            // SAFETY: Ours, not sent.
            unsafe { bindings::nlmsg_free(skb) };
            return Err(EMSGSIZE);
        }
        // INVARIANT: `skb` has an open header and only `msg` appends to it.
        let mut msg = Msg {
            skb,
            _p: PhantomData,
        };
        if let Err(e) = fill(&mut msg) {
            // SAFETY: Ours, not sent.
            unsafe { bindings::nlmsg_free(skb) };
            return Err(e);
        }
        // SAFETY: `hdr` heads the message; `genlmsg_reply` consumes `skb`.
        unsafe {
            bindings::genlmsg_end(skb, hdr);
            to_result(bindings::genlmsg_reply(skb, self.info))
        }
    }
}

fn attr_of<'a>(info: &bindings::genl_info, maxattr: usize, ty: u16) -> Option<Attr<'a>> {
    if info.attrs.is_null() || usize::from(ty) > maxattr {
        return None;
    }
    // SAFETY: `attrs` has `maxattr + 1` entries (caller's invariant).
    let raw = unsafe { *info.attrs.add(usize::from(ty)) };
    // SAFETY: A non-null entry is a validated attribute of the request,
    // which lives for the call.
    (!raw.is_null()).then(|| unsafe { Attr::from_raw(raw) })
}

/// One call of a `dump`.
///
/// # Invariants
///
/// `skb` is the dump's message buffer, `cb` its valid callback state whose
/// `data` is the core's `genl_dumpit_info`, with `maxattr + 1` attributes.
pub struct Dump<'a> {
    skb: *mut bindings::sk_buff,
    cb: &'a mut bindings::netlink_callback,
    maxattr: usize,
    added: usize,
    full: bool,
}

impl Dump<'_> {
    fn info(&self) -> &bindings::genl_info {
        // SAFETY: `data` is the `genl_dumpit_info` (type invariant).
        unsafe { &(*self.cb.data.cast::<bindings::genl_dumpit_info>()).info }
    }

    /// Where the previous call stopped (0 at first).
    pub fn position(&self) -> u64 {
        // SAFETY: `args` is the dump's scratch space, free for its user.
        unsafe { self.cb.__bindgen_anon_1.args[0] as u64 }
    }

    /// Records where the next call continues.
    pub fn set_position(&mut self, position: u64) {
        // SAFETY: As above.
        unsafe { self.cb.__bindgen_anon_1.args[0] = position as c_long };
    }

    /// The dump request's attribute of type `ty`, if present.
    pub fn attr(&self, ty: u16) -> Option<Attr<'_>> {
        attr_of(self.info(), self.maxattr, ty)
    }

    /// Whether the sender has `CAP_NET_ADMIN` in the initial user
    /// namespace (`netlink_capable` on the dump request).
    pub fn sender_is_admin(&self) -> bool {
        // SAFETY: `cb.skb` is the dump request, kept by the core for the
        // dump's life (type invariant of `cb`).
        unsafe { bindings::netlink_capable(self.cb.skb, bindings::CAP_NET_ADMIN as c_int) }
    }

    /// Adds an entry of command `cmd`; `Ok(false)` if the message is full,
    /// in which case the entry is not in it: stop and continue from the
    /// same position in the next call.
    pub fn add(&mut self, cmd: u8, fill: impl FnOnce(&mut Msg<'_>) -> Result) -> Result<bool> {
        let (portid, seq, family) = {
            let info = self.info();
            (info.snd_portid, info.snd_seq, info.family)
        };
        // SAFETY: `skb` is the dump's buffer (type invariant).
        let hdr = unsafe {
            bindings::genlmsg_put(
                self.skb,
                portid,
                seq,
                family,
                bindings::NLM_F_MULTI as c_int,
                cmd,
            )
        };
        if hdr.is_null() {
            self.full = true;
            return Ok(false);
        }
        let mut msg = Msg {
            skb: self.skb,
            _p: PhantomData,
        };
        match fill(&mut msg) {
            Ok(()) => {
                // SAFETY: `hdr` heads the entry just built.
                unsafe { bindings::genlmsg_end(self.skb, hdr) };
                self.added += 1;
                Ok(true)
            }
            Err(e) => {
                // SAFETY: As above; removes the partial entry.
                unsafe { bindings::genlmsg_cancel(self.skb, hdr) };
                if e == EMSGSIZE {
                    self.full = true;
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }
}

/// # Safety
///
/// Called by the core for an operation of an `OpsFamily<T>` whose policy
/// has `N` entries.
unsafe extern "C" fn doit_callback<T: Handler, const N: usize>(
    skb: *mut bindings::sk_buff,
    info: *mut bindings::genl_info,
) -> c_int {
    // SAFETY: The core passes valid request information for the call.
    let info = unsafe { &mut *info };
    // SAFETY: The family of an `OpsFamily<T>` operation.
    let Some(handler) = (unsafe { OpsFamily::<T>::handler(info.family) }) else {
        return EAGAIN.to_errno();
    };
    // SAFETY: `genlhdr` is the request's validated header.
    let cmd = unsafe { (*info.genlhdr).cmd };
    // INVARIANT: `attrs` was parsed with this operation's policy of `N`;
    // `skb` is the request, valid for the call.
    let mut request = Request {
        info,
        maxattr: N - 1,
        skb,
    };
    match handler.doit(cmd, &mut request) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// Called by the core for a dump of an `OpsFamily<T>` whose policy has `N`
/// entries.
unsafe extern "C" fn dumpit_callback<T: Handler, const N: usize>(
    skb: *mut bindings::sk_buff,
    cb: *mut bindings::netlink_callback,
) -> c_int {
    // SAFETY: The core passes the dump's valid state.
    let cb = unsafe { &mut *cb };
    // SAFETY: `data` is the `genl_dumpit_info` of a genetlink dump.
    let info = unsafe { &(*cb.data.cast::<bindings::genl_dumpit_info>()).info };
    // SAFETY: The family of an `OpsFamily<T>` operation.
    let Some(handler) = (unsafe { OpsFamily::<T>::handler(info.family) }) else {
        return EAGAIN.to_errno();
    };
    // SAFETY: `genlhdr` is the request's validated header.
    let cmd = unsafe { (*info.genlhdr).cmd };
    // INVARIANT: As documented on `Dump`.
    let mut dump = Dump {
        skb,
        cb,
        maxattr: N - 1,
        added: 0,
        full: false,
    };
    match handler.dumpit(cmd, &mut dump) {
        Err(e) if dump.added == 0 => e.to_errno(),
        // More to come: the core calls again after sending this part.
        _ if dump.full && dump.added > 0 => {
            // SAFETY: `skb` is the dump's valid buffer.
            unsafe { (*skb).len as c_int }
        }
        _ if dump.full => EMSGSIZE.to_errno(),
        _ => 0,
    }
}
