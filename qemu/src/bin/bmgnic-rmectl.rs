// SPDX-License-Identifier: GPL-2.0

//! `bmgnic-rmectl`: a host-side NC-SI client for a model's sideband socket.
//!
//! It stands in for the RME where tests and developers want to reach the
//! RME bank without the RME VM: it speaks DSP0222 framing and the BMGNIC
//! OEM commands, with the layouts of `rme/ncsi_oem.rs`.
//!
//! ```text
//! bmgnic-rmectl --local /run/rme.sock --remote /run/model.ncsi \
//!     init \
//!     identity mac=52:54:00:b0:00:01 mtu_cap=9000 ipv4=10.0.0.1 \
//!     tenant vni=5001 local_mac=02:00:00:00:00:01 local_ip=192.168.0.1 \
//!     policy quarantined=0 miss=allow \
//!     dump
//! ```
//!
//! Each command runs in order; `dump` prints the RME bank, one object per
//! line, in a stable `name key=value ...` form.
//!
//! `bench-flows count=N batch=B` measures how fast flow entries install:
//! it sets `N` distinct exact IPv4/UDP allow entries in slots `0..N`, `B`
//! records per OEM command and one command in flight (as the RME sends
//! them), then deletes them the same way, and prints one line per phase:
//!
//! ```text
//! bench-flows op=set count=4096 batch=11 commands=373 bytes_sent=... \
//!     seconds=... rules_per_sec=... mean_rtt_us=...
//! ```

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bmgnic_model::ncsi::{command_frame, oem_command_payload, parse_received};
use bmgnic_model::ncsi_oem::{
    self as oem, FlowCountersRecord, FlowKey, FlowRecord, IdentityRecord, PolicyRecord,
    PortCountersRecord, Record, SlotRecord, TableInfoRecord, TenantRecord, VtepRecord,
};
use bmgnic_model::regs::guest::STAT_NAMES;
use bmgnic_wire::ncsi::RESPONSE_BIT;

struct Client {
    socket: UnixDatagram,
    remote: PathBuf,
    iid: u8,
    /// Bytes of command frames sent (Ethernet header to checksum).
    sent_bytes: usize,
}

impl Client {
    fn command(&mut self, kind: u8, payload: &[u8]) -> Result<Vec<u8>, String> {
        self.iid = self.iid.wrapping_add(1).max(1);
        let f = command_frame([0x02, 0, 0, 0, 0, 0xfe], self.iid, kind, 0, payload);
        for _attempt in 0..3 {
            self.sent_bytes += f.len();
            self.socket
                .send_to(&f, &self.remote)
                .map_err(|e| format!("send to {}: {e}", self.remote.display()))?;
            let mut buf = [0u8; 2048];
            loop {
                let n = match self.socket.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(format!("receive: {e}")),
                };
                if let Some(r) = parse_received(&buf[..n]) {
                    if r.kind == kind | RESPONSE_BIT && r.iid == self.iid {
                        return Ok(r.payload.to_vec());
                    }
                }
            }
        }
        Err(format!("no response to command {kind:#04x}"))
    }

    fn oem(&mut self, op: u8, object: u8, count: u8, records: &[u8]) -> Result<Vec<u8>, String> {
        let p = oem_command_payload(op, object, count, records);
        let r = self.command(oem::CMD_OEM, &p)?;
        let (code, reason) = (
            u16::from_be_bytes([r[0], r[1]]),
            u16::from_be_bytes([r[2], r[3]]),
        );
        if code != 0 {
            return Err(format!(
                "OEM op {op} object {object}: response {code:#06x} reason {reason:#06x}"
            ));
        }
        Ok(r.get(oem::RESPONSE_PREFIX..).unwrap_or_default().to_vec())
    }

    fn set<R: Record>(&mut self, object: u8, r: &R) -> Result<(), String> {
        let mut b = vec![0u8; R::LEN];
        r.encode(&mut b);
        self.oem(oem::OP_SET, object, 1, &b).map(|_| ())
    }

    fn get<R: Record>(&mut self, object: u8) -> Result<R, String> {
        let r = self.oem(oem::OP_GET, object, 0, &[])?;
        r.get(..R::LEN)
            .and_then(R::decode)
            .ok_or_else(|| format!("object {object}: bad answer"))
    }

    fn get_indexed<R: Record>(&mut self, object: u8, indices: &[u32]) -> Result<Vec<R>, String> {
        let mut out = Vec::new();
        for chunk in indices.chunks(oem::max_records(R::LEN.max(SlotRecord::LEN))) {
            let mut b = vec![0u8; SlotRecord::LEN * chunk.len()];
            for (i, c) in chunk.iter().zip(b.chunks_mut(SlotRecord::LEN)) {
                SlotRecord { slot: *i }.encode(c);
            }
            let r = self.oem(oem::OP_GET, object, chunk.len() as u8, &b)?;
            out.extend(r.chunks_exact(R::LEN).filter_map(R::decode));
        }
        Ok(out)
    }
}

