#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""How fast flow rules reach the NIC over NC-SI, and what a table miss
costs a new flow.

1. Install rate: ``bmgnic-rmectl bench-flows`` against a bmgnic-model of
   BMGNIC_BENCH_RULES slots over its unix-dgram sideband socket (no VM):
   that many distinct exact IPv4/UDP entries, one record per OEM SET and
   then 11 (as many as fit a sideband frame), one command in flight as the
   RME sends them. Printed next to what NC-SI over RBT (100 Mb/s) allows
   for the same command frames.

       [bmgnic-rmectl] --NC-SI (unix dgram)-- [bmgnic-model --table-size N]

2. Miss-to-install latency through the RME, in the rack:

       [server VM: bmgnic] ==vfio-user== [bmgnic-model, 1024 slots] --fabric-- [peer VM: vxlan0]
                                                |
                                       [RME VM: bmgnic_rme]

   One RME rule encapsulates IPv4/UDP to the peer's VTEP. The peer echoes
   UDP on BMGNIC_BENCH_FLOWS ports (and one more, whose flow warms the
   path up and is not counted); for each port the server sends one
   datagram of a new flow (it misses the NIC table: the NIC holds it while
   the RME gets the miss AEN, looks the flow up and installs an exact
   entry with an OEM SET) and, 20 ms after it is echoed, a second one of
   the same flow (a table hit). Both follow the same 20 ms of quiet, so
   the VMs are as idle for the hit as for the miss. The echoes come back
   through the NIC's RX pipeline, which needs no entry, so the
   first-packet round trip minus the second's is the time the miss cost.
   Round trips are timed in the server VM alone, as the VMs' clocks
   differ.

3. Install rate through the RME, in the same rack: the server sends one
   datagram to each of BMGNIC_BENCH_BURST new flows at once, every one a
   table miss (the NIC's miss-event rate limit raised for the burst). The
   RME VM's bmgnic_rme takes the miss AENs queued together and installs
   their exact entries in batched OEM SETs; a listener on the ``events``
   group in the RME VM (the kernel's ynl library) times each table-miss
   event that names an installed rule, which the module sends once the
   entry is in the NIC. The rate is the installed flows over the time from
   the first such event to the last, beside the NC-SI link bound. The
   module keeps at most 512 AENs queued: misses beyond what it keeps up
   with are dropped and counted, and their flows are not installed.

A benchmark, not a test: it prints figures. It exits non-zero when a part
could not be measured.

Usage: tools/testing/benchmarks/ncsi_install.py
  BMGNIC_BENCH_PARTS=rate,miss,burst  the parts to run (default all)
  BMGNIC_BENCH_RULES=4096       rules installed per batch size
  BMGNIC_BENCH_ROUNDS=5         runs of each batch size (the median is printed)
  BMGNIC_BENCH_FLOWS=30         new flows timed through the RME
  BMGNIC_BENCH_BURST=500        new flows at once through the RME
  BMGNIC_ACCEL=kvm              KVM instead of TCG (see rack.py)
"""

import json
import math
import os
import statistics
import sys

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tools/testing/vm"))

import rack  # noqa: E402

sys.path.insert(0, os.path.join(TOP, "tools/testing"))
from wire import ncsi, ncsi_oem  # noqa: E402

# Frame sizes, from the wire crate (Documentation/bmgnic/ncsi.rst).
ETH_HLEN = ncsi.ETH_HLEN
NCSI_HLEN = ncsi.HEADER_LEN      # NC-SI control packet header
NCSI_CHECKSUM = ncsi.CHECKSUM_LEN
OEM_HEADER = ncsi_oem.RECORD_LEN["OemHeader"]
OEM_COMMAND_PREFIX = 4 + OEM_HEADER            # manufacturer ID, OEM header
OEM_RESPONSE_PREFIX = ncsi.CODES_LEN + 4 + OEM_HEADER  # codes, manufacturer ID, header
FLOW_RECORD = ncsi_oem.RECORD_LEN["FlowRecord"]
MAX_PAYLOAD = ncsi.MAX_PAYLOAD
BATCH = (MAX_PAYLOAD - OEM_RESPONSE_PREFIX) // FLOW_RECORD  # max_records(): 11
# On the wire: frames shorter than 60 bytes are padded, then the FCS,
# and preamble, SFD and inter-frame gap (8 + 12 bytes) between frames.
ETH_ZLEN = ncsi.ETH_ZLEN
ETH_FCS = 4
PREAMBLE_IFG = 20
RBT_BPS = 100e6                # NC-SI over RBT (RMII-based transport)

# The miss part: addresses as in rme_control.py.
SERVER_IP, PEER_IP, FACTORY_MAC = rack.SERVER_IP, rack.PEER_IP, rack.FACTORY_MAC
NIC_SLOTS = 1024
ECHO_BASE_PORT = 7000
PROBE_SRC_PORT = 40000
BURST_BASE_PORT = 20000
BURST_SRC_PORT = 40001

# The peer's echo server: one UDP socket per port, each datagram sent back
# from the port it reached.
ECHO = """
import selectors, socket, sys
addr, base, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sel = selectors.DefaultSelector()
for port in range(base, base + count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    sel.register(s, selectors.EVENT_READ)
open(sys.argv[4], "w").close()
while True:
    for key, _ in sel.select():
        data, peer = key.fileobj.recvfrom(2048)
        key.fileobj.sendto(data, peer)
"""

# The server's probe: per port, the round trip of a new flow's first
# datagram, then of a second one of the same flow; None when no echo came
# in a second (the NIC drops what it held 100 ms without an entry). Each
# datagram follows 20 ms of quiet: a VM that has just echoed answers
# faster than one woken from idle, which would count against the miss.
PROBE = """
import json, socket, sys, time
src, dst, sport, base, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, sport))

def rtt(port, tag):
    msg = f"{port} {tag}".encode()
    t0 = time.perf_counter()
    s.sendto(msg, (dst, port))
    while True:
        left = t0 + 1.0 - time.perf_counter()
        if left <= 0:
            return None
        s.settimeout(left)
        try:
            data, _ = s.recvfrom(2048)
        except socket.timeout:
            return None
        if data == msg:
            return (time.perf_counter() - t0) * 1e3

out = []
for port in range(base, base + count):
    time.sleep(0.02)
    first = rtt(port, "first")
    time.sleep(0.02)
    out.append([port, first, rtt(port, "second")])
print(json.dumps(out))
"""


# The server's burst: one datagram to each port, as fast as the socket
# takes them; prints how long that took.
BURST = """
import socket, sys, time
src, dst, sport, base, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, sport))
t0 = time.perf_counter()
for port in range(base, base + count):
    s.sendto(b"burst", (dst, port))
