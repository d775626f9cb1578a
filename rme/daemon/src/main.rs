// SPDX-License-Identifier: GPL-2.0

//! bmgnic-rmed: the RME daemon. Runs on the RME's Linux beside
//! `bmgnic_rme` and speaks OpenFlow 1.3 to the cloud's SDN controller as
//! the switch side of the BMGNIC (Documentation/bmgnic/openflow.rst).

use std::net::Ipv4Addr;

use bmgnic_rmed::agent::{Agent, Target};
use bmgnic_rmed::mapping::TUNNEL_PORT_BASE;
use bmgnic_rmed::nl::Netlink;
use bmgnic_rmed::platform::{ChannelPlatform, DEFAULT_CHANNEL};
use bmgnic_rmed::redfish::{self, auth, Service};
use bmgnic_rmed::rme::{IdentityConfig, Provisioning, Rme, VtepConfig};
use bmgnic_rmed::switch::{Identity, Switch};
use clap::Parser;

/// A MAC address, `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, Debug)]
struct Mac([u8; 6]);

impl std::str::FromStr for Mac {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(format!("{s}: expected a MAC address"));
        }
        for (o, p) in out.iter_mut().zip(parts) {
            *o = u8::from_str_radix(p, 16).map_err(|_| format!("{s}: expected a MAC address"))?;
        }
        Ok(Mac(out))
    }
}

/// A VTEP: `MAC,IP`, or `INDEX=MAC,IP` for a remote one.
#[derive(Clone, Copy, Debug)]
struct Vtep {
    index: u8,
    mac: Mac,
    ip: Ipv4Addr,
}

impl std::str::FromStr for Vtep {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (index, rest) = match s.split_once('=') {
            Some((i, rest)) => (i.parse().map_err(|_| format!("{s}: bad VTEP index"))?, rest),
            None => (0, s),
        };
        let (mac, ip) = rest
            .split_once(',')
            .ok_or_else(|| format!("{s}: expected [INDEX=]MAC,IP"))?;
        Ok(Vtep {
            index,
            mac: mac.parse()?,
            ip: ip.parse().map_err(|_| format!("{s}: bad IPv4 address"))?,
        })
    }
}

#[derive(Parser, Debug)]
#[command(
    version,
    about = "The RME daemon: OpenFlow 1.3 switch agent of the BMGNIC and Redfish service"
)]
#[command(group(clap::ArgGroup::new("serve").required(true).multiple(true).args(["controllers", "redfish"])))]
struct Args {
    /// Where to meet controllers: tcp:HOST:PORT (connect, reconnecting)
    /// and/or ptcp:PORT[:ADDR] (listen). Repeatable.
    #[arg(long = "controller")]
    controllers: Vec<Target>,
    /// Serve Redfish over HTTPS on ADDR:PORT (e.g. 0.0.0.0:8443).
    #[arg(long)]
    redfish: Option<std::net::SocketAddr>,
    /// Redfish accounts: `user:role:password` lines (Administrator,
    /// Operator, ReadOnly). Required with --redfish.
    #[arg(long, requires = "redfish")]
    redfish_accounts: Option<std::path::PathBuf>,
    /// Keep the accounts the AccountService manages in this file, across
    /// restarts (as a BMC keeps its users on its flash): made from
    /// --redfish-accounts the first time, read from then on.
    #[arg(long, requires = "redfish")]
    redfish_state: Option<std::path::PathBuf>,
    /// The platform channel (Documentation/bmgnic/platform.rst): a
    /// character device or a unix socket.
    #[arg(long, default_value = DEFAULT_CHANNEL)]
    platform: std::path::PathBuf,
    /// PEM certificate chain for Redfish; self-signed if not given.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Write the certificate in use (PEM) here, for clients to verify.
    #[arg(long)]
    tls_cert_out: Option<std::path::PathBuf>,
    /// The erase medium (the cleanup system's ISO) in the platform's media
    /// directory, which Drive.SecureErase boots.
    #[arg(long, default_value = bmgnic_rmed::redfish::tasks::ERASE_MEDIA)]
    erase_media: String,
    /// Another name (DNS or IP) of the self-signed certificate. Repeatable.
    #[arg(long = "redfish-san")]
    redfish_sans: Vec<String>,
    /// Datapath ID; by default derived from the guest's MAC.
    #[arg(long)]
    datapath_id: Option<u64>,
    /// Provisioning: the guest's MAC, which the NIC lets it send from.
    #[arg(long)]
    guest_mac: Option<Mac>,
    /// Provisioning: an IPv4 address the guest may send from. Repeatable.
    #[arg(long = "guest-ip")]
    guest_ips: Vec<Ipv4Addr>,
    /// Provisioning: the guest's MTU cap.
    #[arg(long, default_value_t = 1500)]
    mtu_cap: u32,
    /// This server's VTEP, MAC,IP: provisioned for the controller, and
    /// the one a tenant restored here (Redfish) sends from.
    #[arg(long)]
    local_vtep: Option<Vtep>,
    /// Provisioning: remote VTEP INDEX=MAC,IP, shown as tunnel port
    /// 1000 + INDEX. Repeatable.
    #[arg(long = "vtep")]
    vteps: Vec<Vtep>,
    /// A remote VTEP the RME configured otherwise, shown as tunnel port
    /// 1000 + INDEX. Repeatable.
    #[arg(long = "tunnel-port")]
    tunnel_ports: Vec<u8>,
}

