// SPDX-License-Identifier: GPL-2.0

//! Runs the device: the vfio-user connection, the TX worker and the two
//! ports, as threads around one locked [`Bmgnic`].
//!
//! - The vfio-user thread serves config space and BAR0. A TX doorbell for
//!   a few descriptors, while the worker is not sending, is served on the
//!   spot: the frames go through the pipeline and to the fabric before the
//!   thread reads its next message, which saves the hand-off to the worker
//!   on a lone packet's path. It never waits for the fabric: a frame its
//!   peer has no room for is left to the worker. Otherwise the doorbell
//!   only records the producer index and wakes the worker.
//! - The NC-SI thread answers the RME; frames held on a table miss whose
//!   flow a command installed leave from it in the same way.
//! - The worker drains the TX ring, sends what the pipeline lets through to
//!   the fabric, releases moderated interrupts and reports events to the
//!   RME as NC-SI AENs.
//! - One thread per port receives: fabric frames go through the RX
//!   pipeline into the RX ring; NC-SI commands are answered. A receive
//!   error is logged and retried; only shutdown ends the thread.
//!
//! Frames are sent after the device lock is dropped, in ring order: a
//! thread takes the fabric send lock before it lets the device go, and the
//! worker sends what the vfio-user thread left it before its own frames.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use crate::device::{Bmgnic, DeviceConfig};
use crate::ncsi::{NcsiBackend, NcsiResponder};
use crate::ncsi_oem::OemHeader;
use crate::pci_config::PciConfig;
use crate::port::{Port, MAX_FRAME};
use crate::vfio::{einval, PciFunction};

/// State shared by the threads.
pub struct Engine {
    device: Mutex<Bmgnic>,
    ncsi: Mutex<NcsiResponder>,
    work: Condvar,
    fabric: Option<Port>,
    /// Held from taking frames off the ring (under the device lock) until
    /// they are sent, so that frames leave in ring order.
    fabric_send: Mutex<()>,
    /// Frames the vfio-user thread took off the ring but could not send
    /// without waiting; the worker sends them before anything else.
    fabric_backlog: Mutex<Vec<Vec<u8>>>,
    sideband: Option<Port>,
    start: Instant,
    stop: AtomicBool,
    /// With TX doorbell suppression, the worker polls the driver's producer
    /// index until this time.
    poll_until: AtomicU64,
}

/// How long the TX worker keeps polling the driver's producer index after
/// its last work, when the driver suppresses doorbells.
const TX_POLL_NS: u64 = 200_000;

/// Most descriptors a TX doorbell has the vfio-user thread process itself;
/// beyond that the worker takes them, so that the guest's MMIO write never
/// waits for a burst.
const TX_INLINE_DESCRIPTORS: u32 = 4;

/// How often the worker looks for the fabric port's link partner.
const LINK_POLL_NS: u64 = 250_000_000;

