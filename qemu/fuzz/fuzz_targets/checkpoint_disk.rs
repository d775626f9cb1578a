// SPDX-License-Identifier: GPL-2.0

//! What the board reads of a tenant's disk before it stores or restores a
//! checkpoint: the tenant wrote all of it, so none of it may crash the
//! board. The input is split into an MBR sector, a swap header, a page
//! store the header points into, a syslinux.cfg and a bzImage.

#![no_main]

use bmgnic_model::platform::checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mbr, rest) = data.split_at(data.len().min(512));
    let _ = checkpoint::mbr_partitions(mbr);
    let (header, rest) = rest.split_at(rest.len().min(4096));
    let mut page = header.to_vec();
    page.resize(4096, 0);
    let (pages, rest) = rest.split_at(rest.len().min(3 * 4096));
    let _ = checkpoint::image_pages(&page, |n| {
        let at = usize::try_from(n).ok().and_then(|n| n.checked_mul(4096));
        match at.and_then(|at| pages.get(at..at + 4096)) {
            Some(p) => Ok(p.to_vec()),
            None => Err("outside".into()),
        }
    });
    let (cfg, image) = rest.split_at(rest.len().min(256));
    let _ = checkpoint::syslinux_kernel(&String::from_utf8_lossy(cfg));
    let _ = checkpoint::bzimage_kernel(image);
});