fn mac(s: &str) -> Result<[u8; 6], String> {
    let v: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("bad MAC '{s}'"))?;
    v.try_into().map_err(|_| format!("bad MAC '{s}'"))
}

fn ipv4(s: &str) -> Result<[u8; 4], String> {
    s.parse::<std::net::Ipv4Addr>()
        .map(|a| a.octets())
        .map_err(|_| format!("bad IPv4 address '{s}'"))
}

fn num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("bad number '{s}'"))
}

fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn fmt_ip4(a: &[u8]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

/// Splits `key=value` arguments following a command word.
fn fields(args: &[String]) -> Vec<(&str, &str)> {
    args.iter()
        .take_while(|a| a.contains('='))
        .filter_map(|a| a.split_once('='))
        .collect()
}

fn dump(c: &mut Client) -> Result<(), String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let id: IdentityRecord = c.get(oem::OBJ_IDENTITY)?;
    let v4: Vec<String> = id.ipv4[..usize::from(id.ipv4_count)]
        .iter()
        .map(|a| fmt_ip4(a))
        .collect();
    let _ = writeln!(
        out,
        "identity mac={} mtu_cap={} ipv4={} ipv6_count={}",
        fmt_mac(&id.mac),
        id.mtu_cap,
        v4.join(","),
        id.ipv6_count
    );
    let t: TenantRecord = c.get(oem::OBJ_TENANT)?;
    let _ = writeln!(
        out,
        "tenant vni={} local_mac={} local_ip={}",
        t.vni,
        fmt_mac(&t.local_mac),
        fmt_ip4(&t.local_ip)
    );
    let p: PolicyRecord = c.get(oem::OBJ_POLICY)?;
    let _ = writeln!(
        out,
        "policy quarantined={} miss={} events={:#x} miss_events_per_sec={}",
        u8::from(p.quarantined),
        if p.miss_policy == oem::MISS_ALLOW {
            "allow"
        } else {
            "drop"
        },
        p.events,
        p.miss_events_per_sec
    );
    let info: TableInfoRecord = c.get(oem::OBJ_TABLE_INFO)?;
    let _ = writeln!(
        out,
        "table flow_slots={} flows_used={} vteps={} meters={}",
        info.flow_slots, info.flows_used, info.vteps, info.meters
    );
    let vteps: Vec<VtepRecord> = c.get_indexed(
        oem::OBJ_VTEP,
        &(0..u32::from(info.vteps)).collect::<Vec<_>>(),
    )?;
    for v in vteps.iter().filter(|v| v.ip != [0; 4]) {
        let _ = writeln!(
            out,
            "vtep index={} mac={} ip={}",
            v.index,
            fmt_mac(&v.mac),
            fmt_ip4(&v.ip)
        );
    }
    let slots: Vec<u32> = (0..info.flow_slots).collect();
    let counters: Vec<FlowCountersRecord> = c.get_indexed(oem::OBJ_FLOW_COUNTERS, &slots)?;
    let used: Vec<u32> = counters
        .iter()
        .filter(|c| c.in_use)
        .map(|c| c.slot)
        .collect();
    let flows: Vec<FlowRecord> = c.get_indexed(oem::OBJ_FLOW, &used)?;
    for (f, n) in flows.iter().zip(counters.iter().filter(|c| c.in_use)) {
        let _ = writeln!(
            out,
            "flow slot={} priority={} action={} meter={} vtep={} key_ip_dst={} packets={} bytes={}",
            f.slot,
            f.priority,
            f.action,
            f.meter,
            f.vtep,
            fmt_ip4(&f.key.ip_dst),
            n.packets,
            n.bytes
        );
    }
    let pc: PortCountersRecord = c.get(oem::OBJ_PORT_COUNTERS)?;
    let names = STAT_NAMES.iter().chain(oem::RME_COUNTER_NAMES.iter());
    let counters: Vec<String> = names
        .zip(pc.counters.iter())
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    let _ = writeln!(out, "counters {}", counters.join(" "));
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
    Ok(())
}

