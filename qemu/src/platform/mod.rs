// SPDX-License-Identifier: GPL-2.0

//! The platform: the server's board as its BMC sees it
//! (Documentation/bmgnic/platform.rst).
//!
//! A [`Board`] owns the server VM's QEMU: it starts it (power on), reaps
//! it (the guest powered off), and drives it over QMP (buttons, CPU hold,
//! the virtual CD). The boot source and the CD's medium are the board's
//! settings; they outlive the QEMU process, as a board's settings outlive
//! a power cycle.

pub mod channel;
pub mod checkpoint;
pub mod qga;
pub mod qmp;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use bmgnic_wire::platform::{NETBOOT_FILE, NETBOOT_MAC};
use log::{info, warn};
use serde_json::{json, Value};

use qmp::Qmp;

/// How long a QEMU told to quit may take before it is killed.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a starting QEMU may take to open its QMP socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The most console bytes one `console` request returns.
pub const CONSOLE_CHUNK: usize = 32 * 1024;
/// The qdev id of the virtual CD drive.
const CD_DEVICE: &str = "bmgnic-vcd";
/// The virtual CD drive's SCSI controller.
const CD_CONTROLLER: &str = "bmgnic-scsi";
/// The guest agent's port name, as qemu-ga looks for it.
const QGA_PORT: &str = "org.qemu.guest_agent.0";
/// The qdev id of the provisioning port (the network boot NIC).
const NETBOOT_DEVICE: &str = "bmgnic-prov";

/// What the board boots from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootTarget {
    /// The firmware's own order: the disk, then the CD.
    None,
    /// The NVMe disk.
    Hdd,
    /// The virtual CD.
    Cd,
    /// The network, through the provisioning port's boot ROM.
    Pxe,
}

impl BootTarget {
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "hdd" => Ok(Self::Hdd),
            "cd" => Ok(Self::Cd),
            "pxe" => Ok(Self::Pxe),
            _ => Err(format!(
                "boot target must be none, hdd, cd or pxe, not '{s}'"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Hdd => "hdd",
            Self::Cd => "cd",
            Self::Pxe => "pxe",
        }
    }

    /// SeaBIOS boot indexes (lower first) of the disk and the CD; the
    /// provisioning port, cabled only to boot `Pxe`, comes first then.
    fn boot_indexes(self) -> (u32, u32) {
        match self {
            Self::Cd => (1, 0),
            Self::Pxe => (1, 2),
            Self::None | Self::Hdd => (0, 1),
        }
    }
}

/// How the board is wired.
#[derive(Clone, Debug)]
pub struct BoardConfig {
    /// QEMU's program and the arguments of the server, without power,
    /// QMP, disk or CD (the board adds them).
    pub qemu: Vec<String>,
    /// Where the server's QEMU opens its QMP socket.
    pub qmp: PathBuf,
    /// The file the server's serial console is written to, if any.
    pub console: Option<PathBuf>,
    /// The server's NVMe disk, a raw image.
    pub disk: Option<PathBuf>,
    /// The directory virtual media images are taken from.
    pub media_dir: Option<PathBuf>,
    /// Where the server's QEMU opens the guest agent's channel (a
    /// virtio-serial port named `org.qemu.guest_agent.0`).
    pub guest_agent: Option<PathBuf>,
    /// Provider storage: the directory checkpoints are kept in.
    pub checkpoints: Option<PathBuf>,
    /// The provisioning network's boot server root (the provisioner's
    /// TFTP directory, with [`NETBOOT_FILE`]); a board without one has
    /// no provisioning port and cannot boot `Pxe`.
    pub netboot: Option<PathBuf>,
}

/// The power states of platform.rst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    /// No QEMU runs.
    Off,
    /// QEMU runs.
    On,
    /// QEMU runs with its CPUs stopped.
    Paused,
}

/// The server's QEMU while it runs.
struct Running {
    child: Child,
    qmp: Qmp,
    paused: bool,
    /// The boot order it was started with.
    boot: BootTarget,
}

