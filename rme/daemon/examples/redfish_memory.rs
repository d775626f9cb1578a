// SPDX-License-Identifier: GPL-2.0

//! The Redfish service over an in-memory module and platform, for
//! host-side tests with real clients (tools/testing/redfish/host.py) and
//! for trying it by hand: no VM, no NIC.
//!
//! Usage: redfish_memory ADDR:PORT ACCOUNTS_FILE CERT_OUT [--state FILE] [IMAGE...]
//! It prints "listening on ADDR" once it serves. IMAGEs are the names the
//! in-memory media directory holds (any name if none are given); with
//! --state the accounts are kept in FILE across restarts, as the daemon's
//! --redfish-state keeps them.

use std::sync::Arc;

use bmgnic_rmed::platform::MemoryPlatform;
use bmgnic_rmed::redfish::{self, auth, Config, Service};
use bmgnic_rmed::rme::MemoryRme;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!(
            "usage: redfish_memory ADDR:PORT ACCOUNTS_FILE CERT_OUT [--state FILE] [IMAGE...]"
        );
        std::process::exit(2);
    }
    let fail = |e: String| -> ! {
        eprintln!("redfish_memory: {e}");
        std::process::exit(1)
    };
    let addr = args[0]
        .parse()
        .unwrap_or_else(|e| fail(format!("{}: {e}", args[0])));
    let text =
        std::fs::read_to_string(&args[1]).unwrap_or_else(|e| fail(format!("{}: {e}", args[1])));
    let accounts =
        auth::parse_accounts(&text).unwrap_or_else(|e| fail(format!("{}: {e}", args[1])));
    let mut rme = MemoryRme::new(64);
    rme.dev.guest_mac = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];
    let (store, images) = match &args[3..] {
        [flag, file, images @ ..] if flag == "--state" => (Some(file), images),
        images => (None, images),
    };
    let mut platform = MemoryPlatform::new(8 << 30);
    platform.images = images.to_vec();
    let mut svc = Service::new(Box::new(platform), Box::new(rme), accounts);
    if let Some(file) = store {
        svc = svc
            .with_account_store(std::path::Path::new(file))
            .unwrap_or_else(|e| fail(format!("--state {file}: {e}")));
    }
    let svc = Arc::new(svc);
    let cfg = Config {
        addr: Some(addr),
        cert_out: Some(args[2].clone().into()),
        ..Default::default()
    };
    let local = redfish::spawn(cfg, svc).unwrap_or_else(|e| fail(e));
    println!("listening on {local}");
    loop {
        std::thread::park();
    }
}
