// SPDX-License-Identifier: GPL-2.0

//! A minimal QMP client: the platform's hold on the server's QEMU.
//!
//! QMP is line-delimited JSON over a unix socket: a greeting, then
//! `qmp_capabilities`, then one answer per command with asynchronous
//! events interleaved (skipped here: the platform learns power changes by
//! reaping QEMU, not from events).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The answer a command must get within.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// One QMP session.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to `path`, retrying until `timeout` (QEMU creates the
    /// socket while it starts), and negotiates capabilities.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, String> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("QMP {}: {e}", path.display()));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        stream
            .set_read_timeout(Some(COMMAND_TIMEOUT))
            .map_err(|e| format!("QMP: {e}"))?;
        let writer = stream.try_clone().map_err(|e| format!("QMP: {e}"))?;
        let mut qmp = Self {
            reader: BufReader::new(stream),
            writer,
        };
        // QEMU may write an event (RESUME, as its CPUs start) to a client
        // that connected before its monitor sent the greeting.
        let greeting = loop {
            let message = qmp.read_message()?;
            if message.get("event").is_none() {
                break message;
            }
        };
        if greeting.get("QMP").is_none() {
            return Err(format!("QMP: unexpected greeting {greeting}"));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err("QMP: QEMU closed the connection".into()),
            Ok(_) => serde_json::from_str(&line).map_err(|e| format!("QMP: bad message: {e}")),
            Err(e) => Err(format!("QMP: {e}")),
        }
    }

    /// Runs `command` with `arguments`; returns its `return` value, or
    /// QEMU's error description.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, String> {
        let mut request = json!({ "execute": command });
        if let Some(args) = arguments {
            request["arguments"] = args;
        }
        let mut text = request.to_string();
        text.push('\n');
        self.writer
            .write_all(text.as_bytes())
            .map_err(|e| format!("QMP {command}: {e}"))?;
        loop {
            let message = self.read_message()?;
            if message.get("event").is_some() {
                continue;
            }
            if let Some(ret) = message.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = message.get("error") {
                let desc = err
                    .get("desc")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error");
                return Err(format!("QMP {command}: {desc}"));
            }
            return Err(format!("QMP {command}: unexpected answer {message}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;

    /// A fresh directory for one test's socket, and the socket's path in it.
    fn socket_path(test: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("bmgnic-qmp-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("qmp");
        (dir, path)
    }

    /// A QEMU that writes `first` before its greeting, then answers
    /// `qmp_capabilities`; returns what the client sent.
    fn fake_qemu(path: &Path, first: &'static str) -> std::thread::JoinHandle<String> {
        let listener = UnixListener::bind(path).expect("bind");
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            stream.write_all(first.as_bytes()).expect("write");
            stream
                .write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n")
                .expect("write");
            let mut line = String::new();
            BufReader::new(stream.try_clone().expect("clone"))
                .read_line(&mut line)
                .expect("read");
            stream.write_all(b"{\"return\": {}}\n").expect("write");
            line
        })
    }

    #[test]
    fn an_event_before_the_greeting_is_skipped() {
        let (dir, path) = socket_path("event");
        let qemu = fake_qemu(
            &path,
            "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 0}}\n",
        );
        let connected = Qmp::connect(&path, Duration::from_secs(5));
        let sent = qemu.join().expect("fake QEMU");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(connected.is_ok(), "{:?}", connected.err());
        assert!(sent.contains("qmp_capabilities"), "sent {sent}");
    }

    #[test]
    fn a_peer_that_is_not_qemu_is_refused() {
        let (dir, path) = socket_path("bad");
        let listener = UnixListener::bind(&path).expect("bind");
        let peer = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let _ = stream.write_all(b"{\"hello\": 1}\n");
        });
        let connected = Qmp::connect(&path, Duration::from_secs(5));
        peer.join().expect("peer");
        let _ = std::fs::remove_dir_all(&dir);
        let err = connected
            .err()
            .expect("a peer without a greeting was accepted");
        assert!(err.contains("unexpected greeting"), "{err}");
    }
}
