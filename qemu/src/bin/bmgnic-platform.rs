// SPDX-License-Identifier: GPL-2.0

//! `bmgnic-platform`: the server's board as its BMC sees it
//! (Documentation/bmgnic/platform.rst). Owns the server VM's QEMU and
//! serves the platform channel the RME's virtio-serial port connects to.
//!
//! ```text
//! bmgnic-platform --channel /run/platform.sock --qmp /run/server.qmp \
//!     --disk disk.img --media-dir media/ --power-on -- qemu-system-x86_64 ...
//! ```

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use bmgnic_model::platform::{channel, Board, BoardConfig};
use clap::Parser;
use log::{error, info};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The emulated server board a BMC controls.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Unix socket the platform channel listens on.
    #[arg(long)]
    channel: PathBuf,
    /// Where the server's QEMU opens its QMP socket.
    #[arg(long)]
    qmp: PathBuf,
    /// The file the server's serial console goes to (QEMU writes it; the
    /// `console` request reads it).
    #[arg(long)]
    console: Option<PathBuf>,
    /// The server's NVMe disk: a raw image.
    #[arg(long)]
    disk: Option<PathBuf>,
    /// The directory virtual media images are taken from.
    #[arg(long)]
    media_dir: Option<PathBuf>,
    /// Where the server's QEMU opens the tenant's guest agent channel.
    #[arg(long)]
    guest_agent: Option<PathBuf>,
    /// Provider storage: the directory checkpoints are kept in, shared
    /// by the boards a tenant may move between.
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// The provisioning network's boot server root (TFTP), holding
    /// `boot.ipxe`: gives the server a provisioning port, cabled for the
    /// boots whose source is `pxe`.
    #[arg(long)]
    netboot_dir: Option<PathBuf>,
    /// Power the server on at once.
    #[arg(long)]
    power_on: bool,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log_level: log::LevelFilter,
    /// QEMU's program and the server's arguments.
    #[arg(last = true, required = true)]
    qemu: Vec<String>,
}

fn run(args: Args) -> Result<(), String> {
    let _ = std::fs::remove_file(&args.channel);
    let listener = UnixListener::bind(&args.channel)
        .map_err(|e| format!("cannot listen on {}: {e}", args.channel.display()))?;
    let board = Arc::new(Mutex::new(Board::new(BoardConfig {
        qemu: args.qemu,
        qmp: args.qmp,
        console: args.console,
        disk: args.disk,
        media_dir: args.media_dir,
        guest_agent: args.guest_agent,
        checkpoints: args.checkpoint_dir,
        netboot: args.netboot_dir,
    })));
    if args.power_on {
        board
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .power_on()?;
    }
    // SIGTERM/SIGINT: the board loses its power, the server's with it.
    let mut signals = Signals::new([SIGTERM, SIGINT])
        .map_err(|e| format!("cannot install signal handler: {e}"))?;
    let on_signal = board.clone();
    let channel_path = args.channel.clone();
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            info!("signal {sig}: powering off");
            let mut board = on_signal.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = board.force_off();
            let _ = std::fs::remove_file(board.qmp_path());
            let _ = std::fs::remove_file(&channel_path);
            std::process::exit(0);
        }
    });
    info!("platform channel on {}", args.channel.display());
    channel::serve(board, listener);
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    env_logger::Builder::new()
        .filter_level(args.log_level)
        .format_target(false)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}
