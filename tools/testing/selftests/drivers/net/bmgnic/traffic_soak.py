#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Minutes of normal traffic on the VXLAN tenant: no device error, no
reset, no drop by the driver, and counters that agree.

Rack: the VXLAN tenant of rme_control (the server's bmgnic behind the RME's
isolation pipeline, the peer's Linux vxlan device). iperf3 runs TCP both
ways, UDP at 50 Mbit/s, a 64-byte UDP flood and 4 parallel TCP streams;
between phases the rings are resized and the MTU changed and restored.
Each of these once made the device stop on a TX producer index "more than
a ring ahead" and the driver reset it hundreds of times a minute.
"""

import json
import re

import bmgnic_env
from bmgnic_env import rack, scaled
from lib.py import ksft_eq, ksft_ge, ksft_pr

PEER_IP = rack.PEER_IP


def start(r):
    model, vms, ynl = rack.vxlan_tenant_rack(r)
    dev = rack.server_netdev(vms["server"])
    vms["peer"].run("iperf3 -s -D -p 5301 -I /tmp/iperf3-soak.pid; sleep 0.5")
    return (vms["server"], vms["peer"], dev)


def ethtool_stats(vm, dev):
    _, out = vm.run(f"ethtool -S {dev}")
    return {k: int(v) for k, v in re.findall(r"^\s+(\w+): (\d+)$", out, re.M)}


def iperf3(s, args, seconds):
    rc, out = s.run(f"iperf3 -c {PEER_IP} -p 5301 -t {seconds} -J {args}", check=False,
                    timeout=seconds + 120)
    try:
        res = json.loads(out)
    except ValueError:
        res = {"error": out.strip()[-300:]}
    return res


def moved(res):
    end = res.get("end", {})
    for key in ("sum_received", "sum"):
        if key in end:
            return end[key].get("bytes", 0)
    return 0


def check_clean(s, dev, phase):
    st = ethtool_stats(s, dev)
    ksft_pr(f"after {phase}: tx_packets {st['tx_packets']}, rx_packets {st['rx_packets']}, "
            f"driver_resets {st['driver_resets']}, driver_tx_dropped {st['driver_tx_dropped']}, "
            f"tx_drop_bad_descriptor {st['tx_drop_bad_descriptor']}")
    ksft_eq(st["driver_resets"], 0, f"the driver reset the device during {phase}")
    ksft_eq(st["driver_tx_dropped"], 0, f"the driver dropped frames during {phase}")
    ksft_eq(st["tx_drop_bad_descriptor"], 0, f"the device saw bad descriptors during {phase}")
    ksft_eq(st["driver_rx_bad_descriptor"], 0, f"bad RX descriptors during {phase}")
    return st


def test_tcp_both_ways(s, peer, dev):
    secs = scaled(20, minimum=5)
    for args in ("", "-R"):
        res = iperf3(s, args, secs)
        ksft_ge(moved(res), 1_000_000, f"TCP {args or 'upload'} moved less than 1 MB: "
                f"{res.get('error', '')}")
    check_clean(s, dev, "TCP both ways")


def test_rings_and_mtu_between_phases(s, peer, dev):
    for rx, tx in ((512, 128), (64, 1024), (256, 256)):
        s.run(f"ethtool -G {dev} rx {rx} tx {tx}")
        res = iperf3(s, "-u -b 20M -l 1000", scaled(5, minimum=2))
        ksft_ge(moved(res), 100_000, f"no UDP traffic with rings rx {rx} tx {tx}")
    # The tenant's inner MTU; the peer's vxlan device keeps 1500.
    for mtu in (1400, 1500):
        s.run(f"ip link set {dev} mtu {mtu}")
        res = iperf3(s, "", scaled(5, minimum=2))
        ksft_ge(moved(res), 100_000, f"no TCP traffic at MTU {mtu}")
    check_clean(s, dev, "ring resizes and MTU changes")


def test_udp_and_small_packet_flood(s, peer, dev):
    secs = scaled(20, minimum=5)
    res = iperf3(s, "-u -b 50M -l 1400", secs)
    ksft_ge(moved(res), 1_000_000, "UDP at 50 Mbit/s moved less than 1 MB")
    # 64-byte datagrams, as fast as the guest can send them, both ways.
    for args in ("-u -b 0 -l 64", "-u -b 0 -l 64 -R"):
        res = iperf3(s, args, secs)
        ksft_ge(moved(res), 100_000, f"64-byte flood ({args}) moved too little")
    check_clean(s, dev, "UDP and the 64-byte floods")


def test_parallel_streams_and_counters(s, peer, dev):
    before = ethtool_stats(s, dev)
    res = iperf3(s, "-P 4", scaled(20, minimum=5))
    ksft_ge(moved(res), 1_000_000, "4 parallel TCP streams moved less than 1 MB")
    st = check_clean(s, dev, "4 parallel streams")
    ksft_ge(st["tx_packets"] - before["tx_packets"], 1000, "the device counted no TX")
    # ip -s link and ethtool -S fold the same device counters.
    _, js = s.run(f"ip -s -j link show {dev}")
    link = json.loads(js)[0]["stats64"]
    st = ethtool_stats(s, dev)
    ksft_ge(link["tx"]["packets"], st["tx_packets"] - 100, "ip -s link lags the device's TX count")
    ksft_ge(st["tx_packets"], link["tx"]["packets"], "ip -s link ahead of the device's TX count")
    ksft_ge(link["rx"]["packets"], 1000)


def main():
    bmgnic_env.run_in_rack("traffic_soak", start, [
        test_tcp_both_ways,
        test_rings_and_mtu_between_phases,
        test_udp_and_small_packet_flood,
        test_parallel_streams_and_counters,
    ])


if __name__ == "__main__":
    main()
