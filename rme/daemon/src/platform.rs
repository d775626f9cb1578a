// SPDX-License-Identifier: GPL-2.0

//! The platform: the server as the BMC's wires see it (power, pause,
//! boot source, virtual CD, console), over the JSON-lines channel of
//! Documentation/bmgnic/platform.rst. [`ChannelPlatform`] speaks it over
//! the RME VM's virtio-serial port (or, for tests, a unix socket);
//! [`MemoryPlatform`] follows the same rules in memory.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};

/// Where the RME VM sees the platform's channel.
pub const DEFAULT_CHANNEL: &str = "/dev/virtio-ports/org.bmgnic.platform.0";

/// Where the kernel lists virtio-serial ports with their names.
const VIRTIO_PORTS_SYSFS: &str = "/sys/class/virtio-ports";

/// `/dev/virtio-ports/NAME` is a link udev makes; without udev (a BMC's
/// minimal Linux, the rack's VMs) the port is found by its name in
/// `sysfs` (`<sysfs>/vportNpM/name`) and opened as `/dev/vportNpM`.
/// Any other path, or one that exists, is taken as it is.
pub fn resolve_port(path: &Path, sysfs: &Path) -> PathBuf {
    let Some(name) = path
        .strip_prefix("/dev/virtio-ports")
        .ok()
        .and_then(|n| n.to_str())
    else {
        return path.to_path_buf();
    };
    if path.exists() {
        return path.to_path_buf();
    }
    let Ok(ports) = std::fs::read_dir(sysfs) else {
        return path.to_path_buf();
    };
    for port in ports.flatten() {
        let named = std::fs::read_to_string(port.path().join("name")).unwrap_or_default();
        if named.trim_end() == name {
            return Path::new("/dev").join(port.file_name());
        }
    }
    path.to_path_buf()
}

/// The longest line either side sends (platform.rst).
const MAX_LINE: usize = 64 * 1024;

/// The most console bytes one `console` answer carries.
pub const CONSOLE_CHUNK: usize = 32 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Power {
    On,
    Off,
    Paused,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BootTarget {
    #[default]
    None,
    Hdd,
    Cd,
    Pxe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Boot {
    pub target: BootTarget,
    pub once: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Media {
    pub inserted: bool,
    #[serde(default)]
    pub image: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Disk {
    pub present: bool,
    pub bytes: u64,
}

/// Whether the board has a provisioning port to boot `pxe` from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Netboot {
    pub present: bool,
}

/// The state every successful answer carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformState {
    pub power: Power,
    pub boot: Boot,
    pub media: Media,
    pub disk: Disk,
    /// Absent from a board older than the field: none.
    #[serde(default)]
    pub netboot: Netboot,
}

/// A request of the channel, serialized as its `op` and parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Status,
    PowerOn,
    ForceOff,
    GracefulShutdown,
    Reset,
    PowerCycle,
    Pause,
    Resume,
    Boot {
        target: BootTarget,
        once: bool,
    },
    MediaInsert {
        image: String,
    },
    MediaEject,
    /// Bytes of an image the RME fetched: `data` (base64) at `offset` of
    /// stored image `name`; `last` makes it insertable.
    MediaStore {
        name: String,
        offset: u64,
        data: String,
        last: bool,
    },
    /// Drop stored image `name`, whole or in part (a failed download).
    MediaDiscard {
        name: String,
    },
    Console {
        offset: u64,
    },
    /// Ask the tenant's guest agent to hibernate (it powers off after).
    Hibernate,
    /// Whether the tenant's guest agent answers.
    GuestPing,
    /// Keep the (off) server's disk as checkpoint `name` of an image
    /// written by `kernel` (what `hibernate` answered), with `meta`.
    CheckpointSave {
        name: String,
        kernel: serde_json::Value,
        meta: serde_json::Value,
    },
    /// Put checkpoint `name` on the (off) server's disk.
    CheckpointRestore {
        name: String,
    },
}

/// A successful answer: the state, and for `console` its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub state: PlatformState,
    /// `console` only: the bytes (decoded) and the next offset.
    pub console: Option<(Vec<u8>, u64)>,
    /// `checkpoint-save` and `checkpoint-restore`: the manifest.
    pub checkpoint: Option<serde_json::Value>,
    /// `hibernate`: the kernel the guest runs.
    pub kernel: Option<serde_json::Value>,
}

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlatformError {
    /// The platform refused it (`"ok": false`), with its reason.
    Refused(String),
    /// No answer in time; the request may or may not have happened.
    Timeout,
    /// The channel could not be opened, broke, or spoke nonsense.
    Channel(String),
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(e) => write!(f, "the platform refused: {e}"),
            Self::Timeout => write!(f, "the platform did not answer in time"),
            Self::Channel(e) => write!(f, "platform channel: {e}"),
        }
    }
}

