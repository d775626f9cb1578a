#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""bmgnic against virtio-net between the same two VMs, in one rack run.

    [server VM] bmgnic     ==vfio-user== [bmgnic-model --open] --fabric-- [peer VM]  10.10.1.0/24
    [server VM] virtio-net ------------ unix dgram link ----------------- [peer VM]  10.10.2.0/24

The model runs open (plain L2, no RME), so both paths carry the same
untunnelled frames; only the server's NIC differs. For each path the
server VM is the client and the peer VM the iperf3 server: ping round trip
(50 echoes 50 ms apart), iperf3 TCP throughput, and iperf3 UDP with 64-byte
payloads at full rate (packets/s and loss at the receiver). A benchmark,
not a test: it prints figures. It exits non-zero, after printing what it
measured, when a path passed no traffic at all (or has no interface).

Usage: tools/testing/benchmarks/netdev_vs_virtio.py
  BMGNIC_BENCH_PATHS=virtio,bmgnic  the paths to measure (default both)
  BMGNIC_BENCH_SECONDS=5            length of each iperf3 run
  BMGNIC_ACCEL=kvm                  KVM instead of TCG (see rack.py)
"""

import json
import os
import re
import sys

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tools/testing/vm"))

import rack  # noqa: E402

BMGNIC_KO = rack.MODULES[0]
# Path name -> (server address, peer address), one /24 each.
ADDRS = {"bmgnic": ("10.10.1.1", "10.10.1.2"),
         "virtio": ("10.10.2.1", "10.10.2.2")}
LABEL = {"bmgnic": "bmgnic", "virtio": "virtio-net"}
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
    paths = [p.strip() for p in os.environ.get("BMGNIC_BENCH_PATHS", "virtio,bmgnic").split(",")
             if p.strip()]
    bad = [p for p in paths if p not in ADDRS]
    if bad or not paths:
        raise SystemExit(f"BMGNIC_BENCH_PATHS: want a list of bmgnic and virtio, got {bad or paths}")
    return list(dict.fromkeys(paths))


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


def bmgnic_interface(server):
    """Loads bmgnic.ko and returns (its netdev or None, why not)."""
    if not os.path.exists(BMGNIC_KO):
        return None, f"{os.path.relpath(BMGNIC_KO, TOP)} is not built"
    rc, out = server.run(f"insmod {BMGNIC_KO}", check=False)
    if rc != 0:
        return None, f"insmod failed: {out.strip()}"
    for _ in range(10):
        name = ifname_by_driver(server, "bmgnic")
        if name:
            return name, None
        server.run("sleep 0.5")
    _, bound = server.run("ls /sys/bus/pci/drivers/bmgnic/ 2>/dev/null | grep '^0000:'; true")
    if bound.strip():
        return None, f"bmgnic.ko bound to {' '.join(bound.split())} but registered no netdev"
    return None, "bmgnic.ko bound to no device"


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


def measure(server, peer, target, seconds):
    """Measures one path. Returns (figures, errors); a missing figure
    stays None."""
    res = dict.fromkeys(["rtt_min", "rtt_avg", "ping_loss", "tcp_bps", "tcp_retrans",
                         "udp_pps", "udp_loss"])
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
        rx = iperf3(server, peer, target, "-u -l 64 -b 0", seconds)["end"]["sum_received"]
        got = rx["packets"] - rx["lost_packets"]
        res["udp_pps"] = got / rx["seconds"] if rx["seconds"] else 0.0
        res["udp_loss"] = 100.0 * rx["lost_packets"] / rx["packets"] if rx["packets"] else 100.0
    except (RuntimeError, KeyError, rack.RackError) as e:
        errors.append(f"UDP: {e}")
    return res, errors


def passed_traffic(res):
    return bool((res["ping_loss"] is not None and res["ping_loss"] < 100)
                or res["tcp_bps"] or res["udp_pps"])


def fmt_bps(v):
    return f"{v / 1e9:.2f} Gbit/s" if v >= 1e9 else f"{v / 1e6:.1f} Mbit/s"


# (label, key, format, ratio): ratio "bv" is bmgnic/virtio, "vb"
# virtio/bmgnic; either way above 1 means bmgnic did better.
ROWS = [("TCP throughput", "tcp_bps", fmt_bps, "bv"),
        ("TCP retransmits", "tcp_retrans", lambda v: f"{v}", None),
        ("UDP 64 B rx rate", "udp_pps", lambda v: f"{v / 1e3:.1f} kpps", "bv"),
        ("UDP 64 B loss", "udp_loss", lambda v: f"{v:.1f} %", None),
        ("ping rtt avg", "rtt_avg", lambda v: f"{v:.3f} ms", "vb"),
        ("ping rtt min", "rtt_min", lambda v: f"{v:.3f} ms", "vb"),
        ("ping loss", "ping_loss", lambda v: f"{v:.0f} %", None)]


def print_table(paths, results):
    cols = ["bmgnic", "virtio"]
    print(f"{'':18}{'bmgnic':>16}{'virtio-net':>16}   ratio")
    for label, key, fmt, ratio in ROWS:
        cells = []
        for p in cols:
            v = results.get(p, {}).get(key) if p in paths else None
            cells.append(fmt(v) if v is not None else "-")
        b = results.get("bmgnic", {}).get(key)
        v = results.get("virtio", {}).get(key)
        r = ""
        if ratio and b and v:
            r = f"{b / v:.2f} (bmgnic/virtio)" if ratio == "bv" else f"{v / b:.2f} (virtio/bmgnic)"
        print(f"{label:18}{cells[0]:>16}{cells[1]:>16}   {r}".rstrip())
    print("ratio > 1: bmgnic better (throughput and rate: bmgnic/virtio-net; "
          "rtt: virtio-net/bmgnic)")


def set_up_path(r, server, peer, path):
    """Finds and addresses the path's two interfaces; returns them, or
    raises PathError."""
    if path == "bmgnic":
        s_if, why = bmgnic_interface(server)
        if s_if is None:
            raise PathError(f"no interface ({why})")
        p_if = ifname_by_mac(peer, mac(r, peer, 0))
    else:
        s_if = ifname_by_driver(server, "virtio_net")
        p_if = ifname_by_mac(peer, mac(r, peer, 1))
    if not s_if or not p_if:
        raise PathError(f"interface not found (server {s_if}, peer {p_if})")
    configure(server, s_if, ADDRS[path][0])
    configure(peer, p_if, ADDRS[path][1])
    return s_if, p_if


def main():
    paths = wanted_paths()
    seconds = int(os.environ.get("BMGNIC_BENCH_SECONDS", "5"))
    results, failed = {}, {}
    try:
        with rack.Rack("netdev_vs_virtio") as r:
            print(f"accel: {os.environ.get('BMGNIC_ACCEL', 'tcg')} "
                  f"({' '.join(rack.accel_args())}), 1 vCPU and 512 MiB per VM", flush=True)
            model = r.start_model(open_l2=True)
            link_s = os.path.join(r.sockdir, "direct.server")
            link_p = os.path.join(r.sockdir, "direct.peer")
            server = r.start_vm("server", model=model, nics=[(link_s, link_p)])
            peer = r.start_vm("peer", nics=[(model.fabric_remote, model.fabric_local),
                                            (link_p, link_s)])
            server.wait_ready()
            peer.wait_ready()
            notes = []
            # One path after the other, so that a driver that takes its
            # VM down still leaves the figures measured before it.
            for p in paths:
                try:
                    s_if, p_if = set_up_path(r, server, peer, p)
                    print(f"{LABEL[p]}: server {s_if} {ADDRS[p][0]} -> "
                          f"peer {p_if} {ADDRS[p][1]}, iperf3 {seconds} s", flush=True)
                    results[p], errors = measure(server, peer, ADDRS[p][1], seconds)
                except (PathError, rack.RackError) as e:
                    failed[p] = str(e)
                    print(f"{LABEL[p]}: {e}", flush=True)
                    continue
                notes += [f"{LABEL[p]}: {e}" for e in errors]
                if not passed_traffic(results[p]):
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