/// The board.
///
/// # Invariants
///
/// `running` is `Some` exactly while a QEMU started by this board has not
/// been reaped.
pub struct Board {
    config: BoardConfig,
    running: Option<Running>,
    boot_target: BootTarget,
    boot_once: bool,
    media: Option<String>,
}

impl Board {
    /// A board with the power off.
    pub fn new(config: BoardConfig) -> Self {
        Self {
            config,
            running: None,
            boot_target: BootTarget::None,
            boot_once: false,
            media: None,
        }
    }

    /// Notices a QEMU that exited by itself (the guest powered off).
    fn reap(&mut self) {
        if let Some(r) = &mut self.running {
            match r.child.try_wait() {
                Ok(Some(status)) => {
                    info!("server powered off ({status})");
                    self.running = None;
                }
                Ok(None) => {}
                Err(e) => warn!("cannot reap the server's QEMU: {e}"),
            }
        }
    }

    /// The power state.
    pub fn power(&mut self) -> Power {
        self.reap();
        match &self.running {
            None => Power::Off,
            Some(r) if r.paused => Power::Paused,
            Some(_) => Power::On,
        }
    }

    /// The state every answer carries.
    pub fn state(&mut self) -> Value {
        let power = match self.power() {
            Power::Off => "off",
            Power::On => "on",
            Power::Paused => "paused",
        };
        let disk_bytes = self
            .config
            .disk
            .as_ref()
            .and_then(|d| std::fs::metadata(d).ok())
            .map(|m| m.len());
        json!({
            "power": power,
            "boot": { "target": self.boot_target.name(), "once": self.boot_once },
            "media": { "inserted": self.media.is_some(), "image": self.media },
            "disk": { "present": disk_bytes.is_some(), "bytes": disk_bytes.unwrap_or(0) },
            "netboot": { "present": self.config.netboot.is_some() },
        })
    }

    /// The virtual media directory; a board without one has no CD.
    fn media_dir(&self) -> Result<&Path, String> {
        self.config
            .media_dir
            .as_deref()
            .ok_or_else(|| "this board has no virtual media directory".into())
    }

    fn media_path(&self, image: &str) -> Result<PathBuf, String> {
        let dir = self.media_dir()?;
        if image.is_empty() || image.contains('/') || image.starts_with('.') {
            return Err(format!(
                "'{image}': an image is a file name, without a path"
            ));
        }
        let path = dir.join(image);
        if !path.is_file() {
            return Err(format!("'{image}': no such image"));
        }
        Ok(path)
    }

    fn qemu_args(&self) -> Vec<String> {
        let (disk_index, cd_index) = self.boot_target.boot_indexes();
        let mut args: Vec<String> = self.config.qemu[1..].to_vec();
        args.push("-qmp".into());
        args.push(format!(
            "unix:{},server=on,wait=off",
            opt_path(&self.config.qmp)
        ));
        if let Some(disk) = &self.config.disk {
            args.push("-drive".into());
            args.push(format!(
                "file={},if=none,id=bmgnic-disk,format=raw,cache=writeback",
                opt_path(disk)
            ));
            args.push("-device".into());
            args.push(format!(
                "nvme,drive=bmgnic-disk,serial=bmgnic-disk0,bootindex={disk_index}"
            ));
        }
        if self.config.media_dir.is_some() {
            let medium = match self.media.as_deref().map(|m| self.media_path(m)) {
                Some(Ok(path)) => format!(",file={},format=raw", opt_path(&path)),
                _ => String::new(),
            };
            args.push("-drive".into());
            args.push(format!(
                "if=none,id=bmgnic-cd,media=cdrom,readonly=on{medium}"
            ));
            // On virtio-scsi, not the chipset's AHCI: SeaBIOS waits 32 s
            // for an ATAPI command to an empty AHCI CD drive at every
            // power-on; an empty SCSI CD answers at once.
            args.push("-device".into());
            args.push(format!("virtio-scsi-pci,id={CD_CONTROLLER}"));
            args.push("-device".into());
            args.push(format!(
                "scsi-cd,drive=bmgnic-cd,bus={CD_CONTROLLER}.0,id={CD_DEVICE},bootindex={cd_index}"
            ));
        }
        if let (BootTarget::Pxe, Some(dir)) = (self.boot_target, &self.config.netboot) {
            // The provisioning port is cabled for this boot only: a
            // tenant booted any other way has no NIC but the BMGNIC.
            // User-mode networking that reaches nothing (restrict=on)
            // but its own DHCP and TFTP servers, as a provisioning VLAN
            // reaches only the provisioner; QEMU's iPXE ROM boots it.
            args.push("-netdev".into());
            args.push(format!(
                "user,id={NETBOOT_DEVICE},restrict=on,tftp={},bootfile={NETBOOT_FILE}",
                opt_path(dir)
            ));
            args.push("-device".into());
            args.push(format!(
                "virtio-net-pci,netdev={NETBOOT_DEVICE},id={NETBOOT_DEVICE},mac={NETBOOT_MAC},bootindex=0"
            ));
        }
        if let Some(agent) = &self.config.guest_agent {
            args.extend([
                "-chardev".into(),
                format!(
                    "socket,id=bmgnic-qga,path={},server=on,wait=off",
                    opt_path(agent)
                ),
                "-device".into(),
                "virtio-serial-pci,id=bmgnic-vser".into(),
                "-device".into(),
                format!("virtserialport,bus=bmgnic-vser.0,chardev=bmgnic-qga,name={QGA_PORT}"),
            ]);
        }
        args
    }