impl std::error::Error for PlatformError {}

/// The platform, as the Redfish service drives it. Implementors provide
/// [`Platform::call`]; the named requests are convenience wrappers.
pub trait Platform {
    fn call(&mut self, req: Request) -> Result<Answer, PlatformError>;

    fn status(&mut self) -> Result<PlatformState, PlatformError> {
        self.call(Request::Status).map(|a| a.state)
    }
    fn power_on(&mut self) -> Result<PlatformState, PlatformError> {
        self.call(Request::PowerOn).map(|a| a.state)
    }
    fn force_off(&mut self) -> Result<PlatformState, PlatformError> {
        self.call(Request::ForceOff).map(|a| a.state)
    }
    fn graceful_shutdown(&mut self) -> Result<PlatformState, PlatformError> {
        self.call(Request::GracefulShutdown).map(|a| a.state)
    }
    fn reset(&mut self) -> Result<PlatformState, PlatformError> {
        self.call(Request::Reset).map(|a| a.state)
    }
    fn power_cycle(&mut self) -> Result<PlatformState, PlatformError> {
        self.call(Request::PowerCycle).map(|a| a.state)
    }
    fn pause(&mut self) -> Result<PlatformState, PlatformError> {
        self.call(Request::Pause).map(|a| a.state)
    }
    fn resume(&mut self) -> Result<PlatformState, PlatformError> {
        self.call(Request::Resume).map(|a| a.state)
    }
    fn boot(&mut self, target: BootTarget, once: bool) -> Result<PlatformState, PlatformError> {
        self.call(Request::Boot { target, once }).map(|a| a.state)
    }
    fn media_insert(&mut self, image: &str) -> Result<PlatformState, PlatformError> {
        self.call(Request::MediaInsert {
            image: image.to_string(),
        })
        .map(|a| a.state)
    }
    fn media_eject(&mut self) -> Result<PlatformState, PlatformError> {
        self.call(Request::MediaEject).map(|a| a.state)
    }
    /// Stores `data` at `offset` of image `name` on the board.
    fn media_store(
        &mut self,
        name: &str,
        offset: u64,
        data: &[u8],
        last: bool,
    ) -> Result<PlatformState, PlatformError> {
        self.call(Request::MediaStore {
            name: name.to_string(),
            offset,
            data: base64::engine::general_purpose::STANDARD.encode(data),
            last,
        })
        .map(|a| a.state)
    }
    /// Drops stored image `name`, whole or in part.
    fn media_discard(&mut self, name: &str) -> Result<PlatformState, PlatformError> {
        self.call(Request::MediaDiscard {
            name: name.to_string(),
        })
        .map(|a| a.state)
    }
    /// Asks the tenant to hibernate; returns the kernel it runs.
    fn hibernate(&mut self) -> Result<serde_json::Value, PlatformError> {
        self.call(Request::Hibernate)?
            .kernel
            .ok_or_else(|| PlatformError::Channel("hibernate answer without kernel".into()))
    }
    fn guest_ping(&mut self) -> Result<PlatformState, PlatformError> {
        self.call(Request::GuestPing).map(|a| a.state)
    }
    /// Stores the disk as checkpoint `name`; returns its manifest.
    fn checkpoint_save(
        &mut self,
        name: &str,
        kernel: serde_json::Value,
        meta: serde_json::Value,
    ) -> Result<serde_json::Value, PlatformError> {
        let a = self.call(Request::CheckpointSave {
            name: name.to_string(),
            kernel,
            meta,
        })?;
        a.checkpoint
            .ok_or_else(|| PlatformError::Channel("checkpoint answer without manifest".into()))
    }
    /// Puts checkpoint `name` on the disk; returns its manifest.
    fn checkpoint_restore(&mut self, name: &str) -> Result<serde_json::Value, PlatformError> {
        let a = self.call(Request::CheckpointRestore {
            name: name.to_string(),
        })?;
        a.checkpoint
            .ok_or_else(|| PlatformError::Channel("checkpoint answer without manifest".into()))
    }
    /// The console from `offset`: (bytes, next offset).
    fn console(&mut self, offset: u64) -> Result<(Vec<u8>, u64), PlatformError> {
        let a = self.call(Request::Console { offset })?;
        a.console
            .ok_or_else(|| PlatformError::Channel("console answer without data".into()))
    }
}

