// SPDX-License-Identifier: GPL-2.0

//! A guest that programs BAR0 and writes descriptors at random: the device
//! must stop on bad ones, never touch memory outside guest RAM, never panic.

#![no_main]

use std::fs::File;
use std::sync::OnceLock;

use bmgnic_model::device::{Bmgnic, DeviceConfig};
use libfuzzer_sys::fuzz_target;

const MEM: u64 = 0x1_0000;

/// One guest RAM file for the whole run (reset between inputs).
fn ram() -> &'static File {
    static RAM: OnceLock<File> = OnceLock::new();
    RAM.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("bmgnic-fuzz-ram-{}", std::process::id()));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("guest RAM file");
        let _ = std::fs::remove_file(&path);
        f
    })
}

fuzz_target!(|data: &[u8]| {
    let file = ram();
    let _ = file.set_len(0);
    let _ = file.set_len(MEM);
    let Ok(file) = file.try_clone() else { return };
    let mut dev = Bmgnic::new(DeviceConfig { table_size: 16 });
    dev.rme.open();
    if dev.memory_mut().map(0x1000, MEM, 0, file).is_err() {
        return;
    }
    let mut out = Vec::new();
    let mut now = 0u64;
    // Operations of 8 bytes: opcode, then arguments.
    for op in data.chunks_exact(8) {
        now += 1000;
        let arg = u32::from_le_bytes([op[4], op[5], op[6], op[7]]);
        let reg = u64::from(u16::from_le_bytes([op[2], op[3]]) & 0x0ffc);
        match op[0] % 5 {
            0 => {
                dev.bar0_write(reg, &arg.to_le_bytes(), now);
            }
            1 => {
                let mut b = [0u8; 4];
                dev.bar0_read(reg, &mut b);
            }
            2 => {
                // Guest memory write: 4 bytes at an address in or near RAM.
                let addr = u64::from(u16::from_le_bytes([op[1], op[2]])) << 2;
                let _ = dev.memory_mut().write(addr, &op[4..8]);
            }
            3 => {
                dev.process_tx(now, &mut out);
                out.clear();
            }
            _ => {
                let len = usize::from(op[1]) * 8;
                let frame: Vec<u8> = data.iter().copied().cycle().take(len).collect();
                dev.receive(&frame, now);
            }
        }
        dev.poll_interrupts(now);
    }
});
