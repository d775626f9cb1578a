#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The RME drives the NIC over NC-SI, and user space drives the RME only
through the kernel's own ynl CLI and the bmgnic generic netlink family.

Rack: the server VM (bmgnic), the RME VM (bmgnic_rme on its sideband), the
peer VM with Linux's vxlan device as the remote VTEP, and a model whose
flow table holds only 8 entries, so that the RME's software table must be
cached in it.
"""

import json
import re
import signal
import time

import bmgnic_env
from bmgnic_env import iperf3, pings, rack, wait_for
from lib.py import ksft_eq, ksft_ge, ksft_in, ksft_lt, ksft_ne, ksft_pr, ksft_true

VNI = rack.VNI
SERVER_IP, PEER_IP = rack.SERVER_IP, rack.PEER_IP
LOCAL_VTEP = rack.LOCAL_VTEP
NIC_SLOTS = 8
# Inner frame bytes beyond a UDP payload: Ethernet, IPv4 and UDP headers.
UDP_OVERHEAD = 14 + 20 + 8


def flow(ynl, priority, action, match, vtep=None, meter=None):
    args = {"priority": priority, "action": action, "match": match}
    if vtep is not None:
        args["vtep"] = vtep
    if meter is not None:
        args["meter"] = meter
    _, reply = ynl("flow-add", args=args)
    return reply["id"]


def start(r):
    model, vms, ynl = rack.vxlan_tenant_rack(r, table_size=NIC_SLOTS)
    return (model, vms["server"], vms["rme"], vms["peer"], ynl)


def dev_get(ynl):
    return ynl("dev-get")[1]


def drops(dev, reason):
    return next(d["packets"] for d in dev["counters"]["drops"] if d["reason"] == reason)


def test_channel_up(model, s, rme, peer, ynl):
    dev = dev_get(ynl)
    ksft_eq(dev["ncsi-version"], "1.1.0")
    ksft_eq(dev["nic-flow-slots"], NIC_SLOTS)
    ksft_eq(dev["sideband-name"], "eth0")
    ksft_eq(dev["tenant"]["vni"], VNI)
    ksft_eq(dev["identity"]["ipv4"], [SERVER_IP])


def test_tenant_traffic_is_vxlan_to_linux(model, s, rme, peer, ynl):
    peer.run("(timeout 20 tcpdump -n -i eth0 -c 4 udp port 4789 "
             "> /tmp/rack/vxlan.txt 2>/dev/null &); sleep 1")
    ksft_ge(pings(s, 4), 3, "ping through VXLAN to the peer's vxlan device failed")
    time.sleep(1)
    _, cap = peer.run("cat /tmp/rack/vxlan.txt")
    ksft_pr("tcpdump on the peer's fabric port:\n" + cap.strip())
    ksft_in(f"VXLAN, flags [I] (0x08), vni {VNI}", cap)
    ksft_in(f"{LOCAL_VTEP}", cap)
    _, link = peer.run("ip -s -j link show vxlan0")
    ksft_ge(json.loads(link)[0]["stats64"]["rx"]["packets"], 3,
            "the peer's vxlan device delivered nothing")


def test_deny_rule_drops(model, s, rme, peer, ynl):
    before = drops(dev_get(ynl), "tx_drop_denied")
    deny = flow(ynl, 100, "drop", {"ethertype": 0x0800, "ip-proto": 6, "l4-dst": 5202})
    res = iperf3(s, peer, 5202, "--connect-timeout 3000", seconds=1)
    ksft_in("error", res, "TCP to the denied port connected")
    ok = iperf3(s, peer, 5201, "", seconds=1)
    ksft_ge(ok.get("end", {}).get("sum_received", {}).get("bytes", 0), 100_000,
            "an allowed port did not work next to the deny rule")
    after = drops(dev_get(ynl), "tx_drop_denied")
    ksft_ge(after - before, 1, "the NIC counted no denied packet")
    _, got = ynl("flow-get", args={"id": deny})
    ksft_ge(got["packets"], 1, "the deny rule counted nothing")
    ksft_pr(f"deny rule {deny}: {got['packets']} packets dropped; "
            f"tx_drop_denied +{after - before}")


def test_meter_holds_rate(model, s, rme, peer, ynl):
    rate = 625_000  # bytes/s of inner frames: 5 Mbit/s
    ynl("meter-set", args={"index": 0, "rate": rate, "burst": 16_000})
    flow(ynl, 50, "encap", {"ethertype": 0x0800, "ip-proto": 17, "l4-dst": 5203},
         vtep=1, meter=0)
    size = 1400
    res = iperf3(s, peer, 5203, f"-u -b 20M -l {size}", seconds=5)
    end = res["end"]["sum_received"] if "sum_received" in res.get("end", {}) else res["end"]["sum"]
    # The receiver's view: datagrams that made it, over the test time.
    got_pkts = end["packets"] - end.get("lost_packets", 0)
    frames_bps = got_pkts * (size + UDP_OVERHEAD) / end["seconds"]
    ksft_pr(f"meter {rate} B/s: {frames_bps:.0f} B/s of frames delivered "
            f"({frames_bps / rate:.3f} of the rate), offered 20 Mbit/s")
    ksft_lt(abs(frames_bps - rate) / rate, 0.10, "meter not within 10% of its rate")
    metered = drops(dev_get(ynl), "tx_drop_metered")
    ksft_ge(metered, 1)
    # The meter's own counters, from the NIC: its drops are the port's
    # metered drops (it is the only meter), and what it passed arrived.
    [m] = ynl("meter-get", kind="dump")[1]
    ksft_pr(f"meter-get: passed {m.get('passed-packets')}, dropped {m.get('dropped-packets')} "
            f"packets; port tx_drop_metered {metered}")
    ksft_eq(m.get("dropped-packets"), metered, "the meter's drops are not the port's metered drops")
    ksft_eq(m.get("dropped-bytes"), metered * (size + UDP_OVERHEAD))
    ksft_ge(m.get("passed-packets", 0), got_pkts, "the meter passed fewer packets than arrived")


def test_billing_counters_match_iperf3(model, s, rme, peer, ynl):
    fid = flow(ynl, 50, "encap", {"ethertype": 0x0800, "ip-proto": 17, "l4-dst": 5204}, vtep=1)
    size = 1000
    res = iperf3(s, peer, 5204, f"-u -b 8M -l {size}", seconds=3)
    sent = res["end"]["sum"]["packets"] if "sum" in res["end"] else res["end"]["sum_sent"]["packets"]
    expected = sent * (size + UDP_OVERHEAD)
    _, got = ynl("flow-get", args={"id": fid})
    ksft_pr(f"iperf3 sent {sent} datagrams = {expected} frame bytes; "
            f"flow {fid} billed {got['packets']} packets, {got['bytes']} bytes")
    ksft_lt(abs(got["bytes"] - expected) / expected, 0.01,
            "billed bytes not within 1% of what iperf3 sent")
    # Deleting the rule returns the same totals, NIC counters folded in.
    _, final = ynl("flow-del", args={"id": fid})
    ksft_ge(final["bytes"], got["bytes"])


def test_quarantine_and_release(model, s, rme, peer, ynl):
    ynl("policy-set", args={"policy": {"quarantined": 1}})
    ksft_eq(pings(s, 2, 1), 0, "traffic passed in quarantine")
    ksft_eq(dev_get(ynl)["policy"]["quarantined"], 1)
    ynl("policy-set", args={"policy": {"quarantined": 0}})
    dev = rack.server_netdev(s)
    deadline = time.time() + 10
    while time.time() < deadline and s.run(f"cat /sys/class/net/{dev}/operstate")[1].strip() != "up":
        time.sleep(0.2)
    s.run(f"ip neigh flush dev {dev}")
    ksft_ge(pings(s, 3), 3, "traffic did not resume after release")


def test_more_flows_than_nic_entries(model, s, rme, peer, ynl):
    ports = list(range(6000, 6016))
    added = ynl.multi("flow-add", [{"priority": 20, "action": "encap", "vtep": 1,
                                    "match": {"ethertype": 0x0800, "ip-proto": 17, "l4-dst": p}}
                                   for p in ports])
    ids = [reply["id"] for reply in added]
    per_port = 10
    peer.run("(timeout 60 tcpdump -n -i vxlan0 -l udp and portrange 6000-6015 "
             "> /tmp/rack/ports.txt 2>/dev/null &); sleep 1")
    # Round robin over the ports, so that each packet needs an entry the
    # previous ones evicted.
    script = ("python3 -c 'import socket, time\n"
              "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
              "for i in range(%d):\n"
              "    for p in %r:\n"
              "        s.sendto(b\"x\", (\"%s\", p)); time.sleep(0.02)'"
              % (per_port, ports, PEER_IP))
    s.run(script, timeout=300)
    time.sleep(2)
    peer.run("pkill tcpdump; true")
    _, cap = peer.run("cat /tmp/rack/ports.txt")
    counts = {p: len(re.findall(rf"\.{p}: UDP", cap)) for p in ports}
    dev = dev_get(ynl)
    table = {rule["id"]: rule for rule in ynl("flow-get", kind="dump")[1]}
    billed = {p: table[fid]["packets"] for fid, p in zip(ids, ports)}
    ksft_pr(f"{len(ports)} flows over {NIC_SLOTS} NIC entries: received per port {counts}; "
            f"billed per port {billed}; evictions {dev['counters']['evictions']}, "
            f"table misses {dev['counters']['table-misses']}")
    ksft_ge(dev["counters"]["evictions"], len(ports), "no evictions: the NIC table was not full")
    ksft_ge(min(counts.values()), per_port // 2, "a flow lost most of its packets")
    # What reached the peer was billed to its rule, across evictions.
    for p in ports:
        ksft_eq(billed[p], counts[p], f"port {p}: billed packets differ from those delivered")


def test_anti_spoofing_drops_and_reports(model, s, rme, peer, ynl):
    def events_text():
        return rme.run("cat /tmp/rack/events.txt")[1]

    # Unbuffered, so that each event is in the file as it comes. ynl
    # subscribes before it sends the dev-get: once its reply is in the
    # file, the subscriber listens.
    cli = ynl.cli.replace("python3 ", "python3 -u ", 1)
    rme.run(f"({cli} --output-json --subscribe events --do dev-get --duration 60 "
            "> /tmp/rack/events.txt 2>&1 &)")
    ksft_true(wait_for(lambda: events_text().strip(), timeout=60, interval=0.5),
              "the event subscriber did not start")
    before = drops(dev_get(ynl), "tx_drop_spoofed")
    dev = rack.server_netdev(s)
    # Root in the guest takes an address the RME did not assign...
    s.run(f"ip addr add 10.10.1.99/24 dev {dev}")
    rc, _ = s.run(f"ping -n -c 2 -W 1 -I 10.10.1.99 {PEER_IP}", check=False, timeout=30)
    s.run(f"ip addr del 10.10.1.99/24 dev {dev}")
    ksft_ne(rc, 0, "a spoofed source IP got through")
    # ... and sends from a MAC that is not its own, on a raw socket (an
    # IEEE local experimental ethertype, so only the MAC is wrong).
    s.run("python3 -c 'import socket\n"
          f"s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind((\"{dev}\", 0))\n"
          "s.send(bytes.fromhex(\"ffffffffffff02deadbeef0188b5\") + bytes(46))'")
    time.sleep(1)
    after = drops(dev_get(ynl), "tx_drop_spoofed")
    ksft_ge(after - before, 3, "the NIC did not drop every spoofed frame")
    wait_for(lambda: all(x in events_text() for x in ("10.10.1.99", "02:de:ad:be:ef:01")),
             timeout=20, interval=1)
    # The first line is the dev-get's reply, the events come after it.
    events = "\n".join(events_text().splitlines()[1:])
    violations = [l for l in events.splitlines() if "violation" in l]
    ksft_pr(f"tx_drop_spoofed +{after - before}; {len(violations)} violation events, first: "
            + (violations[0][:300] if violations else "none"))
    ksft_ge(len(violations), 1, "the RME saw no violation event")
    ksft_in("10.10.1.99", events, "no event names the spoofed IP")
    ksft_in("02:de:ad:be:ef:01", events, "no event names the spoofed MAC")
    ksft_ge(pings(s, 3), 3, "the guest's own traffic suffered")


def test_bad_requests_change_nothing(model, s, rme, peer, ynl):
    before = dev_get(ynl)
    # Unprivileged: refused by the family's admin-perm flag.
    rc, out = ynl("policy-set", args={"policy": {"quarantined": 1}}, check=False, user=65534)
    ksft_ne(rc, 0)
    ksft_in("Operation not permitted", out)
    # Out of range: the policy refuses it with the attribute named.
    rc, out = ynl("tenant-set", args={"tenant": {"vni": 1 << 24}}, check=False)
    ksft_ne(rc, 0)
    ksft_in("out of range", out)
    ksft_in(".tenant.vni", out)
    # A port match without an L4 protocol: refused with the reason.
    rc, out = ynl("flow-add", args={"priority": 1, "action": "drop",
                                    "match": {"ethertype": 0x0800, "l4-dst": 22}}, check=False)
    ksft_ne(rc, 0)
    ksft_in("port match needs an exact L4 protocol", out)
    rc, out = ynl("flow-del", args={"id": 999999}, check=False)
    ksft_ne(rc, 0)
    ksft_in("no such flow", out)
    after = dev_get(ynl)
    for k in ("identity", "tenant", "policy", "sw-flows"):
        ksft_eq(after[k], before[k], f"{k} changed after refused requests")


def test_unresponsive_nic_times_out(model, s, rme, peer, ynl):
    model.proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.time()
        rc, out = ynl("dev-get", check=False)
        took = time.time() - t0
        # A dump reads the meters' counters from the NIC: it fails the
        # same way, without extack (a dump's error has none).
        t1 = time.time()
        rc_meters, out_meters = ynl("meter-get", kind="dump", check=False)
        took_meters = time.time() - t1
    finally:
        model.proc.send_signal(signal.SIGCONT)
    ksft_pr(f"dev-get with the NIC stopped: rc {rc} after {took:.1f} s: {out.strip()[-120:]}")
    ksft_pr(f"meter-get dump with the NIC stopped: rc {rc_meters} after {took_meters:.1f} s: "
            f"{out_meters.strip()[-120:]}")
    ksft_ne(rc, 0)
    ksft_in("the NIC did not answer over NC-SI", out)
    ksft_lt(took, 30, "the timeout took too long")
    ksft_ne(rc_meters, 0, "meter-get answered with the NIC stopped")
    ksft_in("timed out", out_meters)
    ksft_lt(took_meters, 30, "the meter dump's timeout took too long")
    ksft_eq(dev_get(ynl)["tenant"]["vni"], VNI, "the NIC did not come back")


def main():
    bmgnic_env.run_in_rack("rme_control", start, [
        test_channel_up,
        test_tenant_traffic_is_vxlan_to_linux,
        test_deny_rule_drops,
        test_meter_holds_rate,
        test_billing_counters_match_iperf3,
        test_quarantine_and_release,
        test_more_flows_than_nic_entries,
        test_anti_spoofing_drops_and_reports,
        test_bad_requests_change_nothing,
        test_unresponsive_nic_times_out,
    ])


if __name__ == "__main__":
    main()
