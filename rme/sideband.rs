// SPDX-License-Identifier: GPL-2.0

//! The NC-SI transport of the RME: control packets on the sideband
//! network device, one command in flight at a time, each matched to its
//! response by IID, retried on timeout; AENs queued for process context.
//!
//! The sideband device is not ours: when it is unregistered the RME lets
//! go of it ([`Sideband::detach`]) and commands fail with `ENETDOWN` until
//! a device of that name comes back ([`Sideband::attach`]).
//!
//! NC-SI has no authentication; the RME trusts the NIC's address on first
//! use: the source of the first response after it starts the channel up
//! ([`Sideband::forget_peer`]). From then on, responses and AENs from any
//! other address (another host on the sideband, a forged frame) are
//! ignored and counted.

use crate::ncsi_client::{self, Aen, Endpoint, Matcher, NcsiError, Packet, Response};
use kernel::{
    net::{dev, packet},
    new_condvar, new_mutex, new_spinlock_irq,
    prelude::*,
    sync::{aref::ARef, Arc, CondVar, CondVarTimeoutResult, Mutex, SpinLockIrq},
    time::msecs_to_jiffies,
};

/// How long a try waits for its response; a BMGNIC answers in well under
/// a millisecond, DSP0222 allows a controller 50 ms.
pub(crate) const TIMEOUT_MS: u32 = 250;
/// Tries per command, the first included.
pub(crate) const TRIES: u32 = 3;
/// AENs held for process context; more are counted and dropped (the NIC
/// reports misses again). Room for a burst of new flows: the misses
/// queued together are installed together, so a deeper queue means fewer,
/// fuller OEM SETs, not just more memory (512 AENs take about 35 KiB, allocated
/// with a vmalloc fallback).
const AEN_QUEUE: usize = 512;
/// Room for the longest control packet frame.
const FRAME_ROOM: usize = crate::ncsi::MAX_FRAME_LEN + 64;

/// What the receive path shares with the command path.
struct Inbox {
    /// The frame being received.
    rx: KVec<u8>,
    /// The awaited response, once it arrived.
    response: KVec<u8>,
    response_len: usize,
    /// IID and command type of the command in flight.
    expect: Option<(u8, u8)>,
    aens: KVVec<Aen>,
    aens_dropped: u64,
    frames_ignored: u64,
    /// The NIC's sideband address, learnt from its first response.
    peer: Option<[u8; 6]>,
    /// Frames from another source than `peer`.
    frames_foreign: u64,
}

/// Counters of the transport.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stats {
    pub(crate) commands: u64,
    pub(crate) retries: u64,
    pub(crate) timeouts: u64,
    pub(crate) aens_dropped: u64,
    pub(crate) frames_ignored: u64,
    pub(crate) frames_foreign: u64,
}

/// The command side: one command at a time.
struct Session {
    /// The sideband device, while attached.
    dev: Option<ARef<dev::Device>>,
    endpoint: Endpoint,
    matcher: Matcher,
    tx: KVec<u8>,
    /// The last response, copied out of the inbox for parsing.
    response: KVec<u8>,
    stats: Stats,
}

/// An NC-SI link to the BMGNIC over a sideband device.
#[pin_data]
pub(crate) struct Sideband {
    #[pin]
    inbox: SpinLockIrq<Inbox>,
    #[pin]
    arrived: CondVar,
    #[pin]
    session: Mutex<Session>,
}

fn zeroed(len: usize) -> Result<KVec<u8>> {
    let mut v = KVec::with_capacity(len, GFP_KERNEL)?;
    v.resize(len, 0, GFP_KERNEL)?;
    Ok(v)
}

