// SPDX-License-Identifier: GPL-2.0

//! Lines from the RME on the platform channel, at random: every one gets
//! an answer with `ok` set, never a panic. The board has no QEMU to start
//! (its program does not exist), so power requests fail fast.

#![no_main]

use bmgnic_model::platform::{channel, Board, BoardConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut board = Board::new(BoardConfig {
        qemu: vec!["/nonexistent/bmgnic-fuzz-qemu".into()],
        qmp: "/nonexistent/bmgnic-fuzz.qmp".into(),
        console: None,
        disk: None,
        media_dir: None,
        guest_agent: None,
        checkpoints: None,
        netboot: None,
    });
    for line in data.split(|&b| b == b'\n') {
        let answer = channel::answer(&mut board, line);
        assert!(answer["ok"].is_boolean());
    }
});
