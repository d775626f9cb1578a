// SPDX-License-Identifier: GPL-2.0

//! The OpenFlow connections of the switch agent, as Open vSwitch makes
//! them: an active connection to a controller (`tcp:HOST:PORT`,
//! reconnecting with exponential backoff) and/or a passive listener
//! (`ptcp:PORT[:ADDR]`). One controller at a time is served; its
//! messages, the module's events and a one-second clock all go through
//! the one [`Switch`].
//!
//! A controller that sends garbage gets OpenFlow errors; one whose stream
//! cannot be framed any more (a length below the header's), that stops
//! answering echo requests, or that sends nothing for a long time is
//! disconnected. Nothing the switch enforces changes when a controller
//! goes: the module keeps every rule (fail-secure).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::openflow::buf::OfError;
use crate::openflow::consts::{err, OFP_VERSION};
use crate::openflow::message::{self, Message, MAX_LEN};
use crate::rme::{Rme, RmeEvent};
use crate::switch::Switch;

/// How often the switch sends an echo request to an idle controller, and
/// how long it waits for anything before it gives up on it.
const ECHO_INTERVAL: Duration = Duration::from_secs(5);
const DEAD_AFTER: Duration = Duration::from_secs(15);
/// Reconnection backoff of the active connection.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(8);

/// Where the agent meets controllers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `tcp:HOST:PORT`: connect to a controller.
    Active(String),
    /// `ptcp:PORT[:ADDR]`: accept controllers.
    Passive(SocketAddr),
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("tcp:") {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| format!("{s}: expected tcp:HOST:PORT"))?;
            port.parse::<u16>()
                .map_err(|_| format!("{s}: bad port {port}"))?;
            return Ok(Target::Active(format!("{host}:{port}")));
        }
        if let Some(rest) = s.strip_prefix("ptcp:") {
            let (port, addr) = rest.split_once(':').unwrap_or((rest, "0.0.0.0"));
            let port: u16 = port.parse().map_err(|_| format!("{s}: bad port {port}"))?;
            let ip = addr
                .parse()
                .map_err(|_| format!("{s}: bad address {addr}"))?;
            return Ok(Target::Passive(SocketAddr::new(ip, port)));
        }
        Err(format!("{s}: expected tcp:HOST:PORT or ptcp:PORT[:ADDR]"))
    }
}

/// The controller connection the clock and events write to.
type Current = Arc<Mutex<Option<TcpStream>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking holder leaves the state as it was between messages.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn send_all(stream: &mut TcpStream, msgs: &[(u32, Message)]) -> io::Result<()> {
    let mut out = Vec::new();
    for (xid, m) in msgs {
        match message::encode(*xid, m) {
            Some(b) => out.extend_from_slice(&b),
            None => log::warn!("dropping a message over {MAX_LEN} bytes"),
        }
    }
    stream.write_all(&out)
}

/// Reads one whole message; `Ok(None)` on a clean end of stream.
fn read_message(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 8];
    match stream.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = match message::frame_len(&header) {
        Some(Ok(len)) => len,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "message length below its header's: the stream cannot be framed",
            ))
        }
    };
    let mut buf = header.to_vec();
    buf.resize(len, 0);
    stream.read_exact(&mut buf[8..])?;
    Ok(Some(buf))
}

/// The agent: the switch and the controller connection.
pub struct Agent<R: Rme + Send + 'static> {
    switch: Arc<Mutex<Switch<R>>>,
    current: Current,
}

