#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""bmgnic, open and isolated, against virtio-net between the same two VMs,
in one rack run.

    [server] bmgnic ==vfio-user== [nic0 --open] ------- [peer eth0]     10.10.1.0/24
    [server] bmgnic ==vfio-user== [nic1] -- VXLAN ----- [peer eth1]     10.10.3.0/24
                                    | NC-SI                (vxlan0)
                                  [RME VM: bmgnic_rme]
    [server] virtio-net ------ unix dgram link -------- [peer eth2]     10.10.2.0/24

Three paths from the same server VM to the same peer VM:

- virtio-net: QEMU's virtio-net, no isolation;
- bmgnic open: a model run with --open, plain L2 with no RME, so it
  carries the same untunnelled frames as virtio-net;
- bmgnic isolated: a model the RME configures as a tenant's NIC would be:
  guest identity (anti-spoofing), VNI and VXLAN toward the peer's Linux
  vxlan device, an ACL rule, every encapsulating rule through a meter set
  far above the link's rate (configured, never limiting), counters; each
  new flow misses the NIC's table once and is installed by the RME.

Each path keeps the offloads its driver offers: bmgnic's checksums and
TSO (the model segments), none for virtio-net here, whose unix-datagram
backend has no virtio-net header to carry them (QEMU then withdraws them
from the guest). The set-up lines print what each server interface has on.

Each round measures every path once, in an order that rotates from round
to round: ping round trip (50 echoes 50 ms apart), iperf3 TCP throughput,
iperf3 UDP with 64-byte payloads at full rate (packets/s at the receiver,
and as sent; of the loss, the share the peer's kernel received and
dropped for a full socket buffer, from its Udp RcvbufErrors).
The table gives each figure's median and range over the rounds, and the
ratios of one path to another taken within each round (median and range).
Before the first round, the models' CPU use while the rack is idle.

A benchmark, not a test: it prints figures. It exits non-zero, after
printing what it measured, when a path passed no traffic at all (or has no
interface).

Usage: tools/testing/benchmarks/netdev_vs_virtio.py
  BMGNIC_BENCH_PATHS=virtio,open,isolated  the paths to measure (default all)
  BMGNIC_BENCH_ROUNDS=5                    rounds
  BMGNIC_BENCH_SECONDS=5                   length of each iperf3 run
  BMGNIC_ACCEL=kvm                         KVM instead of TCG (see rack.py)
"""

import json
import os
import re
import statistics
import sys
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tools/testing/vm"))

import rack  # noqa: E402

BMGNIC_KO = rack.MODULES[0]
PATHS = ("virtio", "open", "isolated")
# Path name -> (server address, peer address), one /24 each.
ADDRS = {"open": ("10.10.1.1", "10.10.1.2"),
         "virtio": ("10.10.2.1", "10.10.2.2"),
         "isolated": ("10.10.3.1", "10.10.3.2")}
LABEL = {"open": "bmgnic open", "virtio": "virtio-net", "isolated": "bmgnic isolated"}
# The open model's factory MAC; the isolated one keeps the default
# (rack.FACTORY_MAC), which the RME makes the guest's identity.
OPEN_MAC = "52:54:00:b0:00:02"
# The isolated path's meter: 10 Gbyte/s, far above anything TCG carries.
METER = {"index": 0, "rate": 10_000_000_000, "burst": 1_000_000}
# The ACL: the tenant may not reach the peer's SSH port (never used here).
ACL_DROP = {"priority": 20, "action": "drop",
            "match": {"ethertype": 0x0800, "ip-proto": 6, "l4-dst": 22}}
IDLE_SECONDS = 10
PING = "ping -q -n -c 50 -i 0.05 -W 1"
# A fresh iperf3 server for one test (-1), in the background (-D), once it
# listens. One left over from a failed test is stopped first.
IPERF3_SERVER = """
p=$(cat /tmp/iperf3.pid 2>/dev/null)
if [ -n "$p" ] && kill "$p" 2>/dev/null; then
	while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