impl Engine {
    /// Creates the engine; `mac` is the NIC's sideband MAC address.
    pub fn new(
        config: DeviceConfig,
        fabric: Option<Port>,
        sideband: Option<Port>,
        sideband_mac: [u8; 6],
    ) -> Arc<Self> {
        Arc::new(Self {
            device: Mutex::new(Bmgnic::new(config)),
            ncsi: Mutex::new(NcsiResponder::new(sideband_mac)),
            work: Condvar::new(),
            fabric,
            fabric_send: Mutex::new(()),
            fabric_backlog: Mutex::new(Vec::new()),
            sideband,
            start: Instant::now(),
            stop: AtomicBool::new(false),
            poll_until: AtomicU64::new(0),
        })
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Locks the device. A thread that panicked while holding the lock left
    /// it poisoned; the device state is still consistent enough to report
    /// and stop, so the lock is taken anyway.
    pub fn device(&self) -> MutexGuard<'_, Bmgnic> {
        self.device.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn responder(&self) -> MutexGuard<'_, NcsiResponder> {
        self.ncsi.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fabric_backlog(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        self.fabric_backlog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the worker has nothing to do but wait. Called with the
    /// device locked: while it is, the vfio-user thread cannot start
    /// sending, so a worker that finds the send lock free and no backlog
    /// cannot miss frames the vfio-user thread leaves it.
    fn worker_idle(&self, dev: &Bmgnic) -> bool {
        if dev.tx_pending() || !dev.events.is_empty() {
            return false;
        }
        let sender_busy = self.fabric_send.try_lock().is_err();
        !sender_busy && self.fabric_backlog().is_empty()
    }

    /// Serves a TX doorbell on the vfio-user thread ([`TX_INLINE_DESCRIPTORS`]
    /// at most; see [`Self::send_inline`]).
    fn transmit_inline(&self, dev: MutexGuard<'_, Bmgnic>, now: u64, out: &mut Vec<Vec<u8>>) {
        if dev.tx_pending_descriptors() > TX_INLINE_DESCRIPTORS {
            return;
        }
        self.send_inline(dev, out, |dev, out| {
            if dev.process_tx(now, out) > 0 {
                dev.set_tx_polling(true, now);
                self.poll_until.store(now + TX_POLL_NS, Ordering::Relaxed);
            }
        });
    }

    /// Sends the frames `take` pulls from the device on the calling thread,
    /// if no other thread is sending to the fabric and nothing waits in the
    /// backlog; otherwise takes nothing and leaves the work to the worker.
    /// Lets the device go before sending, and never waits for the fabric:
    /// what it has no room for goes to the backlog.
    fn send_inline(
        &self,
        mut dev: MutexGuard<'_, Bmgnic>,
        out: &mut Vec<Vec<u8>>,
        take: impl FnOnce(&mut Bmgnic, &mut Vec<Vec<u8>>),
    ) {
        let Some(port) = &self.fabric else {
            return;
        };
        let Ok(sending) = self.fabric_send.try_lock() else {
            return;
        };
        if !self.fabric_backlog().is_empty() {
            return;
        }
        take(&mut dev, out);
        drop(dev);
        let mut frames = out.drain(..);
        while let Some(frame) = frames.next() {
            match port.try_send(&frame) {
                Ok(true) => {}
                Ok(false) => {
                    let mut backlog = self.fabric_backlog();
                    backlog.push(frame);
                    backlog.extend(frames.by_ref());
                }
                Err(e) => debug!("{} port: send failed: {e}", port.name()),
            }
        }
        drop(sending);
    }

    /// Starts the worker and the port threads.
    pub fn start(self: &Arc<Self>) -> io::Result<()> {
        let me = Arc::clone(self);
        thread::Builder::new()
            .name("tx-worker".into())
            .spawn(move || me.worker())?;
        if let Some(port) = &self.fabric {
            let rx = port.try_clone()?;
            rx.set_read_timeout(Some(RECV_TIMEOUT))?;
            let me = Arc::clone(self);
            thread::Builder::new()
                .name("fabric-rx".into())
                .spawn(move || me.fabric_rx(rx))?;
        }
        if let Some(port) = &self.sideband {
            let rx = port.try_clone()?;
            rx.set_read_timeout(Some(RECV_TIMEOUT))?;
            let me = Arc::clone(self);
            thread::Builder::new()
                .name("ncsi-rx".into())
                .spawn(move || me.ncsi_rx(rx))?;
        }
        Ok(())
    }

    /// Asks the threads to stop.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.work.notify_all();
    }

    fn worker(&self) {
        let mut out = Vec::new();
        let mut aens = Vec::new();
        let mut next_link_poll = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            if let Some(port) = &self.fabric {
                let now = self.now_ns();
                if now >= next_link_poll {
                    next_link_poll = now + LINK_POLL_NS;
                    self.follow_link(port.partner_present(), now, &mut aens);
                }
            }
            let sending = {
                let mut dev = self.device();
                let now = self.now_ns();
                let next_irq = dev.poll_interrupts(now);
                dev.sync_tx_shadow(now);
                if self.worker_idle(&dev) {
                    // With TX doorbell suppression, after work the device
                    // keeps reading the driver's producer index a while
                    // before it wants doorbells again.
                    if dev.tx_polling() && now < self.poll_until.load(Ordering::Relaxed) {
                        drop(dev);
                        std::thread::yield_now();
                        continue;
                    }
                    if dev.tx_polling() {
                        // Stop polling, then look once more: a producer
                        // index written before the driver saw the flag
                        // clear is not lost (the driver writes it, then
                        // reads the flag; we clear the flag, then read it).
                        dev.set_tx_polling(false, now);
                        std::sync::atomic::fence(Ordering::SeqCst);
                        dev.sync_tx_shadow(now);
                    }
                }
                if self.worker_idle(&dev) {
                    // Held frames are retried when an OEM command wakes us,
                    // and at least every few milliseconds to expire them.
                    let cap = if dev.has_held() { 5 } else { 100 };
                    let wait = next_irq
                        .map(|due| Duration::from_nanos(due.saturating_sub(now)))
                        .unwrap_or(Duration::from_millis(cap))
                        .min(Duration::from_millis(cap));
                    dev = self
                        .work
                        .wait_timeout(dev, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                let now = self.now_ns();
                if dev.has_held() {
                    dev.retry_held(now, &mut out);
                }
                dev.sync_tx_shadow(now);
                if dev.process_tx(now, &mut out) > 0 {
                    dev.set_tx_polling(true, now);
                    self.poll_until.store(now + TX_POLL_NS, Ordering::Relaxed);
                }
                dev.poll_interrupts(now);
                let sending = self.fabric_send.lock().unwrap_or_else(|e| e.into_inner());
                if !dev.events.is_empty() {
                    let events = std::mem::take(&mut dev.events);
                    let reports = dev.rme.event_reports(&events, now);
                    drop(dev);
                    let mut ncsi = self.responder();
                    for (event, body) in reports {
                        if let Some(frame) = ncsi.oem_aen(event, &body) {
                            aens.push(frame);
                        }
                    }
                }
                sending
            };
            let mut backlog = std::mem::take(&mut *self.fabric_backlog());
            self.send(&self.fabric, &mut backlog);
            self.send(&self.fabric, &mut out);
            drop(sending);
            self.send(&self.sideband, &mut aens);
        }
    }

    /// Makes the fabric link `up` or down: the guest gets a link
    /// interrupt, the RME a Link Status Change AEN (in `aens`) if it
    /// enabled them.
    fn follow_link(&self, up: bool, now: u64, aens: &mut Vec<Vec<u8>>) {
        if !self.device().set_link(up, now) {
            return;
        }
        info!("fabric link {}", if up { "up" } else { "down" });
        if let Some(frame) = self.responder().link_aen(up) {
            aens.push(frame);
        }
    }

    fn send(&self, port: &Option<Port>, frames: &mut Vec<Vec<u8>>) {
        if let Some(port) = port {
            for f in frames.iter() {
                if let Err(e) = port.send(f) {
                    debug!("{} port: send failed: {e}", port.name());
                }
            }
        }
        frames.clear();
    }

    fn fabric_rx(&self, port: Port) {
        let mut buf = vec![0u8; MAX_FRAME + 128];
        self.receive_loop(
            port.name(),
            |b| port.recv(b),
            &mut buf,
            |frame| {
                let mut dev = self.device();
                // Without link a port receives nothing, even from a
                // partner that still sends to it.
                if !dev.link_up() {
                    return;
                }
                dev.receive(frame, self.now_ns());
                if !dev.events.is_empty() {
                    self.work.notify_one();
                }
            },
        );
    }

    fn ncsi_rx(&self, port: Port) {
        let mut buf = vec![0u8; MAX_FRAME];
        let mut released = Vec::new();
        self.receive_loop(
            port.name(),
            |b| port.recv(b),
            &mut buf,
            |frame| {
                let response = {
                    let mut ncsi = self.responder();
                    let mut dev = self.device();
                    let now = self.now_ns();
                    let mut backend = DeviceBackend { dev: &mut dev, now };
                    ncsi.handle(frame, &mut backend)
                };
                // A flow the RME just installed may release held frames:
                // they leave now, before the response, unless the worker
                // is sending (it retries them too).
                let dev = self.device();
                if dev.has_held() {
                    let now = self.now_ns();
                    self.send_inline(dev, &mut released, |dev, out| dev.retry_held(now, out));
                } else {
                    drop(dev);
                }
                self.work.notify_one();
                if let Some(frame) = response {
                    if let Err(e) = port.send(&frame) {
                        debug!("ncsi port: send failed: {e}");
                    }
                }
            },
        );
    }

    /// Receives frames into `buf` and hands them to `handle` until
    /// shutdown. A receive error (the peer socket gone for a moment, a
    /// signal) must not leave the port deaf: it is logged, rate-limited,
    /// and receiving resumes after a short back-off.
    fn receive_loop(
        &self,
        name: &str,
        mut recv: impl FnMut(&mut [u8]) -> io::Result<usize>,
        buf: &mut [u8],
        mut handle: impl FnMut(&[u8]),
    ) {
        let mut errors = ErrorLog::default();
        let mut backoff = Duration::ZERO;
        while !self.stop.load(Ordering::SeqCst) {
            match recv(buf) {
                Ok(len) => {
                    backoff = Duration::ZERO;
                    if errors.recovered() {
                        info!("{name} port: receiving again");
                    }
                    handle(&buf[..len]);
                }
                // The read timeout (a chance to see shutdown), or a signal.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    match errors.failed(self.now_ns()) {
                        Some(0) => warn!("{name} port: receive failed: {e}; retrying"),
                        Some(n) => warn!(
                            "{name} port: receive failed: {e}; retrying ({n} more since last logged)"
                        ),
                        None => {}
                    }
                    backoff = (backoff * 2).clamp(RECV_BACKOFF_MIN, RECV_BACKOFF_MAX);
                    thread::sleep(backoff);
                }
            }
        }
    }
}