    /// Power on.
    pub fn power_on(&mut self) -> Result<(), String> {
        if self.power() != Power::Off {
            return Err("the server is already on".into());
        }
        let _ = std::fs::remove_file(&self.config.qmp);
        let args = self.qemu_args();
        info!(
            "power on, boot {}{}",
            self.boot_target.name(),
            if self.boot_once { " once" } else { "" }
        );
        let mut child = Command::new(&self.config.qemu[0])
            .args(&args)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.config.qemu[0]))?;
        let qmp = match Qmp::connect(&self.config.qmp, START_TIMEOUT) {
            Ok(q) => q,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("the server did not start: {e}"));
            }
        };
        self.running = Some(Running {
            child,
            qmp,
            paused: false,
            boot: self.boot_target,
        });
        if self.boot_once {
            self.boot_target = BootTarget::None;
            self.boot_once = false;
        }
        Ok(())
    }

    fn running(&mut self) -> Result<&mut Running, String> {
        self.reap();
        self.running
            .as_mut()
            .ok_or_else(|| "the server is off".into())
    }

    /// Cut the power.
    pub fn force_off(&mut self) -> Result<(), String> {
        let Some(mut r) = self.running.take() else {
            return Ok(());
        };
        info!("force off");
        // QEMU may already be gone, or hung: the kill below covers both.
        let _ = r.qmp.execute("quit", None);
        let deadline = Instant::now() + QUIT_TIMEOUT;
        loop {
            match r.child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => break,
            }
        }
        warn!("the server's QEMU did not quit: killed");
        let _ = r.child.kill();
        let _ = r.child.wait();
        Ok(())
    }

    /// Press the power button.
    pub fn graceful_shutdown(&mut self) -> Result<(), String> {
        self.running()?.qmp.execute("system_powerdown", None)?;
        Ok(())
    }

    /// Press the reset button. A boot source set since the power-on
    /// needs a new boot order, which QEMU fixes at start: the board
    /// power-cycles instead.
    pub fn reset(&mut self) -> Result<(), String> {
        let target = self.boot_target;
        let r = self.running()?;
        if r.boot != target {
            let paused = r.paused;
            self.force_off()?;
            self.power_on()?;
            if paused {
                self.pause()?;
            }
            return Ok(());
        }
        r.qmp.execute("system_reset", None)?;
        Ok(())
    }

    /// Power off, then on.
    pub fn power_cycle(&mut self) -> Result<(), String> {
        self.force_off()?;
        self.power_on()
    }

    /// Hold the CPUs.
    pub fn pause(&mut self) -> Result<(), String> {
        let r = self.running()?;
        r.qmp.execute("stop", None)?;
        r.paused = true;
        Ok(())
    }

    /// Release the CPUs.
    pub fn resume(&mut self) -> Result<(), String> {
        let r = self.running()?;
        r.qmp.execute("cont", None)?;
        r.paused = false;
        Ok(())
    }

    /// Set the boot source of the next boot.
    pub fn set_boot(&mut self, target: &str, once: bool) -> Result<(), String> {
        let target = BootTarget::parse(target)?;
        if target == BootTarget::Hdd && self.config.disk.is_none() {
            return Err("hdd: this server has no disk".into());
        }
        if target == BootTarget::Cd && self.config.media_dir.is_none() {
            return Err("cd: this server has no virtual CD".into());
        }
        if target == BootTarget::Pxe && self.config.netboot.is_none() {
            return Err("pxe: this server has no provisioning network".into());
        }
        self.boot_target = target;
        self.boot_once = once && target != BootTarget::None;
        Ok(())
    }

    /// Put `image` in the virtual CD drive.
    pub fn insert_media(&mut self, image: &str) -> Result<(), String> {
        let path = self.media_path(image)?;
        if self.media.is_some() {
            return Err("a medium is already inserted: eject it first".into());
        }
        if let Ok(r) = self.running() {
            r.qmp.execute(
                "blockdev-change-medium",
                Some(json!({
                    "id": CD_DEVICE,
                    "filename": path.display().to_string(),
                    "format": "raw",
                    "read-only-mode": "read-only",
                })),
            )?;
        }
        self.media = Some(image.to_string());
        Ok(())
    }

    /// Store bytes of an image the RME fetched (`media-store`): `data` at
    /// `offset` of image `name`, which must carry the remote prefix, so
    /// that no store replaces the provider's media. Offset 0 starts the
    /// image again; the others must follow on; `last` makes the image
    /// insertable under its name, in one rename. The inserted image is
    /// not written over.
    pub fn store_media(
        &mut self,
        name: &str,
        offset: u64,
        data: &[u8],
        last: bool,
    ) -> Result<(), String> {
        use bmgnic_wire::platform::{remote_media_name_ok, REMOTE_MEDIA_MAX, REMOTE_MEDIA_PREFIX};
        use std::io::Write as _;
        let dir = self.media_dir()?;
        if !remote_media_name_ok(name) {
            return Err(format!(
                "'{name}': a stored image is named {REMOTE_MEDIA_PREFIX}NAME, NAME of letters, \
                 digits, '-', '_' and '.'"
            ));
        }
        if self.media.as_deref() == Some(name) {
            return Err(format!("'{name}' is in the drive: eject it first"));
        }
        let part = partial_path(dir, name);
        let end = offset.saturating_add(data.len() as u64);
        if end > REMOTE_MEDIA_MAX {
            let _ = std::fs::remove_file(&part);
            return Err(format!(
                "'{name}': an image is at most {REMOTE_MEDIA_MAX} bytes"
            ));
        }
        let mut file = if offset == 0 {
            // The board keeps one image in transfer and the one in the
            // drive: a new image replaces whatever else the RME stored.
            self.forget_stored_media(dir, name);
            std::fs::File::create(&part)
        } else {
            std::fs::OpenOptions::new().append(true).open(&part)
        }
        .map_err(|e| format!("'{name}': {e}"))?;
        let have = file.metadata().map_err(|e| e.to_string())?.len();
        if have != offset {
            return Err(format!(
                "'{name}': bytes at {offset} do not follow on from the {have} stored"
            ));
        }
        file.write_all(data).map_err(|e| format!("'{name}': {e}"))?;
        if last {
            file.sync_all().map_err(|e| format!("'{name}': {e}"))?;
            std::fs::rename(&part, dir.join(name)).map_err(|e| format!("'{name}': {e}"))?;
            info!("stored image {name} ({end} bytes)");
        }
        Ok(())
    }

    /// Drop image `name` the RME stored, whole or in part
    /// (`media-discard`: a download that failed); the image in the drive
    /// stays.
    pub fn discard_media(&mut self, name: &str) -> Result<(), String> {
        let dir = self.media_dir()?;
        if !bmgnic_wire::platform::remote_media_name_ok(name) {
            return Err(format!("'{name}': not the name of a stored image"));
        }
        if self.media.as_deref() == Some(name) {
            return Err(format!("'{name}' is in the drive: eject it first"));
        }
        for path in [partial_path(dir, name), dir.join(name)] {
            remove_if_there(&path)?;
        }
        Ok(())
    }

    /// Removes the images the RME stored (complete or in transfer) but
    /// the one in the drive and `keep`.
    fn forget_stored_media(&self, dir: &Path, keep: &str) {
        use bmgnic_wire::platform::remote_media_name_ok;
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            let image = partial_image(file).unwrap_or(file);
            if remote_media_name_ok(image) && image != keep && Some(image) != self.media.as_deref()
            {
                if let Err(e) = remove_if_there(&entry.path()) {
                    warn!("{e}");
                }
            }
        }
    }

    /// Empty the virtual CD drive. An image the RME stored is removed
    /// with it: a BMC holds the image it serves, and the next insert
    /// downloads again.
    pub fn eject_media(&mut self) -> Result<(), String> {
        let Some(image) = self.media.clone() else {
            return Ok(());
        };
        if let Ok(r) = self.running() {
            r.qmp
                .execute("eject", Some(json!({ "id": CD_DEVICE, "force": true })))?;
        }
        self.media = None;
        if bmgnic_wire::platform::remote_media_name_ok(&image) {
            if let Some(dir) = &self.config.media_dir {
                remove_if_there(&dir.join(&image))?;
            }
        }
        Ok(())
    }

    /// Up to [`CONSOLE_CHUNK`] bytes of the console from `offset`, and
    /// the offset after them.
    pub fn console(&self, offset: u64) -> Result<(Vec<u8>, u64), String> {
        let path = self
            .config
            .console
            .as_ref()
            .ok_or("this board's console is not recorded")?;
        let mut file = File::open(path).map_err(|e| format!("console: {e}"))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| format!("console: {e}"))?;
        let mut data = Vec::with_capacity(CONSOLE_CHUNK);
        file.take(CONSOLE_CHUNK as u64)
            .read_to_end(&mut data)
            .map_err(|e| format!("console: {e}"))?;
        let next = offset + data.len() as u64;
        Ok((data, next))
    }

    fn guest_agent(&mut self) -> Result<qga::GuestAgent, String> {
        self.running()?;
        let path = self
            .config
            .guest_agent
            .as_ref()
            .ok_or("this board has no channel to a guest agent")?;
        qga::GuestAgent::connect(path)
    }

    /// Ask the tenant to hibernate; it powers off once its image is
    /// written. Returns the kernel it runs, which the image needs.
    pub fn hibernate(&mut self) -> Result<checkpoint::KernelBuild, String> {
        if self.power() == Power::Paused {
            return Err("the server is paused".into());
        }
        let mut agent = self.guest_agent()?;
        let kernel = agent.kernel()?;
        info!("asking the guest to hibernate (kernel {kernel})");
        agent.suspend_disk()?;
        Ok(kernel)
    }

    /// Whether the tenant's guest agent answers.
    pub fn guest_ping(&mut self) -> Result<(), String> {
        self.guest_agent().map(drop)
    }

    fn checkpoint_parts(&mut self) -> Result<(checkpoint::Store, PathBuf), String> {
        if self.power() != Power::Off {
            return Err("the server must be off".into());
        }
        let dir = self
            .config
            .checkpoints
            .clone()
            .ok_or("this board has no checkpoint storage")?;
        let disk = self.config.disk.clone().ok_or("this server has no disk")?;
        Ok((checkpoint::Store::new(dir), disk))
    }

    /// Store the disk as checkpoint `name` of an image written by
    /// `kernel`, with the RME's `meta`.
    pub fn checkpoint_save(
        &mut self,
        name: &str,
        kernel: &checkpoint::KernelBuild,
        meta: Value,
    ) -> Result<Value, String> {
        let (store, disk) = self.checkpoint_parts()?;
        let manifest = store.save(name, &disk, kernel, meta)?;
        info!("checkpoint {name} saved");
        Ok(manifest)
    }

    /// Put checkpoint `name` on the disk, once it is known to resume.
    pub fn checkpoint_restore(&mut self, name: &str) -> Result<Value, String> {
        let (store, disk) = self.checkpoint_parts()?;
        let manifest = store.restore(name, &disk)?;
        info!("checkpoint {name} restored onto the disk");
        Ok(manifest)
    }

    /// The QMP socket path (for cleanup).
    pub fn qmp_path(&self) -> &Path {
        &self.config.qmp
    }
}

