// SPDX-License-Identifier: GPL-2.0

//! The board's side of the tenant's guest agent: QEMU's own `qemu-ga`,
//! which the tenant image runs on a virtio-serial port named
//! `org.qemu.guest_agent.0` (Documentation/bmgnic/migration.rst, "The
//! guest's part"). The RME asks the tenant to hibernate through it.
//!
//! The agent's protocol is QMP's JSON without a greeting. A connection
//! may hold a stale answer of an earlier client, so each session starts
//! with `guest-sync-delimited`: the agent answers after a 0xFF byte,
//! and everything before that byte is discarded.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::checkpoint::KernelBuild;

/// How long the agent may take to answer the sync.
const SYNC_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an error answer to `guest-suspend-disk` may take: on
/// success there is none, the guest goes down.
const SUSPEND_ERROR_WAIT: Duration = Duration::from_secs(3);

/// One session with the guest agent.
pub struct GuestAgent {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl GuestAgent {
    /// Connects to the agent's socket and syncs with it.
    pub fn connect(path: &Path) -> Result<Self, String> {
        let stream = UnixStream::connect(path)
            .map_err(|e| format!("the guest agent's channel {}: {e}", path.display()))?;
        let mut agent = Self {
            stream,
            buf: Vec::new(),
        };
        agent.sync()?;
        Ok(agent)
    }

    fn send(&mut self, request: &Value) -> Result<(), String> {
        let mut text = request.to_string();
        text.push('\n');
        self.stream
            .write_all(text.as_bytes())
            .map_err(|e| format!("guest agent: {e}"))
    }

    /// The next JSON message before `deadline`; `None` on timeout.
    fn message(&mut self, deadline: Instant) -> Result<Option<Value>, String> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\u{fffd}');
                if text.is_empty() {
                    continue;
                }
                return serde_json::from_str(text)
                    .map(Some)
                    .map_err(|e| format!("guest agent: not JSON ({e}): {text}"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| format!("guest agent: {e}"))?;
            let mut chunk = [0; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("guest agent: the channel closed".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) => return Err(format!("guest agent: {e}")),
            }
        }
    }

    fn sync(&mut self) -> Result<(), String> {
        let id = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64 & 0x7fff_ffff)
            .unwrap_or(1);
        self.send(&json!({ "execute": "guest-sync-delimited", "arguments": { "id": id } }))?;
        let deadline = Instant::now() + SYNC_TIMEOUT;
        loop {
            // Whatever came before the agent's 0xFF is an older session's.
            if let Some(at) = self.buf.iter().rposition(|&b| b == 0xff) {
                self.buf.drain(..=at);
            }
            match self.message(deadline)? {
                None => {
                    return Err(
                        "the guest agent did not answer: is qemu-ga running in the tenant?".into(),
                    )
                }
                Some(m) if m.get("return") == Some(&json!(id)) => return Ok(()),
                Some(_) => continue,
            }
        }
    }

    /// Runs `command`; returns its `return` value or the agent's error.
    fn execute(&mut self, command: &str) -> Result<Value, String> {
        self.send(&json!({ "execute": command }))?;
        match self.message(Instant::now() + SYNC_TIMEOUT)? {
            None => Err(format!("guest agent: no answer to {command}")),
            Some(m) => match (m.get("return"), m.get("error")) {
                (Some(r), _) => Ok(r.clone()),
                (None, Some(e)) => Err(format!(
                    "guest agent: {command}: {}",
                    e.get("desc").and_then(Value::as_str).unwrap_or("failed")
                )),
                _ => Err(format!("guest agent: {command}: unexpected answer {m}")),
            },
        }
    }

    /// The kernel the guest runs (`guest-get-osinfo`): what its
    /// hibernation image will need to resume.
    pub fn kernel(&mut self) -> Result<KernelBuild, String> {
        let info = self.execute("guest-get-osinfo")?;
        let field = |name: &str| {
            info.get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("guest agent: guest-get-osinfo has no {name}"))
        };
        Ok(KernelBuild {
            release: field("kernel-release")?,
            version: field("kernel-version")?,
            machine: field("machine")?,
        })
    }

    /// Asks the guest to hibernate (`guest-suspend-disk`). Success has no
    /// answer: the guest writes its image and powers off.
    pub fn suspend_disk(&mut self) -> Result<(), String> {
        self.send(&json!({ "execute": "guest-suspend-disk" }))?;
        match self.message(Instant::now() + SUSPEND_ERROR_WAIT) {
            Ok(None) | Err(_) => Ok(()),
            Ok(Some(m)) => match m.get("error") {
                Some(e) => Err(format!(
                    "the guest refused to hibernate: {}",
                    e.get("desc").and_then(Value::as_str).unwrap_or("no reason")
                )),
                None => Ok(()),
            },
        }
    }
}