impl Sideband {
    /// A link on `dev`, whose address the commands come from.
    pub(crate) fn new(dev: ARef<dev::Device>, mac: [u8; 6]) -> Result<impl PinInit<Self, Error>> {
        let inbox = Inbox {
            rx: zeroed(FRAME_ROOM)?,
            response: zeroed(FRAME_ROOM)?,
            response_len: 0,
            expect: None,
            aens: KVVec::with_capacity(AEN_QUEUE, GFP_KERNEL)?,
            aens_dropped: 0,
            frames_ignored: 0,
            peer: None,
            frames_foreign: 0,
        };
        let session = Session {
            dev: Some(dev),
            endpoint: Endpoint {
                src: mac,
                channel: ncsi_client::CHANNEL_0,
            },
            matcher: Matcher::new(),
            tx: zeroed(FRAME_ROOM)?,
            response: zeroed(FRAME_ROOM)?,
            stats: Stats::default(),
        };
        Ok(pin_init!(Self {
            inbox <- new_spinlock_irq!(inbox, "bmgnic_rme_inbox"),
            arrived <- new_condvar!("bmgnic_rme_arrived"),
            session <- new_mutex!(session, "bmgnic_rme_session"),
        }? Error))
    }

    /// The sideband device, unless it was unregistered.
    pub(crate) fn device(&self) -> Option<ARef<dev::Device>> {
        self.session.lock().dev.clone()
    }

    /// Lets go of the sideband device (it is being unregistered), once the
    /// command in flight, if any, is done; returns it.
    pub(crate) fn detach(&self) -> Option<ARef<dev::Device>> {
        let dev = self.session.lock().dev.take();
        self.inbox.lock().expect = None;
        dev
    }

    /// Forgets the NIC's address: the next response teaches it again. For
    /// a channel start-up (a new NIC may answer).
    pub(crate) fn forget_peer(&self) {
        self.inbox.lock().peer = None;
    }

    /// Sends commands on `dev`, from `mac`, from now on.
    pub(crate) fn attach(&self, dev: ARef<dev::Device>, mac: [u8; 6]) {
        let mut session = self.session.lock();
        session.endpoint.src = mac;
        session.dev = Some(dev);
    }

    /// Takes a frame from the sideband (softirq context): the awaited
    /// response wakes the command path, an AEN is queued. Returns whether
    /// an AEN was queued.
    pub(crate) fn receive(&self, frame: &packet::Frame<'_>) -> bool {
        let mut guard = self.inbox.lock();
        let inbox = &mut *guard;
        let Ok(len) = frame.copy_to(&mut inbox.rx) else {
            inbox.frames_ignored += 1;
            return false;
        };
        let Some(src) = inbox.rx[..len]
            .get(6..12)
            .and_then(|b| <[u8; 6]>::try_from(b).ok())
        else {
            inbox.frames_ignored += 1;
            return false;
        };
        if inbox.peer.is_some_and(|peer| peer != src) {
            inbox.frames_foreign += 1;
            return false;
        }
        match ncsi_client::parse(&inbox.rx[..len]) {
            Ok(Packet::Response(r)) if inbox.expect == Some((r.iid, r.command)) => {
                // Trust on first use: the NIC's address from now on.
                inbox.peer = Some(src);
                // The frame becomes the response; the old response buffer
                // takes the next frame.
                core::mem::swap(&mut inbox.rx, &mut inbox.response);
                inbox.response_len = len;
                inbox.expect = None;
                drop(guard);
                self.arrived.notify_all();
                false
            }
            // AENs come once the channel is up, from the learnt address.
            Ok(Packet::Aen(
                aen @ (Aen::TableMiss(_) | Aen::Violation(_) | Aen::LinkStatus { .. }),
            )) if inbox.peer.is_some() => {
                if inbox.aens.push_within_capacity(aen).is_err() {
                    inbox.aens_dropped += 1;
                    return false;
                }
                true
            }
            // Stale responses (a retried command answered twice), other
            // AENs, frames of other protocols.
            _ => {
                inbox.frames_ignored += 1;
                false
            }
        }
    }

    /// Moves the queued AENs to `out` (which has room for them).
    pub(crate) fn take_aens(&self, out: &mut KVVec<Aen>) {
        let mut inbox = self.inbox.lock();
        for aen in inbox.aens.drain_all() {
            if out.push_within_capacity(aen).is_err() {
                break;
            }
        }
    }