/// The provisioning the RME was given: identity and VTEPs are the
/// cloud's, not the controller's.
fn provisioning(args: &Args) -> Provisioning {
    Provisioning {
        identity: args.guest_mac.map(|mac| IdentityConfig {
            mac: mac.0,
            mtu_cap: args.mtu_cap,
            ipv4: args.guest_ips.clone(),
            ipv6: Vec::new(),
        }),
        local_vtep: args.local_vtep.map(|v| (v.mac.0, v.ip)),
        vteps: args
            .vteps
            .iter()
            .map(|v| VtepConfig {
                index: v.index,
                mac: v.mac.0,
                ip: v.ip,
            })
            .collect(),
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("bmgnic-rmed: {what}: {e}");
    std::process::exit(1);
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let mut rme = Netlink::open().unwrap_or_else(|e| fail("opening the module", e));
    let provisioning = provisioning(&args);
    if !args.controllers.is_empty() {
        // The provisioning is the OpenFlow switch's starting point; a
        // Redfish-only RME leaves the NIC as it is. The VNI comes with the
        // controller's first tunnel_id.
        rme.provision(&provisioning, 0)
            .unwrap_or_else(|e| fail("provisioning", e));
    }
    let dev = rme.dev_get().unwrap_or_else(|e| fail("reading the NIC", e));
    let datapath_id = args.datapath_id.unwrap_or_else(|| {
        dev.guest_mac
            .iter()
            .fold(0u64, |id, &b| id << 8 | u64::from(b))
    });
    let mut vteps: Vec<u8> = args.vteps.iter().map(|v| v.index).collect();
    vteps.extend(&args.tunnel_ports);
    vteps.sort_unstable();
    vteps.dedup();
    log::info!(
        "datapath {datapath_id:016x}; tunnel ports {:?}",
        vteps
            .iter()
            .map(|&v| TUNNEL_PORT_BASE + u32::from(v))
            .collect::<Vec<_>>()
    );
    let identity = Identity {
        datapath_id,
        vteps,
        serial: format!("{datapath_id:016x}"),
    };
    if let Some(addr) = args.redfish {
        let Some(path) = &args.redfish_accounts else {
            fail("--redfish", "needs --redfish-accounts");
        };
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| fail(&format!("reading {}", path.display()), e));
        let accounts =
            auth::parse_accounts(&text).unwrap_or_else(|e| fail(&path.display().to_string(), e));
        // The Redfish side gets a netlink socket of its own, so it never
        // waits on the agent's. It names no rule of the module's, so its
        // requests simply go to a reloaded module.
        let nl = Netlink::open()
            .unwrap_or_else(|e| fail("opening the module", e))
            .resend_after_reload();
        let platform = ChannelPlatform::new(&args.platform, std::time::Duration::from_secs(10));
        let mut svc = Service::new(Box::new(platform), Box::new(nl), accounts)
            .with_erase_media(args.erase_media.clone())
            .with_local_vtep(args.local_vtep.map(|v| (v.mac.0, v.ip)));
        if let Some(store) = &args.redfish_state {
            svc = svc
                .with_account_store(store)
                .unwrap_or_else(|e| fail("--redfish-state", e));
        }
        let cfg = redfish::Config {
            addr: Some(addr),
            cert_key: args.tls_cert.clone().zip(args.tls_key.clone()),
            cert_out: args.tls_cert_out.clone(),
            sans: args.redfish_sans.clone(),
        };
        redfish::spawn(cfg, std::sync::Arc::new(svc)).unwrap_or_else(|e| fail("redfish", e));
    }
    if args.controllers.is_empty() {
        // Redfish only: its thread serves; this one has nothing to do.
        loop {
            std::thread::park();
        }
    }
    let agent = Agent::new(Switch::new(rme, identity, None).with_provisioning(provisioning));
    match Netlink::events() {
        Ok(mut events) => agent.start_background(Some(Box::new(move || events.next_event()))),
        Err(e) => {
            log::warn!("no module events (no PACKET_IN): {e}");
            agent.start_background(None);
        }
    }
    agent
        .run(&args.controllers)
        .unwrap_or_else(|e| fail("serving controllers", e));
}
