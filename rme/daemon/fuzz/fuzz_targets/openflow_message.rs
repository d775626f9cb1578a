// SPDX-License-Identifier: GPL-2.0

//! OpenFlow messages from a hostile controller or a man in the middle on
//! the management network: the stream is cut into messages as the agent
//! cuts it, each is decoded, and whatever decodes must encode to bytes
//! that decode again to the same encoding (no panic, no drift).

#![no_main]

use bmgnic_rmed::openflow::message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Some(Ok(len)) = message::frame_len(rest) {
        if len > rest.len() {
            break;
        }
        let (one, tail) = rest.split_at(len);
        rest = tail;
        match message::decode(one) {
            Ok((xid, m)) => {
                let Some(first) = message::encode(xid, &m) else {
                    continue;
                };
                let (xid2, again) = message::decode(&first).expect("our own encoding decodes");
                assert_eq!(xid2, xid);
                assert_eq!(message::encode(xid, &again), Some(first));
            }
            Err((xid, e)) => {
                let reply = message::error_for(one, e);
                assert!(message::encode(xid, &reply).is_some());
            }
        }
    }
});
