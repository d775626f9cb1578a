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
        let greeting = qmp.read_message()?;
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