impl<T: Platform + ?Sized> Platform for Box<T> {
    fn call(&mut self, req: Request) -> Result<Answer, PlatformError> {
        (**self).call(req)
    }
}

/// One answer line as it arrives.
#[derive(Deserialize)]
struct RawAnswer {
    id: Option<u64>,
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    state: Option<PlatformState>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    next: Option<u64>,
    #[serde(default)]
    checkpoint: Option<serde_json::Value>,
    #[serde(default)]
    kernel: Option<serde_json::Value>,
}

/// An open channel: its write side, and the lines a reader thread gets.
struct Open {
    writer: Box<dyn Write + Send>,
    lines: mpsc::Receiver<Result<String, String>>,
}

/// The platform over its channel. Requests are serialized by `&mut self`;
/// an answer that comes after its request timed out is recognised by its
/// id and dropped. A channel that broke is reopened on the next request.
/// A timeout keeps the channel open: a virtio-serial port takes one
/// opener at a time, and the late answer is dropped by id.
pub struct ChannelPlatform {
    path: PathBuf,
    timeout: Duration,
    next_id: u64,
    open: Option<Open>,
}

impl ChannelPlatform {
    pub fn new(path: impl Into<PathBuf>, timeout: Duration) -> Self {
        Self {
            path: path.into(),
            timeout,
            next_id: 1,
            open: None,
        }
    }

    fn connect(&self) -> Result<Open, PlatformError> {
        let err =
            |e: std::io::Error| PlatformError::Channel(format!("{}: {e}", self.path.display()));
        let path = resolve_port(&self.path, Path::new(VIRTIO_PORTS_SYSFS));
        let meta = std::fs::metadata(&path).map_err(err)?;
        let (reader, writer): (Box<dyn std::io::Read + Send>, Box<dyn Write + Send>) =
            if meta.file_type().is_socket() {
                let s = std::os::unix::net::UnixStream::connect(&path).map_err(err)?;
                (Box::new(s.try_clone().map_err(err)?), Box::new(s))
            } else {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(err)?;
                (Box::new(f.try_clone().map_err(err)?), Box::new(f))
            };
        let (tx, rx) = mpsc::channel();
        // std offers no read timeout on a character device: a thread
        // reads, and the request waits on the channel with its timeout.
        std::thread::Builder::new()
            .name("platform-reader".into())
            .spawn(move || {
                let mut r = BufReader::new(reader);
                loop {
                    let mut line = Vec::new();
                    let res = std::io::Read::by_ref(&mut r)
                        .take(MAX_LINE as u64 + 1)
                        .read_until(b'\n', &mut line);
                    let msg = match res {
                        Ok(0) => Err("the platform closed the channel".to_string()),
                        Ok(_) if line.len() > MAX_LINE => Err("answer line too long".to_string()),
                        Ok(_) => Ok(String::from_utf8_lossy(&line).into_owned()),
                        Err(e) => Err(e.to_string()),
                    };
                    let end = msg.is_err();
                    if tx.send(msg).is_err() || end {
                        return;
                    }
                }
            })
            .map_err(err)?;
        Ok(Open { writer, lines: rx })
    }