/// Receive threads wake at least this often to see a shutdown.
const RECV_TIMEOUT: Duration = Duration::from_millis(100);
/// Back-off after a receive error, doubled while errors persist.
const RECV_BACKOFF_MIN: Duration = Duration::from_millis(1);
const RECV_BACKOFF_MAX: Duration = Duration::from_millis(100);
/// A port logs at most one receive error this often.
const RECV_ERROR_LOG_NS: u64 = 10_000_000_000;

/// Rate limit of a port's receive-error log.
#[derive(Default)]
struct ErrorLog {
    /// When an error was last logged.
    last_ns: Option<u64>,
    /// Errors not logged since then.
    withheld: u64,
    /// An error was logged and no frame has arrived since.
    failing: bool,
}

impl ErrorLog {
    /// Counts an error at `now_ns`; returns whether to log it, with the
    /// number of errors withheld since the last one logged.
    fn failed(&mut self, now_ns: u64) -> Option<u64> {
        match self.last_ns {
            Some(last) if now_ns.saturating_sub(last) < RECV_ERROR_LOG_NS => {
                self.withheld += 1;
                None
            }
            _ => {
                self.last_ns = Some(now_ns);
                self.failing = true;
                Some(std::mem::take(&mut self.withheld))
            }
        }
    }

