// SPDX-License-Identifier: GPL-2.0

//! Checkpoints in provider storage (Documentation/bmgnic/migration.rst).
//!
//! A checkpoint is the server's disk taken while the server is off after
//! the tenant hibernated into its swap partition, with a manifest beside
//! it: `NAME.disk` and `NAME.json` in the checkpoint directory, which every
//! board of the rack shares. Restoring copies the disk back, on this
//! server or another one; the tenant's kernel then resumes from its swap.
//!
//! Linux resumes an image with the kernel build that wrote it: generic
//! code compares the image header's `uname` with the booting kernel's
//! (`check_image_kernel()`); x86-64 instead writes an arch header and
//! only checks its magic and the memory map, so a boot kernel of another
//! build jumps into the image kernel. The RME holds every checkpoint to
//! the stricter rule, the one every architecture supports: the board asks
//! the guest agent which kernel the tenant runs before it hibernates,
//! records it in the manifest, and refuses to restore a checkpoint whose
//! disk's bootloader loads another build, before anything is written.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// The kernel's page size on the tenant's architecture (x86-64).
const PAGE: u64 = 4096;
/// `HIBERNATE_SIG` at the end of the swap header: an image is there.
const HIBERNATE_SIG: &[u8] = b"S1SUSPEND";
/// Where `struct swsusp_header` keeps the image's first map page, and
/// its signature, in the swap partition's first page.
const HEADER_IMAGE_AT: usize = PAGE as usize - 32;
const HEADER_SIG_AT: usize = PAGE as usize - 10;
/// Where `struct swsusp_info` keeps the image's size in pages: after the
/// `uname` (or x86's arch header in its place, 390 bytes), the
/// `version_code`, `num_physpages`, `cpus` and `image_pages`.
const INFO_PAGES_AT: usize = 424;
/// MBR partition types.
const MBR_SWAP: u8 = 0x82;
const MBR_FAT16: [u8; 3] = [0x04, 0x06, 0x0e];

/// A kernel build as `uname` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelBuild {
    pub release: String,
    pub version: String,
    pub machine: String,
}

impl KernelBuild {
    pub fn to_json(&self) -> Value {
        json!({ "release": self.release, "version": self.version, "machine": self.machine })
    }

    /// The build of a `to_json()` object.
    pub fn from_json(v: &Value) -> Option<Self> {
        let field = |name: &str| v.get(name).and_then(Value::as_str).map(str::to_string);
        Some(Self {
            release: field("release")?,
            version: field("version")?,
            machine: field("machine")?,
        })
    }
}

impl std::fmt::Display for KernelBuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.release, self.version)
    }
}

/// One primary MBR partition: its type and byte range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    pub kind: u8,
    pub start: u64,
    pub len: u64,
}