/// `path` as the value of a QEMU option, whose commas are doubled: a
/// comma ends the value otherwise.
fn opt_path(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

/// Where stored image `name` is written until its last piece.
fn partial_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.part"))
}

/// The image a [`partial_path`] file name is of, if it is one.
fn partial_image(file: &str) -> Option<&str> {
    file.strip_prefix('.')?.strip_suffix(".part")
}

/// Removes `path`; one that is not there is fine.
fn remove_if_there(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            info!("removed {}", path.display());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("removing {}: {e}", path.display())),
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        if let Some(mut r) = self.running.take() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(netboot: Option<&str>) -> Board {
        Board::new(BoardConfig {
            qemu: vec!["qemu".into(), "-m".into(), "512".into()],
            qmp: "/run/server.qmp".into(),
            console: None,
            disk: Some("/rack/disk.img".into()),
            media_dir: Some("/rack/media".into()),
            guest_agent: None,
            checkpoints: None,
            netboot: netboot.map(PathBuf::from),
        })
    }

    fn device<'a>(args: &'a [String], prefix: &str) -> Option<&'a String> {
        args.iter().find(|a| a.starts_with(prefix))
    }

    #[test]
    fn the_provisioning_port_is_cabled_only_to_boot_pxe() {
        let mut b = board(Some("/rack/netboot"));
        for target in ["none", "hdd", "cd"] {
            b.set_boot(target, false).unwrap();
            let args = b.qemu_args();
            assert!(device(&args, "virtio-net-pci").is_none(), "{target}");
            assert!(!args.iter().any(|a| a.contains("tftp=")), "{target}");
        }
        assert_eq!(b.state()["netboot"], json!({"present": true}));
        b.set_boot("pxe", true).unwrap();
        assert_eq!(b.state()["boot"], json!({"target": "pxe", "once": true}));
        let args = b.qemu_args();
        let netdev = args.iter().find(|a| a.starts_with("user,")).unwrap();
        assert!(netdev.contains("restrict=on"), "{netdev}");
        assert!(
            netdev.contains("tftp=/rack/netboot,bootfile=boot.ipxe"),
            "{netdev}"
        );
        // The network first, then the disk, then the CD.
        assert!(device(&args, "virtio-net-pci")
            .unwrap()
            .ends_with(",bootindex=0"));
        assert!(device(&args, "nvme,").unwrap().ends_with(",bootindex=1"));
        assert!(device(&args, "scsi-cd,").unwrap().ends_with(",bootindex=2"));
    }

    #[test]
    fn paths_with_commas_stay_one_option_value() {
        let mut b = board(Some("/rack/net,boot"));
        b.config.disk = Some("/rack/a,b.img".into());
        b.set_boot("pxe", false).unwrap();
        let args = b.qemu_args();
        assert!(args
            .iter()
            .any(|a| a.starts_with("file=/rack/a,,b.img,if=none")));
        assert!(args
            .iter()
            .any(|a| a.contains(",tftp=/rack/net,,boot,bootfile=")));
    }

    #[test]
    fn a_board_without_a_provisioning_network_refuses_pxe() {
        let mut b = board(None);
        assert_eq!(b.state()["netboot"], json!({"present": false}));
        b.set_boot("cd", true).unwrap();
        assert_eq!(
            b.set_boot("pxe", false).unwrap_err(),
            "pxe: this server has no provisioning network"
        );
        // The refused request changed nothing.
        assert_eq!(b.state()["boot"], json!({"target": "cd", "once": true}));
    }
}
