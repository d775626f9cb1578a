// SPDX-License-Identifier: GPL-2.0

//! Guest and fabric frames through the parser and both pipelines.

#![no_main]

use bmgnic_model::ncsi_oem::{self as oem, FlowKey, FlowRecord, Record, TenantRecord};
use bmgnic_model::packet;
use bmgnic_model::pipeline;
use bmgnic_model::rme::RmeBank;
use libfuzzer_sys::fuzz_target;

fn set<R: Record>(rme: &mut RmeBank, object: u8, r: &R) {
    let _ = rme.apply(object, std::slice::from_ref(r), 0);
}

fuzz_target!(|data: &[u8]| {
    let _ = packet::parse(data, oem::PORT_GUEST);
    let _ = packet::parse(data, oem::PORT_FABRIC);

    let mut open = RmeBank::new(16);
    open.open();
    let mut secure = RmeBank::new(16);
    set(
        &mut secure,
        oem::OBJ_TENANT,
        &TenantRecord {
            vni: 7,
            local_mac: [2, 0, 0, 0, 0, 1],
            local_ip: [192, 168, 0, 1],
        },
    );
    let mask = FlowKey {
        ethertype: 0xffff,
        ..FlowKey::default()
    };
    let key = FlowKey {
        ethertype: 0x0800,
        ..FlowKey::default()
    };
    let flow = FlowRecord {
        slot: 0,
        priority: 1,
        action: oem::ACTION_ENCAP,
        meter: oem::NO_METER,
        vtep: 0,
        key,
        mask,
    };
    set(&mut secure, oem::OBJ_FLOW, &flow);
    let mut out = Vec::new();
    let mut events = Vec::new();
    for rme in [&mut open, &mut secure] {
        let _ = pipeline::transmit(rme, data, 1, &mut out, &mut events);
        if let Ok(range) = pipeline::receive(rme, data, 1, &mut events) {
            assert!(range.end <= data.len());
        }
    }
});
