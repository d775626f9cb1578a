// SPDX-License-Identifier: GPL-2.0

//! The two jobs of the cleanup system, over anything that reads and
//! writes like a block device (tests use files).

use std::io::{self, Read, Seek, SeekFrom, Write};

use sha2::{Digest, Sha256};

/// Bytes moved per read or write.
const CHUNK: usize = 1 << 20;

/// What an install wrote.
#[derive(Debug, PartialEq, Eq)]
pub struct Installed {
    /// Bytes of the image written to the disk.
    pub bytes: u64,
    /// SHA-256 of the image, as written and as read back.
    pub sha256: String,
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `image` (the raw disk image, already decompressed) to the start
/// of `disk`, then reads back what was written and checks it hashes the
/// same, and the same as `expected` when given.
pub fn install<D: Read + Write + Seek>(
    image: &mut impl Read,
    disk: &mut D,
    disk_bytes: u64,
    expected: Option<&str>,
) -> io::Result<Installed> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut bytes = 0u64;
    disk.seek(SeekFrom::Start(0))?;
    loop {
        let n = image.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if bytes + n as u64 > disk_bytes {
            return Err(io::Error::other(format!(
                "the image is larger than the disk ({disk_bytes} bytes)"
            )));
        }
        disk.write_all(&buf[..n])?;
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    disk.flush()?;
    let written = hex(&hasher.finalize());
    if let Some(expected) = expected {
        if expected != written {
            return Err(io::Error::other(format!(
                "the image's SHA-256 is {written}, the medium says {expected}"
            )));
        }
    }
    disk.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        disk.read_exact(&mut buf[..n])?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    let read_back = hex(&hasher.finalize());
    if read_back != written {
        return Err(io::Error::other(format!(
            "read back {read_back}, wrote {written}"
        )));
    }
    Ok(Installed {
        bytes,
        sha256: written,
    })
}

/// Overwrites all of `disk` with zeros: the fallback when the drive
/// cannot erase itself.
pub fn zero_fill<D: Write + Seek>(disk: &mut D, disk_bytes: u64) -> io::Result<()> {
    let zeros = vec![0u8; CHUNK];
    disk.seek(SeekFrom::Start(0))?;
    let mut left = disk_bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        disk.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    disk.flush()
}

/// What reading the whole disk back found.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// Blocks read.
    pub blocks: u64,
    /// Blocks with any byte that is not zero.
    pub nonzero_blocks: u64,
    /// The first of them, if any.
    pub first_nonzero: Option<u64>,
}

/// Reads every `block_size` block of `disk` and counts those not all zero.
pub fn verify_zero<D: Read + Seek>(
    disk: &mut D,
    disk_bytes: u64,
    block_size: u64,
) -> io::Result<Verified> {
    if block_size == 0
        || !(CHUNK as u64).is_multiple_of(block_size)
        || !disk_bytes.is_multiple_of(block_size)
    {
        return Err(io::Error::other(format!(
            "block size {block_size} does not divide the disk ({disk_bytes} bytes)"
        )));
    }
    let mut buf = vec![0u8; CHUNK];
    let mut result = Verified {
        blocks: 0,
        nonzero_blocks: 0,
        first_nonzero: None,
    };
    disk.seek(SeekFrom::Start(0))?;
    let mut left = disk_bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        disk.read_exact(&mut buf[..n])?;
        for block in buf[..n].chunks(block_size as usize) {
            if block.iter().any(|&b| b != 0) {
                result.nonzero_blocks += 1;
                result.first_nonzero.get_or_insert(result.blocks);
            }
            result.blocks += 1;
        }
        left -= n as u64;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn install_writes_and_reads_back_the_image() {
        let image: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i * 7) as u8).collect();
        let mut disk = Cursor::new(vec![0xffu8; 4 * CHUNK]);
        let got = install(&mut &image[..], &mut disk, 4 * CHUNK as u64, None).unwrap();
        assert_eq!(got.bytes, image.len() as u64);
        assert_eq!(&disk.get_ref()[..image.len()], &image[..]);
        // The hash the medium carries is checked.
        let mut disk = Cursor::new(vec![0u8; 4 * CHUNK]);
        let err = install(&mut &image[..], &mut disk, 4 * CHUNK as u64, Some("00")).unwrap_err();
        assert!(err.to_string().contains("the medium says 00"));
        install(
            &mut &image[..],
            &mut disk,
            4 * CHUNK as u64,
            Some(&got.sha256),
        )
        .unwrap();
    }

    #[test]
    fn an_image_larger_than_the_disk_is_refused() {
        let image = vec![1u8; 2 * CHUNK];
        let mut disk = Cursor::new(vec![0u8; CHUNK]);
        assert!(install(&mut &image[..], &mut disk, CHUNK as u64, None).is_err());
    }

    #[test]
    fn verify_finds_every_block_left_behind() {
        let bytes = 2 * CHUNK as u64;
        let mut data = vec![0u8; bytes as usize];
        let mut disk = Cursor::new(data.clone());
        let clean = verify_zero(&mut disk, bytes, 512).unwrap();
        assert_eq!(clean.blocks, bytes / 512);
        assert_eq!((clean.nonzero_blocks, clean.first_nonzero), (0, None));
        data[512 * 9 + 100] = 1;
        data[bytes as usize - 1] = 0x80;
        let mut disk = Cursor::new(data);
        let dirty = verify_zero(&mut disk, bytes, 512).unwrap();
        assert_eq!((dirty.nonzero_blocks, dirty.first_nonzero), (2, Some(9)));
        zero_fill(&mut disk, bytes).unwrap();
        assert_eq!(
            verify_zero(&mut disk, bytes, 512).unwrap().nonzero_blocks,
            0
        );
        assert!(verify_zero(&mut disk, bytes, 0).is_err());
    }
}