    fn exchange(&mut self, id: u64, line: &[u8]) -> Result<RawAnswer, PlatformError> {
        if self.open.is_none() {
            self.open = Some(self.connect()?);
        }
        let Some(open) = self.open.as_mut() else {
            return Err(PlatformError::Channel("not open".into()));
        };
        open.writer
            .write_all(line)
            .and_then(|_| open.writer.flush())
            .map_err(|e| PlatformError::Channel(e.to_string()))?;
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match open.lines.recv_timeout(left) {
                Ok(Ok(text)) => {
                    let Ok(a) = serde_json::from_str::<RawAnswer>(text.trim()) else {
                        log::warn!("platform: unparsable answer {:?}", text.trim());
                        continue;
                    };
                    match a.id {
                        Some(got) if got == id => return Ok(a),
                        // A late answer to a request that timed out.
                        Some(_) => continue,
                        None => {
                            return Err(PlatformError::Channel(
                                a.error.unwrap_or_else(|| "request not understood".into()),
                            ))
                        }
                    }
                }
                Ok(Err(e)) => return Err(PlatformError::Channel(e)),
                Err(mpsc::RecvTimeoutError::Timeout) => return Err(PlatformError::Timeout),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(PlatformError::Channel("reader gone".into()))
                }
            }
        }
    }
}

impl Platform for ChannelPlatform {
    fn call(&mut self, req: Request) -> Result<Answer, PlatformError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut v =
            serde_json::to_value(&req).map_err(|e| PlatformError::Channel(e.to_string()))?;
        if let Some(o) = v.as_object_mut() {
            o.insert("id".into(), id.into());
        }
        let mut line = v.to_string().into_bytes();
        line.push(b'\n');
        let a = match self.exchange(id, &line) {
            Ok(a) => a,
            Err(e) => {
                if matches!(e, PlatformError::Channel(_)) {
                    // Reopened on the next request.
                    self.open = None;
                }
                return Err(e);
            }
        };
        if !a.ok {
            return Err(PlatformError::Refused(
                a.error.unwrap_or_else(|| "no reason given".into()),
            ));
        }
        let state = a
            .state
            .ok_or_else(|| PlatformError::Channel("answer without state".into()))?;
        let console = match (&req, a.data) {
            (Request::Console { .. }, Some(d)) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(d.as_bytes())
                    .map_err(|e| PlatformError::Channel(format!("console data: {e}")))?;
                Some((bytes, a.next.unwrap_or(0)))
            }
            _ => None,
        };
        Ok(Answer {
            state,
            console,
            checkpoint: a.checkpoint,
            kernel: a.kernel,
        })
    }
}

/// The platform's rules in memory: a guest that obeys the power button
/// at once, a media directory of `images` (any name if empty), and a
/// console that is whatever a test appends to it.
#[derive(Clone, Debug)]
pub struct MemoryPlatform {
    pub state: PlatformState,
    pub images: Vec<String>,
    pub console: Vec<u8>,
    /// Boots since creation (power-on and reset), for tests.
    pub boots: u32,
    /// The boot source each boot used.
    pub booted_from: Vec<BootTarget>,
    /// Whether the disk holds a hibernation image.
    pub hibernated: bool,
    /// Stored checkpoints: name and manifest.
    pub checkpoints: BTreeMap<String, serde_json::Value>,
    /// Images stored through `media-store`, whole or in part.
    pub stored: BTreeMap<String, Vec<u8>>,
    /// What booting a medium from the CD prints, by image name: the
    /// server prints it and powers off at once, as the cleanup system
    /// does when its job is done.
    pub media_console: BTreeMap<String, String>,
}

impl Default for MemoryPlatform {
    fn default() -> Self {
        Self::new(1 << 30)
    }
}

impl MemoryPlatform {
    /// A server that is off, with a disk of `disk_bytes`.
    pub fn new(disk_bytes: u64) -> Self {
        Self {
            state: PlatformState {
                power: Power::Off,
                boot: Boot::default(),
                media: Media::default(),
                disk: Disk {
                    present: true,
                    bytes: disk_bytes,
                },
                netboot: Netboot { present: true },
            },
            images: Vec::new(),
            console: Vec::new(),
            boots: 0,
            booted_from: Vec::new(),
            hibernated: false,
            checkpoints: BTreeMap::new(),
            media_console: BTreeMap::new(),
            stored: BTreeMap::new(),
        }
    }

