// SPDX-License-Identifier: GPL-2.0

//! bmgnic-rmed: the RME daemon. Runs on the RME's Linux beside
//! `bmgnic_rme` and speaks OpenFlow 1.3 to the cloud's SDN controller as
//! the switch side of the BMGNIC (Documentation/bmgnic/openflow.rst).

use bmgnic_rmed::agent::{Agent, Target};
use bmgnic_rmed::nl::Netlink;
use bmgnic_rmed::rme::Rme;
use bmgnic_rmed::switch::{Identity, Switch};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "The RME daemon: OpenFlow 1.3 switch agent of the BMGNIC"
)]
struct Args {
    /// Where to meet controllers: tcp:HOST:PORT (connect, reconnecting)
    /// and/or ptcp:PORT[:ADDR] (listen). Repeatable.
    #[arg(long = "controller", required = true)]
    controllers: Vec<Target>,
    /// Datapath ID; by default derived from the guest's MAC.
    #[arg(long)]
    datapath_id: Option<u64>,
    /// Remote VTEP indices the RME configured, shown as tunnel ports
    /// 1000 + index. Repeatable.
    #[arg(long = "tunnel-port")]
    tunnel_ports: Vec<u8>,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let mut rme = match Netlink::open() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("bmgnic-rmed: {e}");
            std::process::exit(1);
        }
    };
    let dev = match rme.dev_get() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("bmgnic-rmed: reading the NIC: {e}");
            std::process::exit(1);
        }
    };
    let datapath_id = args.datapath_id.unwrap_or_else(|| {
        dev.guest_mac
            .iter()
            .fold(0u64, |id, &b| id << 8 | u64::from(b))
    });
    let identity = Identity {
        datapath_id,
        vteps: args.tunnel_ports,
        serial: format!("{datapath_id:016x}"),
    };
    let agent = Agent::new(Switch::new(rme, identity, None));
    match Netlink::events() {
        Ok(mut events) => agent.start_background(Some(Box::new(move || events.next_event()))),
        Err(e) => {
            log::warn!("no module events (no PACKET_IN): {e}");
            agent.start_background(None);
        }
    }
    if let Err(e) = agent.run(&args.controllers) {
        eprintln!("bmgnic-rmed: {e}");
        std::process::exit(1);
    }
}