    /// A frame arrived: whether to say so (once per logged error).
    fn recovered(&mut self) -> bool {
        std::mem::take(&mut self.failing)
    }
}

/// The device as the NC-SI responder's backend.
struct DeviceBackend<'a> {
    dev: &'a mut Bmgnic,
    now: u64,
}

impl NcsiBackend for DeviceBackend<'_> {
    fn link_up(&self) -> bool {
        self.dev.link_up()
    }

    fn oem(&mut self, header: &OemHeader, records: &[u8], out: &mut Vec<u8>) -> Result<u8, u16> {
        let quarantined = self.dev.rme.quarantined();
        let stats = *self.dev.stats();
        let result = self
            .dev
            .rme
            .handle_oem(header, records, out, &stats, self.now);
        if self.dev.rme.quarantined() != quarantined {
            self.dev.link_changed(self.now);
        }
        result
    }
}

/// The PCI function served over vfio-user: config space here, everything
/// else in the shared device.
pub struct Function {
    config: PciConfig,
    engine: Arc<Engine>,
    /// Frames of a doorbell served on the spot (reused).
    out: Vec<Vec<u8>>,
}

impl Function {
    /// The function of `engine`'s device.
    pub fn new(engine: Arc<Engine>) -> Self {
        let config = PciConfig::new();
        engine.device().set_bus_master(config.bus_master());
        Self {
            config,
            engine,
            out: Vec::new(),
        }
    }
}

impl PciFunction for Function {
    fn config_read(&mut self, offset: u64, data: &mut [u8]) {
        self.config.read(offset, data);
    }

    fn config_write(&mut self, offset: u64, data: &[u8]) {
        self.config.write(offset, data);
        self.engine
            .device()
            .set_bus_master(self.config.bus_master());
    }

    fn bar_read(&mut self, bar: u32, offset: u64, data: &mut [u8]) -> io::Result<()> {
        if bar != 0 {
            return Err(einval());
        }
        self.engine.device().bar0_read(offset, data);
        Ok(())
    }

