// SPDX-License-Identifier: GPL-2.0

//! `bmgnic-cleanup`: the RME's provisioning and cleanup system (the
//! paper's "cleanup system", Ironic's agent ramdisk). It is PID 1 of a
//! ramdisk the RME boots on the server from virtual media
//! (scripts/build-provision-image.sh), does one job, reports it on the
//! server's serial console, which the RME reads through the platform, and
//! powers the server off:
//!
//! - `bmgnic.job=install`: writes the tenant image on the medium
//!   (`/tenant.img.gz`) to the NVMe disk, and checks it reads back with
//!   the SHA-256 the medium gives.
//! - `bmgnic.job=erase`: NVMe Format with Secure Erase Settings
//!   (cryptographic erase when the drive has it, else user data erase),
//!   falling back to overwriting the disk with zeros, as Ironic's agent
//!   does; then reads every block back and counts any that is not zero.
//!
//! The report is one line, `bmgnic-cleanup: result {json}`.

mod jobs;
mod nvme;

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use flate2::read::GzDecoder;

const CONTROLLER: &str = "/dev/nvme0";
const DISK: &str = "/dev/nvme0n1";
const DISK_SYSFS: &str = "/sys/block/nvme0n1/queue/logical_block_size";
const CDROM: &str = "/dev/sr0";
const NSID: u32 = 1;
/// `BLKFLSBUF`: write back and drop the block device's cached pages.
const BLKFLSBUF: libc::c_ulong = 0x1261;