print(f"sent {count} in {time.perf_counter() - t0:.6f}")
"""

# The RME VM's listener: the kernel's ynl library joins the events group;
# the notifications are then read raw, so that decoding them in a TCG
# guest does not delay the next read: the time each table-miss event
# naming an installed rule (a flow-id attribute) was received, until
# `want` came or none for 10 s.
LISTEN = """
import json, socket, struct, sys, time
sys.path.insert(0, "/tmp/rack/ynl")
from pyynl.lib import YnlFamily
spec, want, out, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ynl = YnlFamily(spec, "")
ynl.ntf_subscribe("events")
flow_id = ynl.attr_sets["event"]["flow-id"].value
sock = ynl.sock
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
sock.settimeout(10)
open(ready, "w").close()
installed, events = [], 0
while len(installed) < want:
    try:
        data = sock.recv(1 << 16)
    except socket.timeout:
        break
    now = time.monotonic()
    off = 0
    while off + 20 <= len(data):
        length = struct.unpack_from("=I", data, off)[0]
        if length < 20:
            break
        events += 1
        at = off + 20
        while at + 4 <= off + length:
            alen, atype = struct.unpack_from("=HH", data, at)
            if alen < 4:
                break
            if atype & 0x3fff == flow_id:
                installed.append(now)
            at += (alen + 3) & ~3
        off += (length + 3) & ~3