    /// Forgets stored image `name`, if it is one (not a provider's).
    fn forget_stored(&mut self, name: &str) {
        if self.stored.remove(name).is_some() {
            self.images.retain(|i| i != name);
        }
    }

    /// A boot: uses the boot source, which reverts if it was for once.
    fn boot_now(&mut self) {
        self.boots += 1;
        let from = self.state.boot.target;
        self.booted_from.push(from);
        if self.state.boot.once {
            self.state.boot = Boot::default();
        }
        let printed = match (&self.state.media.image, from) {
            (Some(image), BootTarget::Cd) => self.media_console.get(image),
            _ => None,
        };
        if let Some(text) = printed {
            self.console.extend_from_slice(text.as_bytes());
            self.state.power = Power::Off;
        }
    }

    fn running(&self) -> Result<(), PlatformError> {
        if self.state.power == Power::Off {
            return Err(PlatformError::Refused("the server is off".into()));
        }
        Ok(())
    }
}

impl Platform for MemoryPlatform {
    fn call(&mut self, req: Request) -> Result<Answer, PlatformError> {
        let mut console = None;
        let mut checkpoint = None;
        let mut kernel = None;
        match req {
            Request::Status => {}
            Request::PowerOn => {
                if self.state.power != Power::Off {
                    return Err(PlatformError::Refused("the server is not off".into()));
                }
                self.state.power = Power::On;
                self.boot_now();
            }
            Request::ForceOff => self.state.power = Power::Off,
            Request::GracefulShutdown => {
                self.running()?;
                self.state.power = Power::Off;
            }
            Request::Reset => {
                self.running()?;
                self.boot_now();
            }
            Request::PowerCycle => {
                self.state.power = Power::On;
                self.boot_now();
            }
            Request::Pause => {
                self.running()?;
                self.state.power = Power::Paused;
            }
            Request::Resume => {
                self.running()?;
                self.state.power = Power::On;
            }
            Request::Boot { target, once } => {
                // As the platform: only a board with a provisioning port.
                if target == BootTarget::Pxe && !self.state.netboot.present {
                    return Err(PlatformError::Refused(
                        "pxe: this server has no provisioning network".into(),
                    ));
                }
                self.state.boot = Boot { target, once }
            }
            Request::MediaInsert { image } => {
                if image.is_empty() || image.contains('/') || image == "." || image == ".." {
                    return Err(PlatformError::Refused(
                        "image must be a file name in the media directory".into(),
                    ));
                }
                if !self.images.is_empty() && !self.images.contains(&image) {
                    return Err(PlatformError::Refused(format!("{image}: no such image")));
                }
                self.state.media = Media {
                    inserted: true,
                    image: Some(image),
                };
            }
            Request::MediaEject => {
                // As the board: a stored image goes with its eject.
                if let Some(image) = self.state.media.image.take() {
                    self.forget_stored(&image);
                }
                self.state.media = Media::default();
            }
            Request::MediaDiscard { name } => {
                if !bmgnic_wire::platform::remote_media_name_ok(&name)
                    || self.state.media.image.as_deref() == Some(name.as_str())
                {
                    return Err(PlatformError::Refused(format!("'{name}' stays")));
                }
                self.forget_stored(&name);
            }
            Request::MediaStore {
                name,
                offset,
                data,
                last,
            } => {
                // As the board: its own names, in order, never the
                // image in the drive.
                if !bmgnic_wire::platform::remote_media_name_ok(&name) {
                    return Err(PlatformError::Refused(format!(
                        "'{name}': not a stored name"
                    )));
                }
                if self.state.media.image.as_deref() == Some(name.as_str()) {
                    return Err(PlatformError::Refused(format!("'{name}' is in the drive")));
                }
                let data = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|e| PlatformError::Refused(e.to_string()))?;
                if offset == 0 {
                    // One image in transfer, besides the drive's.
                    let drive = self.state.media.image.clone();
                    let others: Vec<String> = self
                        .stored
                        .keys()
                        .filter(|n| Some(*n) != drive.as_ref() && **n != name)
                        .cloned()
                        .collect();
                    for other in others {
                        self.forget_stored(&other);
                    }
                }
                let image = self.stored.entry(name.clone()).or_default();
                if offset == 0 {
                    image.clear();
                }
                if image.len() as u64 != offset {
                    return Err(PlatformError::Refused("out of order".into()));
                }
                image.extend_from_slice(&data);
                if last && !self.images.is_empty() && !self.images.contains(&name) {
                    self.images.push(name);
                }
            }
            Request::Console { offset } => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(self.console.len());
                let end = (start + CONSOLE_CHUNK).min(self.console.len());
                console = Some((self.console[start..end].to_vec(), end as u64));
            }
            Request::Hibernate => {
                self.running()?;
                self.state.power = Power::Off;
                self.hibernated = true;
                kernel = Some(serde_json::json!(
                    {"release": "memory", "version": "#1", "machine": "x86_64"}
                ));
            }
            Request::GuestPing => self.running()?,
            Request::CheckpointSave { name, kernel, meta } => {
                if self.state.power != Power::Off {
                    return Err(PlatformError::Refused("the server must be off".into()));
                }
                if !self.hibernated {
                    return Err(PlatformError::Refused(
                        "the disk holds no hibernation image: the tenant did not hibernate".into(),
                    ));
                }
                if self.checkpoints.contains_key(&name) {
                    return Err(PlatformError::Refused(format!(
                        "checkpoint '{name}' exists"
                    )));
                }
                let manifest = serde_json::json!({
                    "name": name,
                    "disk_bytes": self.state.disk.bytes,
                    "image_bytes": 1 << 20,
                    "kernel": kernel,
                    "meta": meta,
                });
                self.checkpoints.insert(name, manifest.clone());
                checkpoint = Some(manifest);
            }
            Request::CheckpointRestore { name } => {
                if self.state.power != Power::Off {
                    return Err(PlatformError::Refused("the server must be off".into()));
                }
                let manifest = self.checkpoints.get(&name).cloned().ok_or_else(|| {
                    PlatformError::Refused(format!("no checkpoint '{name}' in provider storage"))
                })?;
                self.hibernated = true;
                checkpoint = Some(manifest);
            }
        }
        if self.state.power != Power::Off {
            // A booted kernel consumes its image (resumed or not).
            self.hibernated = false;
        }
        Ok(Answer {
            state: self.state.clone(),
            console,
            checkpoint,
            kernel,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_found_by_name_without_udev() {
        let sysfs = std::env::temp_dir().join(format!("bmgnic-vports-{}", std::process::id()));
        for (port, name) in [
            ("vport0p1", "org.example.other\n"),
            ("vport0p2", "org.bmgnic.platform.0\n"),
        ] {
            std::fs::create_dir_all(sysfs.join(port)).unwrap();
            std::fs::write(sysfs.join(port).join("name"), name).unwrap();
        }
        let want = Path::new("/dev/virtio-ports/org.bmgnic.platform.0");
        assert_eq!(resolve_port(want, &sysfs), Path::new("/dev/vport0p2"));
        let missing = Path::new("/dev/virtio-ports/org.bmgnic.absent");
        assert_eq!(resolve_port(missing, &sysfs), missing);
        let socket = Path::new("/run/platform.sock");
        assert_eq!(resolve_port(socket, &sysfs), socket);
        std::fs::remove_dir_all(&sysfs).unwrap();
    }

    #[test]
    fn requests_serialize_as_the_channel_says() {
        let j = |r: &Request| serde_json::to_string(r).unwrap();
        assert_eq!(j(&Request::PowerOn), r#"{"op":"power-on"}"#);
        assert_eq!(
            j(&Request::Boot {
                target: BootTarget::Cd,
                once: true
            }),
            r#"{"op":"boot","target":"cd","once":true}"#
        );
        assert_eq!(
            j(&Request::MediaInsert {
                image: "a.iso".into()
            }),
            r#"{"op":"media-insert","image":"a.iso"}"#
        );
    }

    #[test]
    fn memory_platform_rules() {
        let mut p = MemoryPlatform::new(1 << 30);
        assert!(p.pause().is_err());
        p.state.netboot.present = false;
        assert!(matches!(
            p.boot(BootTarget::Pxe, false),
            Err(PlatformError::Refused(_))
        ));
        assert_eq!(p.state.boot, Boot::default());
        p.state.netboot.present = true;
        p.boot(BootTarget::Pxe, true).unwrap();
        assert_eq!(p.power_on().unwrap().power, Power::On);
        assert_eq!(p.booted_from, vec![BootTarget::Pxe]);
        assert_eq!(p.force_off().unwrap().power, Power::Off);
        p.booted_from.clear();
        p.boot(BootTarget::Cd, true).unwrap();
        assert_eq!(p.power_on().unwrap().power, Power::On);
        assert!(p.power_on().is_err());
        assert_eq!(p.booted_from, vec![BootTarget::Cd]);
        assert_eq!(p.state.boot, Boot::default());
        assert_eq!(p.pause().unwrap().power, Power::Paused);
        assert_eq!(p.reset().unwrap().power, Power::Paused);
        assert_eq!(p.resume().unwrap().power, Power::On);
        assert!(p.media_insert("../etc/passwd").is_err());
        assert!(p.media_insert("x.iso").unwrap().media.inserted);
        assert_eq!(p.force_off().unwrap().power, Power::Off);
        assert_eq!(p.power_cycle().unwrap().power, Power::On);
        p.console = b"hello".to_vec();
        assert_eq!(p.console(1).unwrap(), (b"ello".to_vec(), 5));
    }

    /// A fake platform on a unix socket: answers with the memory rules,
    /// but first sends a stale answer and a garbage line, and hangs up
    /// after `hang_after` requests.
    fn fake(path: &std::path::Path, hang_after: usize) -> std::thread::JoinHandle<()> {
        let l = std::os::unix::net::UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let mut mem = MemoryPlatform::new(4096);
            for _ in 0..2 {
                let Ok((s, _)) = l.accept() else { return };
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                for _ in 0..hang_after {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    let id = v["id"].as_u64().unwrap();
                    let req: Request = serde_json::from_value(v).unwrap();
                    let out = match mem.call(req) {
                        Ok(a) => serde_json::json!({"id": id, "ok": true, "state": a.state}),
                        Err(e) => {
                            serde_json::json!({"id": id, "ok": false, "error": e.to_string()})
                        }
                    };
                    let stale = serde_json::json!({"id": 999_999, "ok": true});
                    writeln!(w, "{stale}\nnot json\n{out}").unwrap();
                }
                let _ = w.shutdown(std::net::Shutdown::Both);
            }
        })
    }

    #[test]
    fn channel_over_a_socket_reconnects() {
        let dir = std::env::temp_dir().join(format!("bmgnic-plat-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("chan.sock");
        let _ = std::fs::remove_file(&path);
        let t = fake(&path, 2);
        let mut c = ChannelPlatform::new(&path, Duration::from_secs(5));
        assert_eq!(c.power_on().unwrap().power, Power::On);
        assert!(matches!(c.power_on(), Err(PlatformError::Refused(_))));
        // The fake hangs up: an error, then a new connection works.
        assert!(matches!(c.status(), Err(PlatformError::Channel(_))));
        assert_eq!(c.status().unwrap().power, Power::On);
        // The fake waits for more on its second connection: leave it.
        drop((c, t));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn channel_times_out_without_panicking() {
        let dir = std::env::temp_dir().join(format!("bmgnic-plat-t-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("chan.sock");
        let _ = std::fs::remove_file(&path);
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let mut c = ChannelPlatform::new(&path, Duration::from_millis(200));
        assert_eq!(c.status(), Err(PlatformError::Timeout));
        drop(l);
        let missing = ChannelPlatform::new(dir.join("none"), Duration::from_millis(200)).status();
        assert!(matches!(missing, Err(PlatformError::Channel(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
