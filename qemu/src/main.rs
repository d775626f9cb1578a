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

use bmgnic_model::port::{remove_stale, Port, PortSpec, MAX_FRAME};
use bmgnic_model::vfio::{self, Function};
use clap::Parser;
use log::{debug, error, info, warn};
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
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log_level: log::LevelFilter,
}

fn start_port(name: &'static str, spec: &PortSpec) -> Result<Port, String> {
    let port = Port::bind(name, spec)
        .map_err(|e| format!("{name} port: cannot bind {}: {e}", spec.local.display()))?;
    let rx = port.try_clone().map_err(|e| format!("{name} port: {e}"))?;
    info!(
        "{name} port: {} -> {}",
        spec.local.display(),
        spec.remote.display()
    );
    thread::Builder::new()
        .name(format!("{name}-rx"))
        .spawn(move || {
            let mut buf = vec![0u8; MAX_FRAME];
            loop {
                match rx.recv(&mut buf) {
                    Ok(len) => debug!("{} port: received {len}-byte frame", rx.name()),
                    Err(e) => {
                        warn!("{} port: receive failed: {e}", rx.name());
                        return;
                    }
                }
            }
        })
        .map_err(|e| format!("{name} port: cannot start thread: {e}"))?;
    Ok(port)
}

fn run(args: &Args) -> Result<(), String> {
    if args.table_size == 0 {
        return Err("--table-size must be at least 1".into());
    }
    remove_stale(&args.socket).map_err(|e| format!("--socket: {e}"))?;
    let mut paths = vec![args.socket.clone()];
    let mut ports = Vec::new();
    if let Some(spec) = &args.fabric {
        ports.push(start_port("fabric", spec)?);
        paths.push(spec.local.clone());
    }
    if let Some(spec) = &args.ncsi {
        ports.push(start_port("ncsi", spec)?);
        paths.push(spec.local.clone());
    }

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

    info!(
        "BMGNIC {:04x}:{:04x}, flow table {} entries",
        bmgnic_model::regs::PCI_VENDOR_ID,
        bmgnic_model::regs::PCI_DEVICE_ID,
        args.table_size
    );
    let mut function = Function::new();
    let result = vfio::serve(&args.socket, &mut function);
    info!(
        "guest writes to read-only registers: {}",
        function.device().guest_ro_writes()
    );
    for p in &paths {
        let _ = std::fs::remove_file(p);
    }
    drop(ports);
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