fi
rm -f /tmp/iperf3.pid
iperf3 -s -1 -D -I /tmp/iperf3.pid || exit 1
for i in $(seq 100); do
	ss -Hltn 'sport = :5201' | grep -q . && exit 0
	sleep 0.1
done
exit 1
"""


class PathError(Exception):
    """A path cannot be measured; the message says why."""


def wanted_paths():
    paths = [p.strip() for p in os.environ.get("BMGNIC_BENCH_PATHS", ",".join(PATHS)).split(",")
             if p.strip()]
    bad = [p for p in paths if p not in ADDRS]
    if bad or not paths:
        raise SystemExit(f"BMGNIC_BENCH_PATHS: want a list of {', '.join(PATHS)}, "
                         f"got {bad or paths}")
    return list(dict.fromkeys(paths))


def positive_env(name, default):
    try:
        value = int(os.environ.get(name, default))
    except ValueError:
        value = 0
    if value < 1:
        raise SystemExit(f"{name}: want a positive integer")
    return value


def mac(r, vm, nic):
    """The MAC rack.VM gives NIC `nic` of `vm`."""
    return f"52:54:00:00:{r.vms.index(vm):02x}:{nic:02x}"


def ifname_by_driver(vm, driver):
    _, out = vm.run("for d in /sys/class/net/*/device/driver; do "
                    f"[ \"$(basename \"$(readlink \"$d\")\")\" = {driver} ] && "
                    "basename \"${d%/device/driver}\"; done; true")
    names = out.split()
    return names[0] if names else None


def ifname_by_mac(vm, address):
    _, out = vm.run("for a in /sys/class/net/*/address; do "
                    f"[ \"$(cat \"$a\")\" = {address} ] && basename \"${{a%/address}}\"; done; true")
    names = out.split()
    return names[0] if names else None


def configure(vm, ifname, address):
    vm.run(f"ip addr add {address}/24 dev {ifname} && ip link set dev {ifname} up")


def load_bmgnic(server):
    """Loads bmgnic.ko and waits for its two netdevs; returns None, or
    why they are not there."""
    if not os.path.exists(BMGNIC_KO):
        return f"{os.path.relpath(BMGNIC_KO, TOP)} is not built"
    rc, out = server.run(f"insmod {BMGNIC_KO}", check=False)
    if rc != 0:
        return f"insmod failed: {out.strip()}"
    for _ in range(20):
        if ifname_by_mac(server, OPEN_MAC) and ifname_by_mac(server, rack.FACTORY_MAC):
            return None
        server.run("sleep 0.5")
    _, bound = server.run("ls /sys/bus/pci/drivers/bmgnic/ 2>/dev/null | grep '^0000:'; true")
    return f"bmgnic.ko bound to {' '.join(bound.split()) or 'no device'}, not both NICs " \
        "with a netdev"


def isolate(r, rme, peer, peer_fabric):
    """The RME makes the isolated NIC a tenant's; the peer becomes the far
    VTEP (Linux's vxlan device)."""
    ynl = rack.Ynl(rme, r.ynl())
    peer_mac = rack.peer_vtep(peer, peer_fabric, ADDRS["isolated"][1])
    rack.rme_up(rme)
    server_ip = ADDRS["isolated"][0]
    ynl("identity-set", {"identity": {"mac": rack.FACTORY_MAC, "mtu-cap": 1500,
                                      "ipv4": [server_ip]}})
    ynl("tenant-set", {"tenant": {"vni": rack.VNI, "local-mac": rack.LOCAL_VTEP_MAC,
                                  "local-ip": rack.LOCAL_VTEP}})
    ynl("vtep-set", {"index": 1, "mac": peer_mac, "ip": rack.PEER_VTEP})
    ynl("meter-set", METER)
    ynl("flow-add", ACL_DROP)
    for match in ({"ethertype": 0x0806}, {"ethertype": 0x0800}):
        ynl("flow-add", {"priority": 10, "action": "encap", "vtep": 1,
                         "meter": METER["index"], "match": match})


def set_up_path(r, server, peer, rme, path):
    """Finds and addresses the path's two interfaces; returns them, or
    raises PathError."""
    if path == "open":
        s_if, p_if = ifname_by_mac(server, OPEN_MAC), ifname_by_mac(peer, mac(r, peer, 0))
    elif path == "isolated":
        s_if = ifname_by_mac(server, rack.FACTORY_MAC)
        fabric = ifname_by_mac(peer, mac(r, peer, 1))
        if not s_if or not fabric:
            raise PathError(f"interface not found (server {s_if}, peer fabric {fabric})")
        isolate(r, rme, peer, fabric)
        # The peer's side is addressed by rack.peer_vtep.
        configure(server, s_if, ADDRS[path][0])
        return s_if, "vxlan0"
    else:
        s_if, p_if = ifname_by_driver(server, "virtio_net"), ifname_by_mac(peer, mac(r, peer, 2))
    if not s_if or not p_if:
        raise PathError(f"interface not found (server {s_if}, peer {p_if})")
    configure(server, s_if, ADDRS[path][0])
    configure(peer, p_if, ADDRS[path][1])
    return s_if, p_if


def offloads(vm, ifname):
    """The transmit offloads `ifname` has on, as ethtool -k names them."""
    _, out = vm.run(f"ethtool -k {ifname}", check=False)
    names = ("tx-checksumming", "scatter-gather", "tcp-segmentation-offload")
    on = [n for n in names if re.search(rf"^{n}: on", out, re.M)]
    return ", ".join(on) if on else "none"


def cpu_seconds(pid):
    """User plus system CPU time of process `pid`, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(models, seconds):
    """Each model's CPU use, in % of one core, over `seconds` of an idle
    rack."""
    before = {m.name: cpu_seconds(m.proc.pid) for m in models}
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    return {m.name: 100.0 * (cpu_seconds(m.proc.pid) - before[m.name]) / elapsed
            for m in models}


def iperf3_json(out):
    """The JSON document in iperf3 -J output (the agent merges stderr)."""
    try:
        doc = json.loads(out[out.index("{"):out.rindex("}") + 1])
    except ValueError:
        raise RuntimeError(f"no iperf3 JSON in: {out.strip()[-300:]}")
    if "error" in doc:
        raise RuntimeError(f"iperf3: {doc['error']}")
    return doc


def iperf3(server, peer, target, args, seconds):
    """Runs one iperf3 client in the server VM against a fresh iperf3
    server in the peer VM; returns the parsed JSON."""
    peer.run(IPERF3_SERVER)
    limit = 3 * seconds + 60
    _, out = server.run(f"timeout {limit} iperf3 -c {target} -t {seconds} -J "
                        f"--connect-timeout 5000 {args}", timeout=limit + 30, check=False)
    return iperf3_json(out)


def udp_rcvbuf_errors(vm):
    """The VM's Udp RcvbufErrors counter (/proc/net/snmp), or None."""
    _, out = vm.run("grep '^Udp:' /proc/net/snmp", check=False)
    lines = [line.split()[1:] for line in out.splitlines() if line.startswith("Udp:")]
    if len(lines) != 2 or "RcvbufErrors" not in lines[0]:
        return None
    return int(lines[1][lines[0].index("RcvbufErrors")])


def measure(server, peer, target, seconds):
    """Measures one path once. Returns (figures, errors); a missing figure
    stays None."""
    res = dict.fromkeys(["rtt_min", "rtt_avg", "ping_loss", "tcp_bps", "tcp_retrans",
                         "udp_pps", "udp_tx_pps", "udp_loss", "udp_rcvbuf"])
    errors = []
    # The first echo also resolves the peer's MAC.
    rc, _ = server.run(f"timeout 20 sh -c 'until ping -q -c 1 -W 1 {target} >/dev/null; "
                       "do sleep 0.2; done'", timeout=40, check=False)
    reachable = rc == 0
    _, out = server.run(f"{PING} {target}", timeout=60, check=False)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    if m and int(m.group(1)):
        res["ping_loss"] = 100.0 * (1 - int(m.group(2)) / int(m.group(1)))
    m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", out)
    if m:
        res["rtt_min"], res["rtt_avg"] = float(m.group(1)), float(m.group(2))
    if not reachable:
        errors.append(f"no echo reply from {target} in 20 s: iperf3 skipped")
        return res, errors
    try:
        end = iperf3(server, peer, target, "", seconds)["end"]
        res["tcp_bps"] = end["sum_received"]["bits_per_second"]
        res["tcp_retrans"] = end["sum_sent"].get("retransmits")
    except (RuntimeError, KeyError, rack.RackError) as e:
        errors.append(f"TCP: {e}")
    try:
        before = udp_rcvbuf_errors(peer)
        end = iperf3(server, peer, target, "-u -l 64 -b 0", seconds)["end"]
        rx, tx = end["sum_received"], end["sum_sent"]
        got = rx["packets"] - rx["lost_packets"]
        res["udp_pps"] = got / rx["seconds"] if rx["seconds"] else 0.0
        res["udp_tx_pps"] = tx["packets"] / tx["seconds"] if tx["seconds"] else 0.0
        res["udp_loss"] = 100.0 * rx["lost_packets"] / rx["packets"] if rx["packets"] else 100.0
        # Of the datagrams lost, those the peer's kernel received and then
        # dropped for a full socket buffer (iperf3 read too slowly).
        after = udp_rcvbuf_errors(peer)
        if before is not None and after is not None and rx["packets"]:
            res["udp_rcvbuf"] = 100.0 * (after - before) / rx["packets"]
    except (RuntimeError, KeyError, rack.RackError) as e:
        errors.append(f"UDP: {e}")
    return res, errors


def passed_traffic(rounds):
    return any((res["ping_loss"] is not None and res["ping_loss"] < 100)
               or res["tcp_bps"] or res["udp_pps"] for res in rounds)


def fmt_bps(v):
    return f"{v / 1e9:.2f} Gbit/s" if v >= 1e9 else f"{v / 1e6:.1f} Mbit/s"


# (label, key, format, higher_is_better): a ratio is taken so that above 1
# means the first path did better.
ROWS = [("TCP throughput", "tcp_bps", fmt_bps, True),
        ("TCP retransmits", "tcp_retrans", lambda v: f"{v:.0f}", None),
        ("UDP 64 B rx rate", "udp_pps", lambda v: f"{v / 1e3:.1f} kpps", True),
        ("UDP 64 B tx rate", "udp_tx_pps", lambda v: f"{v / 1e3:.1f} kpps", True),
        ("UDP 64 B loss", "udp_loss", lambda v: f"{v:.1f} %", None),
        ("UDP 64 B lost to the peer's socket buffer", "udp_rcvbuf", lambda v: f"{v:.1f} %",
         None),
        ("ping rtt avg", "rtt_avg", lambda v: f"{v:.3f} ms", False),
        ("ping rtt min", "rtt_min", lambda v: f"{v:.3f} ms", False),
        ("ping loss", "ping_loss", lambda v: f"{v:.0f} %", None)]
# (first, second): the ratios printed, where both paths were measured.
RATIOS = [("open", "virtio"), ("isolated", "virtio"), ("isolated", "open")]


def spread(values, fmt):
    """`median [min-max]` of the values that are there, or "-"."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.median(values))} [{fmt(min(values))}-{fmt(max(values))}]"


def print_table(paths, results):
    """`results[path]` is the list of that path's rounds."""
    n = max((len(v) for v in results.values()), default=0)
    print(f"median [range] of {n} rounds")
    for label, key, fmt, better in ROWS:
        print(f"{label}")
        for p in paths:
            print(f"  {LABEL[p]:18}{spread([r[key] for r in results.get(p, [])], fmt)}")
        if better is None:
            continue
        for a, b in RATIOS:
            if a not in results or b not in results:
                continue
            ratios = []
            for ra, rb in zip(results[a], results[b]):
                x, y = ra[key], rb[key]
                if x and y:
                    ratios.append(x / y if better else y / x)
            if ratios:
                print(f"  {LABEL[a] + ' : ' + LABEL[b]:34}"
                      f"{spread(ratios, lambda v: f'{v:.2f}')}")
    print("ratio > 1: the first path did better (throughput and rate: first/second; "
          "rtt: second/first), each ratio within one round")


def main():
    paths = wanted_paths()
    rounds = positive_env("BMGNIC_BENCH_ROUNDS", "5")
    seconds = positive_env("BMGNIC_BENCH_SECONDS", "5")
    results, failed, notes = {}, {}, []
    try:
        with rack.Rack("netdev_vs_virtio") as r:
            print(f"accel: {os.environ.get('BMGNIC_ACCEL', 'tcg')} "
                  f"({' '.join(rack.accel_args())}), 1 vCPU and 512 MiB per VM", flush=True)
            open_nic = r.start_model("nic0", open_l2=True, mac=OPEN_MAC)
            isolated_nic = r.start_model("nic1")
            link_s = os.path.join(r.sockdir, "direct.server")
            link_p = os.path.join(r.sockdir, "direct.peer")
            server = r.start_vm("server", model=open_nic, more_models=[isolated_nic],
                                nics=[(link_s, link_p)])
            rme = r.start_vm("rme", nics=[(isolated_nic.ncsi_remote, isolated_nic.ncsi_local)])
            peer = r.start_vm("peer", nics=[(open_nic.fabric_remote, open_nic.fabric_local),
                                            (isolated_nic.fabric_remote,
                                             isolated_nic.fabric_local),
                                            (link_p, link_s)])
            for vm in (server, rme, peer):
                vm.wait_ready()
            why = load_bmgnic(server) if {"open", "isolated"} & set(paths) else None
            ready = []
            for p in paths:
                try:
                    if p != "virtio" and why:
                        raise PathError(f"no interface ({why})")
                    s_if, p_if = set_up_path(r, server, peer, rme, p)
                except (PathError, rack.RackError) as e:
                    failed[p] = str(e)
                    print(f"{LABEL[p]}: {e}", flush=True)
                    continue
                print(f"{LABEL[p]}: server {s_if} {ADDRS[p][0]} -> "
                      f"peer {p_if} {ADDRS[p][1]}; server TX offloads: "
                      f"{offloads(server, s_if)}", flush=True)
                ready.append(p)
            idle = idle_cpu((open_nic, isolated_nic), IDLE_SECONDS)
            print(f"idle CPU over {IDLE_SECONDS} s: " + ", ".join(
                f"model {name} {pct:.1f} % of a core" for name, pct in idle.items()), flush=True)
            for k in range(rounds):
                order = ready[k % len(ready):] + ready[:k % len(ready)] if ready else []
                for p in order:
                    try:
                        res, errors = measure(server, peer, ADDRS[p][1], seconds)
                    except rack.RackError as e:
                        res, errors = None, [str(e)]
                    notes += [f"{LABEL[p]}, round {k + 1}: {e}" for e in errors]
                    if res is not None:
                        results.setdefault(p, []).append(res)
                    print(f"round {k + 1} {LABEL[p]}: " + (", ".join(
                        f"{label} {fmt(res[key])}" for label, key, fmt, better in ROWS
                        if better is not None and res[key] is not None) if res else "failed"),
                        flush=True)
            for p in ready:
                if not passed_traffic(results.get(p, [])):
                    failed[p] = "passed no traffic"
            print()
            print_table(paths, results)
            for n in notes:
                print(f"# {n}")
            if notes or failed:
                r.failed = True
    except rack.RackError as e:
        print(f"netdev_vs_virtio: rack failed: {e}", file=sys.stderr)
        return 1
    for p, why in failed.items():
        print(f"netdev_vs_virtio: {LABEL[p]}: {why}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