/// The flow of `bench-flows` in `slot`: an exact IPv4/UDP match from
/// 10.0.0.1:1024 to 10.1.x.y, the destination port from the slot's low 16
/// bits and x.y from the rest, so that every slot's key differs.
fn bench_flow(slot: u32) -> FlowRecord {
    let mut key = FlowKey {
        in_port: oem::PORT_GUEST,
        ip_proto: oem::IPPROTO_UDP,
        ethertype: oem::ETHERTYPE_IPV4,
        l4_src: 1024,
        l4_dst: slot as u16,
        ..FlowKey::default()
    };
    key.ip_src[..4].copy_from_slice(&[10, 0, 0, 1]);
    key.ip_dst[..4].copy_from_slice(&(0x0a01_0000 + (slot >> 16)).to_be_bytes());
    let mut mask = FlowKey {
        in_port: 0xff,
        ip_proto: 0xff,
        ethertype: 0xffff,
        l4_src: 0xffff,
        l4_dst: 0xffff,
        ..FlowKey::default()
    };
    mask.ip_src[..4].fill(0xff);
    mask.ip_dst[..4].fill(0xff);
    FlowRecord {
        slot,
        priority: 10,
        action: oem::ACTION_ALLOW,
        meter: oem::NO_METER,
        vtep: 0,
        key,
        mask,
    }
}

/// `bench-flows`: sets `count` flows `batch` per command, then deletes them
/// the same way, and prints each phase's rate.
fn bench_flows(c: &mut Client, count: u32, batch: usize) -> Result<(), String> {
    let most = oem::max_records(FlowRecord::LEN);
    if !(1..=most).contains(&batch) || count == 0 {
        return Err(format!("bench-flows needs count >= 1 and batch 1..={most}"));
    }
    let info: TableInfoRecord = c.get(oem::OBJ_TABLE_INFO)?;
    if info.flow_slots < count || info.flows_used != 0 {
        return Err(format!(
            "bench-flows: {} flow slots with {} in use, want {count} free",
            info.flow_slots, info.flows_used
        ));
    }
    bench_phase(c, oem::OP_SET, count, batch, FlowRecord::LEN, |s, b| {
        bench_flow(s).encode(b)
    })?;
    let info: TableInfoRecord = c.get(oem::OBJ_TABLE_INFO)?;
    if info.flows_used != count {
        return Err(format!(
            "bench-flows: {} flows in use after set",
            info.flows_used
        ));
    }
    bench_phase(c, oem::OP_DEL, count, batch, SlotRecord::LEN, |slot, b| {
        SlotRecord { slot }.encode(b)
    })?;
    let info: TableInfoRecord = c.get(oem::OBJ_TABLE_INFO)?;
    if info.flows_used != 0 {
        return Err(format!(
            "bench-flows: {} flows in use after del",
            info.flows_used
        ));
    }
    Ok(())
}

/// Sends `op` on slots `0..count`, `batch` records of `len` bytes per
/// command and one command in flight, and prints the rate. The records are
/// encoded before the clock starts.
fn bench_phase(
    c: &mut Client,
    op: u8,
    count: u32,
    batch: usize,
    len: usize,
    encode: impl Fn(u32, &mut [u8]),
) -> Result<(), String> {
    let slots: Vec<u32> = (0..count).collect();
    let commands: Vec<(u8, Vec<u8>)> = slots
        .chunks(batch)
        .map(|chunk| {
            let mut b = vec![0u8; len * chunk.len()];
            for (&s, out) in chunk.iter().zip(b.chunks_mut(len)) {
                encode(s, out);
            }
            (chunk.len() as u8, b)
        })
        .collect();
    let sent = c.sent_bytes;
    let start = Instant::now();
    for (n, records) in &commands {
        c.oem(op, oem::OBJ_FLOW, *n, records)?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "bench-flows op={} count={count} batch={batch} commands={} bytes_sent={} \
         seconds={secs:.6} rules_per_sec={:.0} mean_rtt_us={:.1}",
        if op == oem::OP_SET { "set" } else { "del" },
        commands.len(),
        c.sent_bytes - sent,
        f64::from(count) / secs,
        secs * 1e6 / commands.len() as f64
    );
    Ok(())
}