impl<R: Rme + Send + 'static> Agent<R> {
    pub fn new(switch: Switch<R>) -> Self {
        Self {
            switch: Arc::new(Mutex::new(switch)),
            current: Arc::new(Mutex::new(None)),
        }
    }

    /// Sends asynchronous messages to the controller, if one is there.
    fn notify(current: &Current, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        let mut guard = lock(current);
        if let Some(stream) = guard.as_mut() {
            let tagged: Vec<(u32, Message)> = msgs.into_iter().map(|m| (0, m)).collect();
            if let Err(e) = send_all(stream, &tagged) {
                log::warn!("controller write failed: {e}");
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Starts the clock, and the module's events when `events` gives them.
    pub fn start_background(&self, events: Option<Box<dyn FnMut() -> Option<RmeEvent> + Send>>) {
        let (switch, current) = (self.switch.clone(), self.current.clone());
        thread::spawn(move || loop {
            thread::sleep(Duration::from_secs(1));
            let msgs = lock(&switch).tick(Instant::now());
            Self::notify(&current, msgs);
        });
        if let Some(mut next) = events {
            let (switch, current) = (self.switch.clone(), self.current.clone());
            thread::spawn(move || {
                while let Some(event) = next() {
                    let msgs = lock(&switch).on_event(&event);
                    Self::notify(&current, msgs);
                }
                log::warn!("the module's events stopped");
            });
        }
    }

    /// Serves controllers at `targets` forever.
    pub fn run(&self, targets: &[Target]) -> io::Result<()> {
        let (tx, rx): (Sender<TcpStream>, Receiver<TcpStream>) = mpsc::channel();
        for t in targets {
            let tx = tx.clone();
            match t.clone() {
                Target::Active(addr) => {
                    thread::spawn(move || connect_loop(&addr, &tx));
                }
                Target::Passive(addr) => {
                    let listener = TcpListener::bind(addr)?;
                    log::info!("listening for controllers on {addr}");
                    thread::spawn(move || {
                        for s in listener.incoming().flatten() {
                            if tx.send(s).is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        }
        drop(tx);
        // One controller at a time: the next waits until this one goes.
        for stream in rx {
            let peer = stream
                .peer_addr()
                .map_or_else(|_| "?".into(), |a| a.to_string());
            log::info!("controller {peer} connected");
            let closer = stream.try_clone();
            match self.serve(stream) {
                Ok(()) => log::info!("controller {peer} disconnected"),
                Err(e) => log::warn!("controller {peer} dropped: {e}"),
            }
            *lock(&self.current) = None;
            if let Ok(c) = closer {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
        Ok(())
    }

    /// One controller connection, until it ends.
    pub fn serve(&self, mut stream: TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(ECHO_INTERVAL))?;
        send_all(
            &mut stream,
            &[(
                0,
                Message::Hello {
                    versions: 1 << OFP_VERSION,
                },
            )],
        )?;
        *lock(&self.current) = Some(stream.try_clone()?);
        let mut hello_done = false;
        let mut last_heard = Instant::now();
        let mut echo_xid = 0u32;
        loop {
            let raw = match read_message(&mut stream) {
                Ok(Some(raw)) => raw,
                Ok(None) => return Ok(()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if last_heard.elapsed() >= DEAD_AFTER {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no answer to echo requests",
                        ));
                    }
                    echo_xid = echo_xid.wrapping_add(1);
                    let mut current = lock(&self.current);
                    if let Some(s) = current.as_mut() {
                        send_all(s, &[(echo_xid, Message::EchoRequest(Vec::new()))])?;
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            last_heard = Instant::now();
            let replies = match message::decode(&raw) {
                Ok((xid, Message::Hello { versions })) => {
                    // Version negotiation (§6.3.1): the bitmap, or the
                    // header's version when the peer sent none.
                    let peer_version = raw[0];
                    let ok = if versions != 0 {
                        versions & (1 << OFP_VERSION) != 0
                    } else {
                        peer_version >= OFP_VERSION
                    };
                    if !ok {
                        let e = OfError::new(err::HELLO_FAILED, err::hello::INCOMPATIBLE);
                        let mut s = stream.try_clone()?;
                        send_all(&mut s, &[(xid, message::error_for(&raw, e))])?;
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "no common OpenFlow version",
                        ));
                    }
                    hello_done = true;
                    vec![]
                }
                Ok((xid, _)) if !hello_done => {
                    let e = OfError::new(err::BAD_REQUEST, err::request::BAD_VERSION);
                    vec![(xid, message::error_for(&raw, e))]
                }
                Ok((xid, m)) => lock(&self.switch).handle(xid, m, &raw, Instant::now()),
                Err((xid, e)) => {
                    log::debug!("refusing a message: {e}");
                    vec![(xid, message::error_for(&raw, e))]
                }
            };
            let mut current = lock(&self.current);
            if let Some(s) = current.as_mut() {
                send_all(s, &replies)?;
            }
        }
    }
}

fn connect_loop(addr: &str, tx: &Sender<TcpStream>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let stream = addr
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok());
        match stream {
            Some(s) => {
                backoff = BACKOFF_MIN;
                // Wait for this connection to end before the next try:
                // the server loop closes it, and reading sees the end.
                let watch = s.try_clone();
                if tx.send(s).is_err() {
                    return;
                }
                if let Ok(w) = watch {
                    let _ = w.set_read_timeout(None);
                    let mut buf = [0u8; 1];
                    // peek returns 0 at the end of the stream.
                    while matches!(w.peek(&mut buf), Ok(n) if n > 0) {
                        thread::sleep(Duration::from_millis(200));
                    }
                }
            }
            None => {
                log::debug!("controller {addr} unreachable; retrying in {backoff:?}");
                thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}