    /// Room a [`Self::take_aens`] caller needs.
    pub(crate) const AEN_QUEUE: usize = AEN_QUEUE;

    /// Counters of the transport.
    pub(crate) fn stats(&self) -> Stats {
        let mut s = self.session.lock().stats;
        let inbox = self.inbox.lock();
        s.aens_dropped = inbox.aens_dropped;
        s.frames_ignored = inbox.frames_ignored;
        s.frames_foreign = inbox.frames_foreign;
        s
    }

    /// Sends the command `build` frames (given the buffer, the endpoint
    /// and the IID) as type `packet_type`, waits for its response and
    /// hands it to `parse`. Retries [`TRIES`] times with the same IID, then
    /// fails with `ETIMEDOUT`. Sleeps.
    pub(crate) fn command<R>(
        &self,
        packet_type: u8,
        build: impl FnOnce(&mut [u8], &Endpoint, u8) -> Result<usize, NcsiError>,
        parse: impl FnOnce(&Response<'_>) -> Result<R>,
    ) -> Result<R> {
        let mut guard = self.session.lock();
        let session = &mut *guard;
        let Some(dev) = session.dev.clone() else {
            return Err(ENETDOWN);
        };
        let iid = session.matcher.begin(packet_type)?;
        let len = match build(&mut session.tx, &session.endpoint, iid) {
            Ok(len) => len,
            Err(e) => {
                session.matcher.cancel(iid);
                return Err(e.into());
            }
        };
        session.stats.commands += 1;
        for attempt in 0..TRIES {
            if attempt > 0 {
                session.stats.retries += 1;
            }
            self.inbox.lock().expect = Some((iid, packet_type));
            if let Err(e) = dev.send_frame(&session.tx[..len]) {
                self.inbox.lock().expect = None;
                session.matcher.cancel(iid);
                return Err(e);
            }
            let mut left = msecs_to_jiffies(TIMEOUT_MS);
            let mut inbox = self.inbox.lock();
            while inbox.response_len == 0 {
                match self.arrived.wait_interruptible_timeout(&mut inbox, left) {
                    CondVarTimeoutResult::Woken { jiffies } => left = jiffies,
                    CondVarTimeoutResult::Timeout => break,
                    CondVarTimeoutResult::Signal { .. } => {
                        inbox.expect = None;
                        drop(inbox);
                        session.matcher.cancel(iid);
                        return Err(EINTR);
                    }
                }
            }
            let got = core::mem::take(&mut inbox.response_len);
            if got > 0 {
                // Parsed outside the lock: take the buffer, leave ours.
                core::mem::swap(&mut session.response, &mut inbox.response);
            }
            inbox.expect = None;
            drop(inbox);
            if got == 0 {
                continue;
            }
            return match ncsi_client::parse(&session.response[..got]) {
                Ok(Packet::Response(r)) => {
                    // The receive path only keeps the awaited response.
                    let _ = session.matcher.complete(&r);
                    parse(&r)
                }
                _ => {
                    session.matcher.cancel(iid);
                    Err(EIO)
                }
            };
        }
        session.stats.timeouts += 1;
        session.matcher.cancel(iid);
        Err(ETIMEDOUT)
    }
}

/// The receive side registered on the sideband device.
pub(crate) struct Receiver<T: AenSink> {
    pub(crate) sink: Arc<T>,
}

/// Where AENs go once queued: the owner schedules their processing.
pub(crate) trait AenSink: Send + Sync {
    /// The sideband of the owner.
    fn sideband(&self) -> &Sideband;
    /// AENs are waiting in [`Sideband::take_aens`] (softirq context).
    fn aens_queued(this: &Arc<Self>);
}

impl<T: AenSink> packet::Handler for Receiver<T> {
    fn receive(&self, frame: &packet::Frame<'_>) {
        if self.sink.sideband().receive(frame) {
            T::aens_queued(&self.sink);
        }
    }
}