fn run(args: &[String]) -> Result<(), String> {
    let mut local = None;
    let mut remote = None;
    let mut i = 0;
    while i + 1 < args.len() && args[i].starts_with("--") {
        match args[i].as_str() {
            "--local" => local = Some(PathBuf::from(&args[i + 1])),
            "--remote" => remote = Some(PathBuf::from(&args[i + 1])),
            other => return Err(format!("unknown option {other}")),
        }
        i += 2;
    }
    let (Some(local), Some(remote)) = (local, remote) else {
        return Err("usage: bmgnic-rmectl --local PATH --remote PATH COMMAND...".into());
    };
    let _ = std::fs::remove_file(&local);
    let socket =
        UnixDatagram::bind(&local).map_err(|e| format!("bind {}: {e}", local.display()))?;
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let mut c = Client {
        socket,
        remote,
        iid: 0,
        sent_bytes: 0,
    };
    let result = (|| {
        while i < args.len() {
            let word = args[i].as_str();
            let kv = fields(&args[i + 1..]);
            i += 1 + kv.len();
            let get = |k: &str| kv.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
            match word {
                "init" => {
                    let r = c.command(0x00, &[])?;
                    if r.get(..4) != Some(&[0, 0, 0, 0]) {
                        return Err("Clear Initial State failed".into());
                    }
                }
                "identity" => {
                    let mut id: IdentityRecord = c.get(oem::OBJ_IDENTITY)?;
                    if let Some(m) = get("mac") {
                        id.mac = mac(m)?;
                    }
                    if let Some(m) = get("mtu_cap") {
                        id.mtu_cap = num(m)?;
                    }
                    if let Some(list) = get("ipv4") {
                        let addrs: Vec<[u8; 4]> = list
                            .split(',')
                            .filter(|a| !a.is_empty())
                            .map(ipv4)
                            .collect::<Result<_, _>>()?;
                        if addrs.len() > oem::MAX_GUEST_ADDRS {
                            return Err("at most 4 IPv4 addresses".into());
                        }
                        id.ipv4 = [[0; 4]; oem::MAX_GUEST_ADDRS];
                        id.ipv4[..addrs.len()].copy_from_slice(&addrs);
                        id.ipv4_count = addrs.len() as u8;
                    }
                    c.set(oem::OBJ_IDENTITY, &id)?;
                }
                "tenant" => {
                    let mut t: TenantRecord = c.get(oem::OBJ_TENANT)?;
                    if let Some(v) = get("vni") {
                        t.vni = num(v)?;
                    }
                    if let Some(v) = get("local_mac") {
                        t.local_mac = mac(v)?;
                    }
                    if let Some(v) = get("local_ip") {
                        t.local_ip = ipv4(v)?;
                    }
                    c.set(oem::OBJ_TENANT, &t)?;
                }
                "vtep" => {
                    let v = VtepRecord {
                        index: num(get("index").unwrap_or("0"))?,
                        mac: mac(get("mac").ok_or("vtep needs mac=")?)?,
                        ip: ipv4(get("ip").ok_or("vtep needs ip=")?)?,
                    };
                    c.set(oem::OBJ_VTEP, &v)?;
                }
                "policy" => {
                    let mut p: PolicyRecord = c.get(oem::OBJ_POLICY)?;
                    if let Some(v) = get("quarantined") {
                        p.quarantined = v == "1";
                    }
                    if let Some(v) = get("miss") {
                        p.miss_policy = if v == "allow" {
                            oem::MISS_ALLOW
                        } else {
                            oem::MISS_DROP
                        };
                    }
                    if let Some(v) = get("events") {
                        p.events = num(v)?;
                    }
                    if let Some(v) = get("miss_events_per_sec") {
                        p.miss_events_per_sec = num(v)?;
                    }
                    c.set(oem::OBJ_POLICY, &p)?;
                }
                "encap-subnet" => {
                    // A flow that encapsulates IPv4 toward `dst/len` to `vtep`.
                    let (net, len) = get("dst")
                        .and_then(|d| d.split_once('/'))
                        .ok_or("encap-subnet needs dst=A.B.C.D/LEN")?;
                    let len: u32 = num(len)?;
                    let mut key = oem::FlowKey {
                        ethertype: 0x0800,
                        ..oem::FlowKey::default()
                    };
                    key.ip_dst[..4].copy_from_slice(&ipv4(net)?);
                    let mut mask = oem::FlowKey {
                        in_port: 0xff,
                        ethertype: 0xffff,
                        ..oem::FlowKey::default()
                    };
                    let bits = u32::MAX.checked_shl(32 - len.min(32)).unwrap_or(0);
                    mask.ip_dst[..4].copy_from_slice(&bits.to_be_bytes());
                    let f = FlowRecord {
                        slot: num(get("slot").unwrap_or("0"))?,
                        priority: num(get("priority").unwrap_or("10"))?,
                        action: oem::ACTION_ENCAP,
                        meter: oem::NO_METER,
                        vtep: num(get("vtep").unwrap_or("0"))?,
                        key,
                        mask,
                    };
                    c.set(oem::OBJ_FLOW, &f)?;
                }
                "dump" => dump(&mut c)?,
                "bench-flows" => bench_flows(
                    &mut c,
                    num(get("count").unwrap_or("4096"))?,
                    num(get("batch").unwrap_or("1"))?,
                )?,
                other => return Err(format!("unknown command '{other}'")),
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&local);
    result
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bmgnic-rmectl: {e}");
            ExitCode::FAILURE
        }
    }
}