/// The primary partitions of an MBR sector.
pub fn mbr_partitions(sector: &[u8]) -> Result<Vec<Partition>, String> {
    if sector.len() < 512 || sector[510..512] != [0x55, 0xaa] {
        return Err("the disk has no MBR partition table".into());
    }
    let mut parts = Vec::new();
    for entry in sector[446..510].chunks_exact(16) {
        let kind = entry[4];
        let lba = u32::from_le_bytes([entry[8], entry[9], entry[10], entry[11]]);
        let sectors = u32::from_le_bytes([entry[12], entry[13], entry[14], entry[15]]);
        if kind != 0 && sectors != 0 {
            parts.push(Partition {
                kind,
                start: u64::from(lba) * 512,
                len: u64::from(sectors) * 512,
            });
        }
    }
    Ok(parts)
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Reads `len` bytes at `offset` of a partition; refuses to leave it.
fn read_in(disk: &mut File, part: &Partition, offset: u64, len: usize) -> Result<Vec<u8>, String> {
    if offset
        .checked_add(len as u64)
        .is_none_or(|end| end > part.len)
    {
        return Err(format!(
            "the hibernation image points outside its partition (offset {offset})"
        ));
    }
    let mut buf = vec![0; len];
    disk.seek(SeekFrom::Start(part.start + offset))
        .and_then(|_| disk.read_exact(&mut buf))
        .map_err(|e| format!("reading the disk: {e}"))?;
    Ok(buf)
}

/// The hibernation image's size in pages, given the swap partition's
/// first page and a reader of its pages. `None`: the swap holds no image.
pub fn image_pages(
    swap_header: &[u8],
    mut page: impl FnMut(u64) -> Result<Vec<u8>, String>,
) -> Result<Option<u64>, String> {
    if swap_header.len() < PAGE as usize {
        return Err("short swap header".into());
    }
    if !swap_header[HEADER_SIG_AT..].starts_with(HIBERNATE_SIG) {
        return Ok(None);
    }
    let mut first = [0; 8];
    first.copy_from_slice(&swap_header[HEADER_IMAGE_AT..HEADER_IMAGE_AT + 8]);
    // The first swap_map_page; its first entry is the swsusp_info page,
    // which swsusp_write() writes before the (maybe compressed) data.
    let map = page(u64::from_le_bytes(first))?;
    let entry = map.first_chunk::<8>().ok_or("short hibernation map page")?;
    let info = page(u64::from_le_bytes(*entry))?;
    let pages = info
        .get(INFO_PAGES_AT..INFO_PAGES_AT + 8)
        .and_then(|b| b.first_chunk::<8>())
        .ok_or("short hibernation header page")?;
    Ok(Some(u64::from_le_bytes(*pages)))
}

/// The build a bzImage is, from its setup header's version string
/// (`UTS_RELEASE " (" COMPILE_BY "@" COMPILE_HOST ") " UTS_VERSION`).
pub fn bzimage_kernel(image: &[u8]) -> Result<KernelBuild, String> {
    if image.len() < 0x210 || &image[0x202..0x206] != b"HdrS" {
        return Err("the boot kernel is not a bzImage".into());
    }
    let at = 0x200 + usize::from(u16::from_le_bytes([image[0x20e], image[0x20f]]));
    let text = c_string(
        image
            .get(at..)
            .ok_or("the bzImage's version string is missing")?,
    );
    let (release, rest) = text
        .split_once(" (")
        .ok_or("the bzImage's version string is malformed")?;
    let (_, version) = rest
        .split_once(") ")
        .ok_or("the bzImage's version string is malformed")?;
    Ok(KernelBuild {
        release: release.into(),
        version: version.into(),
        machine: "x86_64".into(),
    })
}

/// The kernel path syslinux.cfg boots by default.
pub fn syslinux_kernel(cfg: &str) -> Option<String> {
    let mut default = None;
    let mut label = None;
    let mut first = None;
    for line in cfg.lines() {
        let mut words = line.split_whitespace();
        let (Some(key), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        match key.to_ascii_uppercase().as_str() {
            "DEFAULT" => default = Some(value.to_string()),
            "LABEL" => label = Some(value.to_string()),
            "LINUX" | "KERNEL" => {
                if label.is_some() && label == default {
                    return Some(value.into());
                }
                first.get_or_insert_with(|| value.to_string());
            }
            _ => {}
        }
    }
    first
}

/// A file of the disk's FAT boot partition, read with mtools.
fn fat_file(disk: &Path, part: &Partition, name: &str) -> Result<Vec<u8>, String> {
    let out = Command::new("mcopy")
        .arg("-n")
        .arg("-i")
        .arg(format!("{}@@{}", disk.display(), part.start))
        .arg(format!("::{name}"))
        .arg("-")
        .output()
        .map_err(|e| format!("cannot run mcopy (mtools): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the boot partition has no {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

/// What a disk holds that a restore depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskState {
    /// The hibernation image's size in pages, if there is one.
    pub image: Option<u64>,
    /// The kernel the bootloader loads.
    pub boot: KernelBuild,
}

/// Reads the hibernation image header and the boot kernel of `disk`.
pub fn inspect(disk: &Path) -> Result<DiskState, String> {
    let mut file = File::open(disk).map_err(|e| format!("{}: {e}", disk.display()))?;
    let mut mbr = [0; 512];
    file.read_exact(&mut mbr)
        .map_err(|e| format!("reading the disk: {e}"))?;
    let parts = mbr_partitions(&mbr)?;
    let swap = parts
        .iter()
        .find(|p| p.kind == MBR_SWAP)
        .copied()
        .ok_or("the disk has no swap partition to hibernate into")?;
    let header = read_in(&mut file, &swap, 0, PAGE as usize)?;
    let image = image_pages(&header, |n| {
        let at = n
            .checked_mul(PAGE)
            .ok_or("the hibernation image points outside its partition")?;
        read_in(&mut file, &swap, at, PAGE as usize)
    })?;
    let boot_part = parts
        .iter()
        .find(|p| MBR_FAT16.contains(&p.kind))
        .copied()
        .ok_or("the disk has no FAT boot partition")?;
    let cfg = fat_file(disk, &boot_part, "/syslinux.cfg")?;
    let kernel =
        syslinux_kernel(&String::from_utf8_lossy(&cfg)).ok_or("syslinux.cfg names no kernel")?;
    let boot = bzimage_kernel(&fat_file(disk, &boot_part, &kernel)?)?;
    Ok(DiskState { image, boot })
}

/// The checkpoint directory.
pub struct Store {
    dir: PathBuf,
}

fn valid_name(name: &str) -> Result<(), String> {
    if bmgnic_wire::platform::checkpoint_name_ok(name) {
        Ok(())
    } else {
        Err(format!(
            "'{name}': a checkpoint name is 1 to {} letters, digits, '-', '_' or '.'",
            bmgnic_wire::platform::CHECKPOINT_NAME_MAX
        ))
    }
}

impl Store {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn paths(&self, name: &str) -> Result<(PathBuf, PathBuf), String> {
        valid_name(name)?;
        Ok((
            self.dir.join(format!("{name}.disk")),
            self.dir.join(format!("{name}.json")),
        ))
    }

    /// Stores `disk` as checkpoint `name`, an image written by `kernel`,
    /// with the RME's `meta`; returns the manifest.
    pub fn save(
        &self,
        name: &str,
        disk: &Path,
        kernel: &KernelBuild,
        meta: Value,
    ) -> Result<Value, String> {
        let (disk_path, manifest_path) = self.paths(name)?;
        if manifest_path.exists() {
            return Err(format!("checkpoint '{name}' exists"));
        }
        let state = inspect(disk)?;
        let Some(pages) = state.image else {
            return Err("the disk holds no hibernation image: the tenant did not hibernate".into());
        };
        let started = SystemTime::now();
        let tmp = self.dir.join(format!(".{name}.disk"));
        let bytes = std::fs::copy(disk, &tmp).map_err(|e| format!("copying the disk: {e}"))?;
        std::fs::rename(&tmp, &disk_path).map_err(|e| format!("storing the disk: {e}"))?;
        let manifest = json!({
            "name": name,
            "created": started.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "disk_bytes": bytes,
            "image_bytes": pages * PAGE,
            "kernel": kernel.to_json(),
            "boot_kernel": state.boot.to_json(),
            "meta": meta,
        });
        let text = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
        std::fs::write(&manifest_path, text).map_err(|e| format!("writing the manifest: {e}"))?;
        Ok(manifest)
    }

    /// Checks checkpoint `name` and copies its disk onto `disk`; returns
    /// its manifest. Nothing is written unless the checkpoint's image can
    /// be resumed by the kernel its disk boots.
    pub fn restore(&self, name: &str, disk: &Path) -> Result<Value, String> {
        let (disk_path, manifest_path) = self.paths(name)?;
        let text = std::fs::read(&manifest_path)
            .map_err(|_| format!("no checkpoint '{name}' in provider storage"))?;
        let manifest: Value = serde_json::from_slice(&text)
            .map_err(|e| format!("checkpoint '{name}': bad manifest: {e}"))?;
        let image = KernelBuild::from_json(&manifest["kernel"])
            .ok_or_else(|| format!("checkpoint '{name}': the manifest names no kernel"))?;
        let state = inspect(&disk_path).map_err(|e| format!("checkpoint '{name}': {e}"))?;
        if state.image.is_none() {
            return Err(format!(
                "checkpoint '{name}' holds no hibernation image (was it restored already?)"
            ));
        }
        if image != state.boot {
            return Err(format!(
                "checkpoint '{name}' was taken with kernel {image}, but its disk boots {}: \
                 the tenant could not resume; the server is left off and its disk untouched",
                state.boot
            ));
        }
        let tmp = disk.with_extension("restoring");
        std::fs::copy(&disk_path, &tmp).map_err(|e| format!("copying the checkpoint: {e}"))?;
        std::fs::rename(&tmp, disk).map_err(|e| format!("replacing the disk: {e}"))?;
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(sig: &[u8], first_map: u64) -> Vec<u8> {
        let mut h = vec![0u8; PAGE as usize];
        h[HEADER_IMAGE_AT..HEADER_IMAGE_AT + 8].copy_from_slice(&first_map.to_le_bytes());
        h[HEADER_SIG_AT..HEADER_SIG_AT + sig.len()].copy_from_slice(sig);
        h
    }

    #[test]
    fn the_image_header_gives_its_size() {
        let mut info = vec![0u8; PAGE as usize];
        info[INFO_PAGES_AT..INFO_PAGES_AT + 8].copy_from_slice(&1234u64.to_le_bytes());
        let mut map = vec![0u8; PAGE as usize];
        map[..8].copy_from_slice(&9u64.to_le_bytes());
        let pages = |n: u64| match n {
            5 => Ok(map.clone()),
            9 => Ok(info.clone()),
            _ => Err(format!("page {n}")),
        };
        assert_eq!(
            image_pages(&header(HIBERNATE_SIG, 5), pages).unwrap(),
            Some(1234)
        );
        // A plain swap space holds no image.
        assert_eq!(
            image_pages(&header(b"SWAPSPACE2", 5), |_| Err("read".into())).unwrap(),
            None
        );
        // A header pointing nowhere, or short pages, are errors.
        assert!(image_pages(&header(HIBERNATE_SIG, 77), pages).is_err());
        assert!(image_pages(&header(HIBERNATE_SIG, 5), |_| Ok(vec![1, 2])).is_err());
        assert!(image_pages(&[0; 100], pages).is_err());
    }

    #[test]
    fn the_bzimage_names_its_build() {
        let mut image = vec![0u8; 0x1000];
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x20e..0x210].copy_from_slice(&0x300u16.to_le_bytes());
        let s = b"7.3.0 (root@build) #1 SMP PREEMPT_DYNAMIC Wed Dec  2 10:00:00 UTC 2026\0";
        image[0x500..0x500 + s.len()].copy_from_slice(s);
        let build = bzimage_kernel(&image).unwrap();
        assert_eq!(build.release, "7.3.0");
        assert_eq!(
            build.version,
            "#1 SMP PREEMPT_DYNAMIC Wed Dec  2 10:00:00 UTC 2026"
        );
        image[0x20e..0x210].copy_from_slice(&0xfff0u16.to_le_bytes());
        assert!(bzimage_kernel(&image).is_err());
        assert!(bzimage_kernel(b"MZ").is_err());
    }

    #[test]
    fn syslinux_default_label_is_followed() {
        let cfg = "DEFAULT b\nLABEL a\n  LINUX /a\nLABEL b\n  LINUX /bzImage\n";
        assert_eq!(syslinux_kernel(cfg).as_deref(), Some("/bzImage"));
        assert_eq!(
            syslinux_kernel("LABEL x\n kernel /k\n").as_deref(),
            Some("/k")
        );
        assert_eq!(syslinux_kernel("PROMPT 0\n"), None);
    }

    #[test]
    fn partitions_come_from_the_mbr() {
        let mut mbr = [0u8; 512];
        assert!(mbr_partitions(&mbr).is_err());
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        mbr[446 + 4] = MBR_SWAP;
        mbr[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
        mbr[446 + 12..446 + 16].copy_from_slice(&100u32.to_le_bytes());
        let parts = mbr_partitions(&mbr).unwrap();
        assert_eq!(
            parts,
            vec![Partition {
                kind: MBR_SWAP,
                start: 2048 * 512,
                len: 51200
            }]
        );
    }

    #[test]
    fn names_stay_in_the_store() {
        let store = Store::new(PathBuf::from("/nonexistent"));
        for bad in ["", "../x", "a/b", ".hidden", &"x".repeat(65)] {
            assert!(store.paths(bad).is_err(), "{bad}");
        }
        assert!(store.paths("tenant-1.ckpt_2").is_ok());
        let err = store
            .restore("none", Path::new("/nonexistent/disk"))
            .unwrap_err();
        assert!(err.contains("no checkpoint 'none'"), "{err}");
    }
}
