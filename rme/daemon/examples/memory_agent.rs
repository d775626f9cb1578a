// SPDX-License-Identifier: GPL-2.0

//! The OpenFlow agent over an in-memory module, for testing the agent
//! against a real controller without a NIC
//! (`tools/testing/openflow/agent_live.py` runs it against os-ken):
//!
//!   memory_agent CONTROLLER...
//!
//! Every rule that allows or encapsulates counts one 100-byte packet a
//! second. A UDP flow to port 5201 from the host misses every second
//! until a rule matches it: the module reports each miss, and whether a
//! rule served it, as `bmgnic_rme` does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bmgnic_rmed::agent::{Agent, Target};
use bmgnic_rmed::rme::{FlowAction, FlowMatch, IpPrefix, MemoryRme, RmeEvent};
use bmgnic_rmed::switch::{Identity, Switch};

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let targets: Vec<Target> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let mut memory = MemoryRme::new(1024);
    memory.dev.guest_mac = [0x52, 0x54, 0, 0xb0, 0, 1];
    let rme = Arc::new(Mutex::new(memory));
    let identity = Identity {
        datapath_id: 0x5254_00b0_0001,
        vteps: vec![1],
        serial: "memory".into(),
    };
    let agent = Agent::new(Switch::new(rme.clone(), identity, None));
    let traffic = rme.clone();
    let miss = FlowMatch {
        in_port: Some(0),
        eth_src: Some(([0x52, 0x54, 0, 0xb0, 0, 1], [0xff; 6])),
        eth_dst: Some(([2, 0, 0, 0, 0, 2], [0xff; 6])),
        ethertype: Some(0x0800),
        ip_proto: Some(17),
        ip_src: Some(IpPrefix {
            addr: [10, 0, 0, 1],
            len: 32,
        }),
        ip_dst: Some(IpPrefix {
            addr: [10, 0, 0, 2],
            len: 32,
        }),
        l4_src: Some(40000),
        l4_dst: Some(5201),
        ..Default::default()
    };
    agent.start_background(Some(Box::new(move || {
        std::thread::sleep(Duration::from_secs(1));
        let mut m = traffic.lock().unwrap_or_else(|e| e.into_inner());
        let ids: Vec<u32> = m
            .rules
            .iter()
            .filter(|(_, r)| r.0.action != FlowAction::Drop)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            m.hit(id, 1, 100);
        }
        let installed = m
            .rules
            .values()
            .any(|r| r.0.matching.l4_dst == Some(5201) && r.0.matching.ip_proto == Some(17));
        Some(RmeEvent::TableMiss {
            count: 1,
            matching: miss,
            installed,
        })
    })));
    if let Err(e) = agent.run(&targets) {
        eprintln!("memory_agent: {e}");
        std::process::exit(1);
    }
}