fn mount(source: &str, target: &str, fstype: &str, flags: libc::c_ulong) -> io::Result<()> {
    std::fs::create_dir_all(target)?;
    let (s, t, f) = (
        CString::new(source)?,
        CString::new(target)?,
        CString::new(fstype)?,
    );
    // SAFETY: the three strings are NUL-terminated and live across the
    // call; no mount data is passed.
    let rc = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), flags, std::ptr::null()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn wait_for(path: &str, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    while !Path::new(path).exists() {
        if Instant::now() > deadline {
            return Err(io::Error::other(format!("{path} did not appear")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Writes back and forgets the disk's cached pages, so that what is read
/// next comes from the drive.
fn uncache(disk: &File) -> io::Result<()> {
    disk.sync_all()?;
    // SAFETY: BLKFLSBUF takes no argument; `disk` is an open block device.
    if unsafe { libc::ioctl(disk.as_raw_fd(), BLKFLSBUF, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Best effort: the page cache of anything else that read the disk.
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
    Ok(())
}

fn open_disk() -> io::Result<(File, u64)> {
    wait_for(DISK, Duration::from_secs(30))?;
    let mut disk = File::options().read(true).write(true).open(DISK)?;
    let bytes = disk.seek(SeekFrom::End(0))?;
    Ok((disk, bytes))
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn install() -> io::Result<String> {
    let started = Instant::now();
    wait_for(CDROM, Duration::from_secs(30))?;
    mount(CDROM, "/media", "iso9660", libc::MS_RDONLY)?;
    let expected = std::fs::read_to_string("/media/tenant.sha256")?;
    let expected = expected.split_whitespace().next().unwrap_or_default();
    let mut image = GzDecoder::new(io::BufReader::new(File::open("/media/tenant.img.gz")?));
    let (mut disk, disk_bytes) = open_disk()?;
    println!("bmgnic-cleanup: installing the tenant image on {DISK} ({disk_bytes} bytes)");
    // Written through the cache, flushed, then read back from the drive.
    let written = jobs::install(
        &mut image,
        &mut Uncached { disk: &mut disk },
        disk_bytes,
        Some(expected),
    )?;
    Ok(format!(
        "{{\"job\":\"install\",\"ok\":true,\"bytes\":{},\"sha256\":{},\"seconds\":{:.1}}}",
        written.bytes,
        json_str(&written.sha256),
        started.elapsed().as_secs_f64()
    ))
}

/// The disk, whose flush also drops its cached pages: the read-back pass
/// of [`jobs::install`], which follows a flush, reads the drive.
struct Uncached<'a> {
    disk: &'a mut File,
}

impl io::Read for Uncached<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.disk.read(buf)
    }
}

impl io::Write for Uncached<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::Write::write(self.disk, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        uncache(self.disk)
    }
}

impl io::Seek for Uncached<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.disk.seek(pos)
    }
}

fn erase() -> io::Result<String> {
    let (mut disk, disk_bytes) = open_disk()?;
    let block_size: u64 = std::fs::read_to_string(DISK_SYSFS)?
        .trim()
        .parse()
        .map_err(|_| io::Error::other("bad logical block size"))?;
    println!("bmgnic-cleanup: erasing {DISK} ({disk_bytes} bytes, {block_size}-byte blocks)");
    let started = Instant::now();
    let ctrl = nvme::Controller::open(CONTROLLER)?;
    let ses = match ctrl.crypto_erase_supported() {
        Ok(true) => nvme::SecureErase::Crypto,
        _ => nvme::SecureErase::UserData,
    };
    let mut method = match ctrl.format(NSID, ses) {
        Ok(()) => format!("nvme-format-ses{}", ses as u32),
        Err(e) => {
            println!(
                "bmgnic-cleanup: NVMe Format (SES {}) failed: {e}; overwriting",
                ses as u32
            );
            jobs::zero_fill(&mut disk, disk_bytes)?;
            "zero-fill".to_string()
        }
    };
    uncache(&disk)?;
    let erase_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut verified = jobs::verify_zero(&mut disk, disk_bytes, block_size)?;
    if verified.nonzero_blocks != 0 && method != "zero-fill" {
        // The drive said it erased, and did not: do it ourselves.
        println!(
            "bmgnic-cleanup: {} blocks not zero after {method} (first {:?}); overwriting",
            verified.nonzero_blocks, verified.first_nonzero
        );
        jobs::zero_fill(&mut disk, disk_bytes)?;
        uncache(&disk)?;
        method.push_str("+zero-fill");
        verified = jobs::verify_zero(&mut disk, disk_bytes, block_size)?;
    }
    Ok(format!(
        "{{\"job\":\"erase\",\"ok\":{},\"method\":{},\"bytes\":{disk_bytes},\"block_size\":{block_size},\
         \"blocks\":{},\"nonzero_blocks\":{},\"erase_seconds\":{erase_seconds:.1},\"verify_seconds\":{:.1}}}",
        verified.nonzero_blocks == 0,
        json_str(&method),
        verified.blocks,
        verified.nonzero_blocks,
        started.elapsed().as_secs_f64()
    ))
}

fn job_from_cmdline() -> Option<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    cmdline
        .split_whitespace()
        .find_map(|arg| arg.strip_prefix("bmgnic.job="))
        .map(str::to_string)
}

fn main() {
    let pid1 = std::process::id() == 1;
    if pid1 {
        // Already mounted is fine; anything else shows in the report.
        let _ = mount("proc", "/proc", "proc", 0);
        let _ = mount("sysfs", "/sys", "sysfs", 0);
        let _ = mount("devtmpfs", "/dev", "devtmpfs", 0);
    }
    let job = job_from_cmdline().unwrap_or_default();
    let result = match job.as_str() {
        "install" => install(),
        "erase" => erase(),
        other => Err(io::Error::other(format!(
            "bmgnic.job is '{other}': want install or erase"
        ))),
    };
    let line = match result {
        Ok(report) => report,
        Err(e) => format!(
            "{{\"job\":{},\"ok\":false,\"error\":{}}}",
            json_str(&job),
            json_str(&e.to_string())
        ),
    };
    println!("bmgnic-cleanup: result {line}");
    if pid1 {
        // SAFETY: sync(2) and reboot(2) take no pointers; PID 1 may power
        // off, and has nothing left to do.
        unsafe {
            libc::sync();
            libc::reboot(libc::LINUX_REBOOT_CMD_POWER_OFF);
        }
    }
}
