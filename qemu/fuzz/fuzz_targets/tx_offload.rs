// SPDX-License-Identifier: GPL-2.0

//! A guest's frame with offload fields at random: checksum insertion and
//! TCP segmentation must refuse what they cannot do, never panic, and
//! never make a segment longer than the limit they were given.

#![no_main]

use bmgnic_model::offload::{insert_checksum, segment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [a, b, c, d, e, frame @ ..] = data else {
        return;
    };
    let field = u16::from_le_bytes([*a, *b]);
    let max_len = usize::from(u16::from_le_bytes([*c, *d]));
    let mut scratch = Vec::new();
    let mut sent = 0usize;
    let made = segment(frame, field, max_len, &mut scratch, |s| {
        assert!(
            s.len() <= max_len,
            "a segment of {} bytes past {max_len}",
            s.len()
        );
        sent += 1;
    });
    if let Ok(made) = made {
        assert_eq!(made, sent);
    } else {
        assert_eq!(sent, 0, "a refused frame sent segments");
    }
    let mut frame = frame.to_vec();
    let before = frame.clone();
    if insert_checksum(&mut frame, field, *e).is_err() {
        assert_eq!(frame, before, "a refused checksum changed the frame");
    }
});
