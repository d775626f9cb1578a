// SPDX-License-Identifier: GPL-2.0

//! `bmgnic-model`: serves the emulated BMGNIC to QEMU over vfio-user.
//!
//! ```text
//! bmgnic-model --socket /run/bmgnic.sock \
//!     --fabric local=/run/fab.model,remote=/run/fab.peer \
//!     --ncsi local=/run/ncsi.model,remote=/run/ncsi.rme
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;

use bmgnic_model::device::DeviceConfig;
use bmgnic_model::engine::{Engine, Function};
use bmgnic_model::port::{remove_stale, Port, PortSpec};
use bmgnic_model::vfio;
use clap::Parser;
use log::{error, info};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Emulated BMGNIC device model (vfio-user server).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// vfio-user socket QEMU's vfio-user-pci connects to.
    #[arg(long)]
    socket: PathBuf,
    /// Fabric port: unix datagram sockets, `local=PATH,remote=PATH`.
    #[arg(long)]
    fabric: Option<PortSpec>,
    /// NC-SI sideband port to the RME: `local=PATH,remote=PATH`.
    #[arg(long)]
    ncsi: Option<PortSpec>,
    /// Flow table entries in the NIC.
    #[arg(long, default_value_t = 4096)]
    table_size: usize,
    /// MAC address of the guest (the RME's identity replaces it).
    #[arg(long, default_value = "52:54:00:b0:00:01")]
    mac: String,
    /// Start open: no anti-spoofing and table misses pass, until the RME
    /// sets an identity (for use without an RME).
    #[arg(long)]
    open: bool,
    /// Stay on across host power cycles, as a NIC on auxiliary power:
    /// when QEMU disconnects, reset the host side (keeping the RME's
    /// configuration) and serve the next QEMU that connects.
    #[arg(long)]
    aux_power: bool,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log_level: log::LevelFilter,
}

fn bind_port(name: &'static str, spec: &PortSpec) -> Result<Port, String> {
    let port = Port::bind(name, spec)
        .map_err(|e| format!("{name} port: cannot bind {}: {e}", spec.local.display()))?;
    info!(
        "{name} port: {} -> {}",
        spec.local.display(),
        spec.remote.display()
    );
    Ok(port)
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("bad MAC address '{s}'"));
    }
    for (byte, part) in mac.iter_mut().zip(parts) {
        *byte = u8::from_str_radix(part, 16).map_err(|_| format!("bad MAC address '{s}'"))?;
    }
    Ok(mac)
}

fn run(args: &Args) -> Result<(), String> {
    if args.table_size == 0 || args.table_size > 1 << 20 {
        return Err("--table-size must be between 1 and 1048576".into());
    }
    remove_stale(&args.socket).map_err(|e| format!("--socket: {e}"))?;
    let mut paths = vec![args.socket.clone()];
    let fabric = match &args.fabric {
        Some(spec) => {
            paths.push(spec.local.clone());
            Some(bind_port("fabric", spec)?)
        }
        None => None,
    };
    let sideband = match &args.ncsi {
        Some(spec) => {
            paths.push(spec.local.clone());
            Some(bind_port("ncsi", spec)?)
        }
        None => None,
    };

    // SIGTERM/SIGINT: remove our sockets and exit; QEMU sees a disconnect.
    let mut signals = Signals::new([SIGTERM, SIGINT])
        .map_err(|e| format!("cannot install signal handler: {e}"))?;
    let cleanup_paths = paths.clone();
    thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            info!("signal {sig}: shutting down");
            for p in &cleanup_paths {
                let _ = std::fs::remove_file(p);
            }
            std::process::exit(0);
        }
    });

    let guest_mac = parse_mac(&args.mac)?;
    let mut sideband_mac = guest_mac;
    // The sideband is another port of the NIC: its own, locally administered MAC.
    sideband_mac[0] |= 0x02;
    sideband_mac[5] ^= 0x80;
    let config = DeviceConfig {
        table_size: args.table_size,
    };
    let engine = Engine::new(config, fabric, sideband, sideband_mac);
    engine.device().rme.set_factory_mac(guest_mac);
    if args.open {
        info!("open device: no isolation until the RME configures it");
        engine.device().rme.open();
    }
    engine
        .start()
        .map_err(|e| format!("cannot start device threads: {e}"))?;
    info!(
        "BMGNIC {:04x}:{:04x}, flow table {} entries",
        bmgnic_model::regs::PCI_VENDOR_ID,
        bmgnic_model::regs::PCI_DEVICE_ID,
        args.table_size
    );
    let mut function = Function::new(engine.clone());
    let result = vfio::serve(&args.socket, &mut function, |function| {
        if args.aux_power {
            info!("host powered off; the NIC stays on auxiliary power");
            function.host_power_lost();
        }
        args.aux_power
    });
    engine.shutdown();
    {
        let dev = engine.device();
        let names = bmgnic_model::regs::guest::STAT_NAMES;
        let stats: Vec<String> = names
            .iter()
            .zip(dev.stats())
            .filter(|(_, v)| **v != 0)
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        info!("final counters: {}", stats.join(" "));
    }
    for p in &paths {
        let _ = std::fs::remove_file(p);
    }
    result
}

fn main() -> ExitCode {
    let args = Args::parse();
    env_logger::Builder::new()
        .filter_level(args.log_level)
        .format_target(false)
        .init();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}