    fn bar_write(&mut self, bar: u32, offset: u64, data: &[u8]) -> io::Result<()> {
        if bar != 0 {
            return Err(einval());
        }
        let now = self.engine.now_ns();
        let mut dev = self.engine.device();
        let tx_work = dev.bar0_write(offset, data, now);
        let wake = tx_work || !dev.events.is_empty();
        if tx_work {
            self.engine.transmit_inline(dev, now, &mut self.out);
        } else {
            drop(dev);
        }
        // The worker polls the ring after work, fires moderated interrupts
        // and reports events; and it takes what was not served here.
        if wake {
            self.engine.work.notify_one();
        }
        Ok(())
    }

    fn dma_map(&mut self, iova: u64, size: u64, offset: u64, fd: Option<File>) -> io::Result<()> {
        let fd = fd.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "DMA map without a file descriptor",
            )
        })?;
        self.engine
            .device()
            .memory_mut()
            .map(iova, size, offset, fd)
    }

    fn dma_unmap(&mut self, iova: u64, size: u64) -> io::Result<()> {
        self.engine.device().memory_mut().unmap(iova, size)
    }

    fn set_msix(&mut self, start: u32, fds: Vec<File>) -> io::Result<()> {
        self.engine.device().set_msix(start as usize, fds)
    }

    fn reset(&mut self) {
        self.engine.device().reset();
    }

    /// On auxiliary power the NIC outlives its host: the host side returns
    /// to its power-on state (config space, guest bank, no DMA mappings,
    /// no interrupt routes); the RME's configuration and NC-SI are kept.
    fn host_power_lost(&mut self) {
        self.config = PciConfig::new();
        let mut dev = self.engine.device();
        dev.reset();
        dev.memory_mut().clear();
        // An empty list from vector 0 drops every route.
        let _ = dev.set_msix(0, Vec::new());
        dev.set_bus_master(self.config.bus_master());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_errors_do_not_deafen_a_port() {
        let engine = Engine::new(DeviceConfig::default(), None, None, [2, 0, 0, 0, 0, 1]);
        let mut script = vec![
            Err(io::Error::from(io::ErrorKind::ConnectionRefused)),
            Err(io::Error::from(io::ErrorKind::Interrupted)),
            Err(io::Error::from_raw_os_error(104)),
            Ok(vec![0x5a; 60]),
            Err(io::Error::from(io::ErrorKind::ConnectionRefused)),
            Ok(vec![0xa5; 64]),
        ]
        .into_iter();
        let mut frames = Vec::new();
        let mut buf = vec![0u8; MAX_FRAME];
        engine.receive_loop(
            "test",
            |b| match script.next() {
                Some(Ok(f)) => {
                    b[..f.len()].copy_from_slice(&f);
                    Ok(f.len())
                }
                Some(Err(e)) => Err(e),
                None => {
                    engine.shutdown();
                    Err(io::Error::from(io::ErrorKind::WouldBlock))
                }
            },
            &mut buf,
            |f| frames.push(f.to_vec()),
        );
        assert_eq!(frames, [vec![0x5a; 60], vec![0xa5; 64]]);
    }

    #[test]
    fn receive_errors_are_logged_rate_limited() {
        let mut log = ErrorLog::default();
        assert!(!log.recovered());
        assert_eq!(log.failed(5), Some(0));
        // A failing loop within the window logs nothing more...
        for ms in 1..1000 {
            assert_eq!(log.failed(5 + ms * 1_000_000), None);
        }
        // ...and says once that it is receiving again.
        assert!(log.recovered());
        assert!(!log.recovered());
        // The next report counts what was withheld.
        assert_eq!(log.failed(5 + RECV_ERROR_LOG_NS), Some(999));
        assert_eq!(log.failed(6 + RECV_ERROR_LOG_NS), None);
    }

    #[test]
    fn ncsi_port_answers_after_its_peer_socket_was_recreated() {
        use crate::ncsi::{command_frame, parse_received};
        use crate::port::PortSpec;
        use bmgnic_wire::ncsi::cmd;
        use std::os::unix::net::UnixDatagram;

        let dir = std::env::temp_dir().join(format!("bmgnic-engine-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (model, peer) = (dir.join("model"), dir.join("peer"));
        let spec = PortSpec {
            local: model.clone(),
            remote: peer.clone(),
        };
        let port = Port::bind("ncsi", &spec).unwrap();
        let engine = Engine::new(
            DeviceConfig::default(),
            None,
            Some(port),
            [2, 0, 0, 0, 0, 1],
        );
        engine.start().unwrap();
        let command = command_frame([2, 0, 0, 0, 0, 2], 1, cmd::CLEAR_INITIAL_STATE, 0, &[]);
        let ask = |sock: &UnixDatagram| {
            sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            sock.send_to(&command, &model).unwrap();
            let mut buf = [0u8; MAX_FRAME];
            let n = sock.recv(&mut buf).expect("a response");
            let rsp = parse_received(&buf[..n]).expect("an NC-SI response");
            assert_eq!(rsp.iid, 1);
        };
        ask(&UnixDatagram::bind(&peer).unwrap());
        // The peer goes away: its answer is lost, the port lives on.
        std::fs::remove_file(&peer).unwrap();
        UnixDatagram::unbound()
            .unwrap()
            .send_to(&command, &model)
            .unwrap();
        ask(&UnixDatagram::bind(&peer).unwrap());
        engine.shutdown();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_pulled_fabric_cable_is_a_link_aen_and_a_link_interrupt() {
        use crate::ncsi::{command_frame, parse_received};
        use crate::port::PortSpec;
        use bmgnic_wire::ncsi::{
            cmd, AEN_ENABLE_LINK_STATUS, AEN_LINK_STATUS_CHANGE, AEN_PACKET_TYPE,
            LINK_STATUS_LINK_UP,
        };
        use std::os::unix::net::UnixDatagram;

        let dir = std::env::temp_dir().join(format!("bmgnic-link-engine-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = |local: &str, remote: &str| PortSpec {
            local: dir.join(local),
            remote: dir.join(remote),
        };
        let fabric = Port::bind("fabric", &spec("fabric", "switch")).unwrap();
        let ncsi = Port::bind("ncsi", &spec("ncsi", "bmc")).unwrap();
        let switch = UnixDatagram::bind(dir.join("switch")).unwrap();
        let bmc = UnixDatagram::bind(dir.join("bmc")).unwrap();
        bmc.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let engine = Engine::new(
            DeviceConfig::default(),
            Some(fabric),
            Some(ncsi),
            [2, 0, 0, 0, 0, 1],
        );
        engine.start().unwrap();
        // The BMC's start-up: the channel enabled, link AENs on.
        let mut aen_enable = vec![0, 0, 0, 0];
        aen_enable.extend_from_slice(&AEN_ENABLE_LINK_STATUS.to_be_bytes());
        let startup: [(u8, &[u8]); 3] = [
            (cmd::CLEAR_INITIAL_STATE, &[]),
            (cmd::ENABLE_CHANNEL, &[]),
            (cmd::AEN_ENABLE, &aen_enable),
        ];
        let mut buf = [0u8; MAX_FRAME];
        for (iid, (kind, payload)) in (1u8..).zip(startup) {
            bmc.send_to(
                &command_frame([2, 0, 0, 0, 0, 2], iid, kind, 0, payload),
                dir.join("ncsi"),
            )
            .unwrap();
            let n = bmc.recv(&mut buf).expect("a response");
            assert_eq!(parse_received(&buf[..n]).map(|r| r.iid), Some(iid));
        }
        assert!(engine.device().link_up());
        let next_link_aen = |buf: &mut [u8]| loop {
            let n = bmc.recv(buf).expect("a link status AEN");
            let r = parse_received(&buf[..n]).expect("an NC-SI packet");
            if r.kind == AEN_PACKET_TYPE && r.payload[3] == AEN_LINK_STATUS_CHANGE {
                let status = u32::from_be_bytes(r.payload[4..8].try_into().unwrap());
                return status & LINK_STATUS_LINK_UP != 0;
            }
        };
        let unplugged = dir.join("switch.unplugged");
        std::fs::rename(dir.join("switch"), &unplugged).unwrap();
        assert!(!next_link_aen(&mut buf), "pulled: link down");
        assert!(!engine.device().link_up());
        std::fs::rename(&unplugged, dir.join("switch")).unwrap();
        assert!(next_link_aen(&mut buf), "plugged back: link up");
        assert!(engine.device().link_up());
        drop(switch);
        assert!(
            !next_link_aen(&mut buf),
            "the partner closed its socket: link down"
        );
        engine.shutdown();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    use crate::ncsi_oem as oem;

    /// A fabric port to a peer socket in a fresh directory, and a function
    /// whose device runs open with one TX and one RX ring in guest memory.
    struct FabricRig {
        dir: std::path::PathBuf,
        peer: std::os::unix::net::UnixDatagram,
        peer_path: std::path::PathBuf,
        /// The management controller's end of the sideband.
        mc: std::os::unix::net::UnixDatagram,
        engine: Arc<Engine>,
        function: Function,
    }

    const MEM: u64 = 0x10_0000;
    const TX_RING: u64 = 0x1000;
    const TX_BUF: u64 = 0x8000;

    impl FabricRig {
        /// `open`: as the factory leaves it (no RME configuration);
        /// otherwise RME-managed with only the guest's identity set, so that
        /// every frame misses the flow table and is held.
        fn new(name: &str, open: bool) -> Self {
            use crate::guest_mem::test_memfd;
            use crate::port::PortSpec;
            use crate::regs::guest::{self, queue_reg};

            let dir =
                std::env::temp_dir().join(format!("bmgnic-engine-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let (model, peer_path) = (dir.join("model"), dir.join("peer"));
            let peer = std::os::unix::net::UnixDatagram::bind(&peer_path).unwrap();
            let spec = PortSpec {
                local: model,
                remote: peer_path.clone(),
            };
            let port = Port::bind("fabric", &spec).unwrap();
            let (ncsi, mc_path) = (dir.join("ncsi"), dir.join("mc"));
            let mc = std::os::unix::net::UnixDatagram::bind(&mc_path).unwrap();
            let sideband = PortSpec {
                local: ncsi,
                remote: mc_path,
            };
            let sideband = Port::bind("ncsi", &sideband).unwrap();
            let engine = Engine::new(
                DeviceConfig::default(),
                Some(port),
                Some(sideband),
                [2, 0, 0, 0, 0, 1],
            );
            {
                let mut dev = engine.device();
                let mac = [0x52, 0x54, 0, 0xb0, 0, 1];
                dev.rme.set_factory_mac(mac);
                if open {
                    dev.rme.open();
                } else {
                    let identity = oem::IdentityRecord {
                        mac,
                        mtu_cap: 1500,
                        ..Default::default()
                    };
                    dev.rme.apply(oem::OBJ_IDENTITY, &[identity], 0).unwrap();
                }
            }
            let mut function = Function::new(Arc::clone(&engine));
            function.dma_map(0, MEM, 0, Some(test_memfd(MEM))).unwrap();
            // Bus master on, as the driver's pci_set_master() leaves it.
            function.config_write(4, &6u16.to_le_bytes());
            for (reg, value) in [
                (queue_reg(0, guest::TX_BASE_LO), TX_RING as u32),
                (queue_reg(0, guest::TX_SIZE), 16),
                (queue_reg(0, guest::RX_BASE_LO), 0x2000),
                (queue_reg(0, guest::RX_SIZE), 16),
                (guest::STATUS_BLOCK_LO, 0x3000),
                (guest::CONTROL, guest::CONTROL_ENABLE),
            ] {
                function
                    .bar_write(0, reg as u64, &value.to_le_bytes())
                    .unwrap();
            }
            assert_eq!(engine.device().error(), None);
            Self {
                dir,
                peer,
                peer_path,
                mc,
                engine,
                function,
            }
        }

        /// Posts one frame of `len` bytes at ring index `index` and rings
        /// the doorbell; returns the frame.
        fn transmit(&mut self, index: u32, len: usize) -> Vec<u8> {
            use crate::regs::desc;
            use crate::regs::guest::queue_reg;

            let mut frame = vec![0u8; len];
            frame[0..6].copy_from_slice(&[0x52, 0x54, 0, 0xb0, 0, 2]);
            frame[6..12].copy_from_slice(&[0x52, 0x54, 0, 0xb0, 0, 1]);
            frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
            frame[14] = index as u8;
            let slot = u64::from(desc::slot(index, 16)) * desc::SIZE as u64;
            // CAST: Test frames are short.
            let posted = desc::encode(TX_BUF, len as u16, desc::TX_FLAG_EOP);
            {
                let mut dev = self.engine.device();
                dev.memory_mut().write(TX_BUF, &frame).unwrap();
                dev.memory_mut().write(TX_RING + slot, &posted).unwrap();
            }
            let tail = (index + 1).to_le_bytes();
            self.function
                .bar_write(0, queue_reg(0, crate::regs::guest::TX_TAIL) as u64, &tail)
                .unwrap();
            frame
        }
    }

    impl Drop for FabricRig {
        fn drop(&mut self) {
            self.engine.shutdown();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn a_lone_frame_leaves_before_the_doorbell_write_returns() {
        let mut rig = FabricRig::new("inline", true);
        // No worker runs: only the vfio-user thread's doorbell can send.
        let sent = rig.transmit(0, 64);
        rig.peer.set_nonblocking(true).unwrap();
        let mut buf = [0u8; MAX_FRAME];
        let n = rig.peer.recv(&mut buf).expect("the frame, already sent");
        assert_eq!(&buf[..n], &sent[..]);
        let stat = crate::regs::guest::Stat::TxPackets;
        assert_eq!(rig.engine.device().stat(stat), 1);
    }

    #[test]
    fn a_peer_that_does_not_read_never_blocks_the_doorbell() {
        let mut rig = FabricRig::new("backlog", true);
        // Fill the peer's receive queue from another socket.
        let filler = std::os::unix::net::UnixDatagram::unbound().unwrap();
        filler.set_nonblocking(true).unwrap();
        let mut queued = 0;
        while filler.send_to(&[0xee; 60], &rig.peer_path).is_ok() {
            queued += 1;
        }
        assert!(queued > 0);
        // The doorbell returns; the frame waits for the worker.
        let sent = rig.transmit(0, 64);
        assert_eq!(rig.engine.fabric_backlog().len(), 1);
        // The worker sends it, after the frames ahead of it, once the
        // peer reads.
        rig.engine.start().unwrap();
        rig.peer
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; MAX_FRAME];
        for _ in 0..queued {
            assert_eq!(rig.peer.recv(&mut buf).unwrap(), 60);
        }
        let n = rig
            .peer
            .recv(&mut buf)
            .expect("the frame, sent by the worker");
        assert_eq!(&buf[..n], &sent[..]);
        assert!(rig.engine.fabric_backlog().is_empty());
    }

    #[test]
    fn a_flow_installed_over_ncsi_releases_its_held_frame_at_once() {
        use crate::ncsi::{command_frame, oem_command_payload, parse_received};
        use bmgnic_wire::ncsi::cmd;

        let mut rig = FabricRig::new("held", false);
        let sent = rig.transmit(0, 64);
        assert!(rig.engine.device().has_held(), "the miss holds the frame");
        // The NC-SI thread alone runs: no worker retries held frames.
        let ncsi = rig.engine.sideband.as_ref().unwrap().try_clone().unwrap();
        ncsi.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let engine = Arc::clone(&rig.engine);
        let ncsi_thread = thread::spawn(move || engine.ncsi_rx(ncsi));
        let flow = oem::FlowRecord {
            slot: 0,
            priority: 1,
            action: oem::ACTION_ALLOW,
            meter: oem::NO_METER,
            vtep: 0,
            key: oem::FlowKey {
                ethertype: 0x88b5,
                ..Default::default()
            },
            mask: oem::FlowKey {
                ethertype: 0xffff,
                ..Default::default()
            },
        };
        let mut record = [0u8; <oem::FlowRecord as oem::Record>::LEN];
        oem::Record::encode(&flow, &mut record);
        let set = oem_command_payload(oem::OP_SET, oem::OBJ_FLOW, 1, &record);
        rig.mc
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let model = rig.dir.join("ncsi");
        let mut buf = [0u8; MAX_FRAME];
        for (iid, kind, payload) in [(1, cmd::CLEAR_INITIAL_STATE, &[][..]), (2, cmd::OEM, &set)] {
            let command = command_frame([2, 0, 0, 0, 0, 2], iid, kind, 0, payload);
            rig.mc.send_to(&command, &model).unwrap();
            let n = rig.mc.recv(&mut buf).expect("a response");
            let rsp = parse_received(&buf[..n]).expect("an NC-SI response");
            assert_eq!((rsp.iid, &rsp.payload[..4]), (iid, &[0u8; 4][..]));
        }
        // The frame left before the response did.
        rig.peer.set_nonblocking(true).unwrap();
        let n = rig.peer.recv(&mut buf).expect("the held frame, released");
        assert_eq!(&buf[..n], &sent[..]);
        assert!(!rig.engine.device().has_held());
        rig.engine.shutdown();
        ncsi_thread.join().unwrap();
    }
}