json.dump({"installed": installed, "events": events}, open(out, "w"))
"""


def command_frame(payload):
    """An NC-SI command frame's length as bmgnic-rmectl sends it (no FCS)."""
    return ETH_HLEN + NCSI_HLEN + -(-payload // 4) * 4 + NCSI_CHECKSUM


def wire_bits(frame):
    """Bit times a frame of `frame` bytes (without FCS) takes on the link."""
    return (max(frame, ETH_ZLEN) + ETH_FCS + PREAMBLE_IFG) * 8


def flow_commands(rules, batch):
    """The record count of each SET command that installs `rules` rules."""
    return [min(batch, rules - i) for i in range(0, rules, batch)]


def set_frame(records):
    return command_frame(OEM_COMMAND_PREFIX + records * FLOW_RECORD)


def link_bound(rules, batch, responses=False):
    """Rules/s NC-SI over RBT carries in SETs of `batch` records: command
    frames only (each direction has its own wires), or with `responses`
    each command's response frame too, as one command in flight waits for
    it."""
    resp = wire_bits(command_frame(OEM_RESPONSE_PREFIX)) if responses else 0
    bits = sum(wire_bits(set_frame(n)) + resp for n in flow_commands(rules, batch))
    return rules / (bits / RBT_BPS)


def bench_flows(model, rules, batch):
    """Runs bmgnic-rmectl bench-flows; returns {"set": {...}, "del": {...}}."""
    out = rack.rmectl(model, "init", "bench-flows", f"count={rules}", f"batch={batch}")
    phases = {}
    for line in out:
        if line.startswith("bench-flows "):
            kv = dict(f.split("=", 1) for f in line.split()[1:])
            phases[kv["op"]] = {k: float(v) for k, v in kv.items() if k != "op"}
    if set(phases) != {"set", "del"}:
        raise rack.RackError(f"bmgnic-rmectl bench-flows printed {out}")
    return phases


def install_rate(r, rules, rounds):
    """Part 1. Returns a list of notes on anything odd."""
    notes = []
    model = r.start_model("rate", table_size=rules)
    results = {}
    for b in (1, BATCH):
        # The run of median install rate: a run takes milliseconds, so
        # anything else on the host shows.
        runs = sorted((bench_flows(model, rules, b) for _ in range(rounds)),
                      key=lambda res: res["set"]["rules_per_sec"])
        results[b] = runs[len(runs) // 2]
    model.stop()
    print(f"NC-SI flow install: {rules} rules into bmgnic-model over its unix-dgram sideband "
          f"socket, one command in flight, median of {rounds} runs")
    print(f"{'':22}{'commands':>9}{'rules/s':>11}{'mean rtt':>12}{'link bound':>13}"
          f"{'of bound':>10}{'del rules/s':>13}")
    for b, res in results.items():
        frames = sum(set_frame(n) for n in flow_commands(rules, b))
        if res["set"]["bytes_sent"] != frames:
            notes.append(f"batch {b}: rmectl sent {res['set']['bytes_sent']:.0f} bytes of "
                         f"command frames, {frames} expected (retries?)")
        rate, bound = res["set"]["rules_per_sec"], link_bound(rules, b)
        label = f"{b} record{'s' if b > 1 else ''}/command"
        print(f"  {label:20}{res['set']['commands']:>9.0f}{rate:>11.0f}"
              f"{res['set']['mean_rtt_us']:>9.1f} us{bound:>13.0f}{rate / bound:>10.2f}"
              f"{res['del']['rules_per_sec']:>13.0f}")
    one, full = set_frame(1), set_frame(BATCH)
    ratio = results[BATCH]["set"]["rules_per_sec"] / results[1]["set"]["rules_per_sec"]
    print(f"  batched/single: {ratio:.2f}x rules/s "
          f"(link bound: {link_bound(rules, BATCH) / link_bound(rules, 1):.2f}x)")
    print(f"  link bound: NC-SI over RBT at {RBT_BPS / 1e6:.0f} Mb/s, command frames only "
          "(each direction has its own wires):")
    for n, frame in ((1, one), (BATCH, full)):
        print(f"    {n}-record SET: {ETH_HLEN}+{NCSI_HLEN}+{OEM_COMMAND_PREFIX}+"
              f"{n * FLOW_RECORD}+{NCSI_CHECKSUM} = {frame}-byte frame, {wire_bits(frame)} "
              "bit times with FCS, preamble and gap")
    print(f"    waiting for each response too ({wire_bits(command_frame(OEM_RESPONSE_PREFIX))} "
          f"bit times): {link_bound(rules, 1, True):.0f} and "
          f"{link_bound(rules, BATCH, True):.0f} rules/s")
    return notes


def drops(dev, reason):
    return next((d["packets"] for d in dev["counters"]["drops"] if d["reason"] == reason), 0)


def p90(values):
    """Nearest-rank 90th percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def start_rack(r):
    """The rme_control.py rack with a NIC of NIC_SLOTS slots and one UDP
    rule."""
    _, vms, ynl = rack.vxlan_tenant_rack(
        r, table_size=NIC_SLOTS, flows=({"ethertype": 0x0800, "ip-proto": 17},))
    server, rme, peer = vms["server"], vms["rme"], vms["peer"]
    dev = rack.server_netdev(server)
    # Static neighbours and no IPv6: no ARP or ND (which have no rule), only
    # the UDP flows miss.
    _, vx_mac = peer.run("cat /sys/class/net/vxlan0/address")
    server.run(f"sysctl -qw net.ipv6.conf.{dev}.disable_ipv6=1 2>/dev/null; "
               f"ip neigh replace {PEER_IP} lladdr {vx_mac.strip()} dev {dev} nud permanent; "
               f"for i in $(seq 100); do [ $(cat /sys/class/net/{dev}/operstate) = up ] && "
               "exit 0; sleep 0.1; done; exit 1")
    peer.run(f"ip neigh replace {SERVER_IP} lladdr {FACTORY_MAC} dev vxlan0 nud permanent")
    return server, rme, peer, ynl


def share(r, scripts):
    """Writes each script {name: text} to the rack's shared directory
    (/tmp/rack in the VMs)."""
    for name, text in scripts.items():
        with open(os.path.join(r.shared, name), "w") as f:
            f.write(text)


def miss_latency(r, rack_vms, flows):
    """Part 2. Returns a list of notes on anything odd."""
    notes = []
    server, rme, peer, ynl = rack_vms
    share(r, {"ncsi_echo.py": ECHO, "ncsi_probe.py": PROBE})
    # One more port than timed: the first flow warms the path up.
    ports = flows + 1
    peer.run(f"(python3 /tmp/rack/ncsi_echo.py {PEER_IP} {ECHO_BASE_PORT} {ports} "
             "/tmp/echo.ready > /tmp/rack/echo.log 2>&1 &); "
             "for i in $(seq 300); do [ -e /tmp/echo.ready ] && exit 0; sleep 0.1; done; exit 1")
    before = ynl("dev-get")[1]
    _, out = server.run(f"python3 /tmp/rack/ncsi_probe.py {SERVER_IP} {PEER_IP} "
                        f"{PROBE_SRC_PORT} {ECHO_BASE_PORT} {ports}", timeout=300)
    after = ynl("dev-get")[1]
    rows = json.loads(out[out.index("["):out.rindex("]") + 1])[1:]
    misses = after["counters"]["table-misses"] - before["counters"]["table-misses"]
    expired = drops(after, "tx_drop_table_miss") - drops(before, "tx_drop_table_miss")
    first = [f for _, f, _ in rows if f is not None]
    steady = [s for _, _, s in rows if s is not None]
    diff = [f - s for _, f, s in rows if f is not None and s is not None]
    print(f"Miss-to-install through the RME: {len(rows)} new UDP flows, server VM -> NIC "
          f"({NIC_SLOTS} slots) -> peer VM vxlan0, echoed back")
    print(f"{'':30}{'median':>10}{'p90':>10}{'samples':>9}")
    for label, v in (("first packet RTT (miss)", first),
                     ("second packet RTT (hit)", steady),
                     ("miss-to-install (1st - 2nd)", diff)):
        if v:
            print(f"  {label:28}{statistics.median(v):>7.2f} ms{p90(v):>7.2f} ms{len(v):>9}")
        else:
            print(f"  {label:28}{'-':>10}{'-':>10}{0:>9}")
    print(f"  NIC table misses {misses} (warm-up flow included), first packets lost "
          f"{len(rows) - len(first)}, held past 100 ms and dropped {expired}")
    if len(first) < len(rows):
        notes.append(f"{len(rows) - len(first)} first packets got no echo "
                     "(held past the NIC's 100 ms, or lost)")
    if len(steady) < len(rows):
        notes.append(f"{len(rows) - len(steady)} second packets got no echo")
    if not diff:
        raise rack.RackError("no flow answered both datagrams")
    return notes


def burst_install(r, rack_vms, flows):
    """Part 3. Returns a list of notes on anything odd."""
    notes = []
    server, rme, peer, ynl = rack_vms
    share(r, {"ncsi_burst.py": BURST, "ncsi_listen.py": LISTEN})
    spec = ynl.spec
    policy = ynl("dev-get")[1]["policy"]
    ynl("policy-set", {"policy": {"miss-events-per-sec": 1_000_000}})
    before = ynl("dev-get")[1]
    try:
        rme.run(f"rm -f /tmp/listen.ready; (python3 /tmp/rack/ncsi_listen.py {spec} "
                f"{flows} /tmp/rack/listen.json /tmp/listen.ready "
                "> /tmp/rack/listen.log 2>&1 &); "
                "for i in $(seq 600); do [ -e /tmp/listen.ready ] && exit 0; sleep 0.1; done; "
                "exit 1", timeout=120)
        _, sent = server.run(f"python3 /tmp/rack/ncsi_burst.py {SERVER_IP} {PEER_IP} "
                             f"{BURST_SRC_PORT} {BURST_BASE_PORT} {flows}", timeout=300)
        rme.run("for i in $(seq 1200); do [ -s /tmp/rack/listen.json ] && exit 0; sleep 0.1; "
                "done; exit 1", timeout=180)
    finally:
        ynl("policy-set", {"policy": {"miss-events-per-sec": policy["miss-events-per-sec"]}})
    after = ynl("dev-get")[1]
    with open(os.path.join(r.shared, "listen.json")) as f:
        got = json.load(f)
    times = got["installed"]
    misses = after["counters"]["table-misses"] - before["counters"]["table-misses"]
    print(f"Burst through the RME: {flows} new UDP flows sent at once by the server VM "
          f"({sent.strip()} s), NIC misses {misses}, events seen {got['events']}, "
          f"installed {len(times)}")
    if len(times) < 2:
        raise rack.RackError("fewer than two flows of the burst were installed")
    span = times[-1] - times[0]
    rate = (len(times) - 1) / span if span > 0 else float("inf")
    bound = link_bound(len(times), BATCH)
    print(f"  installs: {rate:.0f} rules/s over {span * 1e3:.1f} ms (first to last install "
          f"event); link bound in {BATCH}-record SETs {bound:.0f} rules/s: "
          f"{rate / bound:.3f} of it")
    # The server cannot miss faster than it sends: no install rate above
    # this can be measured here.
    send_time = float(sent.split()[-1])
    if send_time > 0:
        offered = flows / send_time
        print(f"  misses offered: {offered:.0f} flows/s (the server's send rate), "
              f"{offered / bound:.3f} of the link bound; installs reached "
              f"{rate / offered:.2f} of it")
    if len(times) < flows:
        notes.append(f"{flows - len(times)} flows of the burst were not installed (miss "
                     "events dropped by the module's 512-entry AEN queue, or suppressed)")
    return notes


def main():
    parts = [p.strip() for p in os.environ.get("BMGNIC_BENCH_PARTS", "rate,miss,burst").split(",")
             if p.strip()]
    if not parts or set(parts) - {"rate", "miss", "burst"}:
        raise SystemExit(f"BMGNIC_BENCH_PARTS: want a list of rate, miss and burst, got {parts}")
    burst = int(os.environ.get("BMGNIC_BENCH_BURST", "500"))
    rules = int(os.environ.get("BMGNIC_BENCH_RULES", "4096"))
    flows = int(os.environ.get("BMGNIC_BENCH_FLOWS", "30"))
    rounds = int(os.environ.get("BMGNIC_BENCH_ROUNDS", "5"))
    notes = []
    try:
        with rack.Rack("ncsi_install") as r:
            print(f"accel: {os.environ.get('BMGNIC_ACCEL', 'tcg')} "
                  f"({' '.join(rack.accel_args())}); {os.cpu_count()} host CPUs", flush=True)
            if "rate" in parts:
                notes += install_rate(r, rules, rounds)
                print(flush=True)
            vms = start_rack(r) if {"miss", "burst"} & set(parts) else None
            if "miss" in parts:
                notes += miss_latency(r, vms, flows)
                print(flush=True)
            if "burst" in parts:
                notes += burst_install(r, vms, burst)
            for n in notes:
                print(f"# {n}")
            if notes:
                r.failed = True
    except rack.RackError as e:
        print(f"ncsi_install: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
