#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""An unmodified SDN controller runs the tenant: os-ken, with the rack's
app (tools/testing/openflow/rack_app.py), drives the RME daemon's OpenFlow
agent, which drives bmgnic_rme, which drives the NIC.

Rack: the model, the server VM (bmgnic), the RME VM (bmgnic_rme on its
sideband; a management NIC on user-mode networking whose OpenFlow port the
host's loopback reaches) and the peer VM (Linux's vxlan device). The RME
is provisioned by the daemon's command line (the guest's identity and the
VTEPs: the cloud's, not the controller's). The controller, in this
process, connects to the agent (bmgnic-rmed --controller ptcp:6653) and
is the only thing that configures the tenant: its VNI, flows, ACL and
meter. No ynl request changes anything (one reads the device counters to
compare).
"""

import os
import struct
import sys
import time

import bmgnic_env
from bmgnic_env import iperf3, pings, rack, wait_for, TOP

sys.path.insert(0, os.path.join(TOP, "tools/testing/openflow"))
import rack_controller  # noqa: E402

rack_controller.need_os_ken()

from lib.py import ksft_eq, ksft_ge, ksft_in, ksft_lt, ksft_pr, ksft_true  # noqa: E402

VNI = rack.VNI
PEER_IP, FACTORY_MAC = rack.PEER_IP, rack.FACTORY_MAC
BILLING_PORT, METER_PORT, DENY_PORT, LEARN_PORT = 5201, 5203, 5202, 5301
METER_KBPS = 5000
UDP_OVERHEAD = 14 + 20 + 8
FABRIC = 2
# ofp_port_reason and ofp_port_state (OpenFlow 1.3, 7.2.1).
OFPPR_MODIFY = 2
OFPPS_LINK_DOWN, OFPPS_LIVE = 1 << 0, 1 << 2


def start(r):
    _, server, rme, peer, app = rack_controller.openflow_rack(r)
    return (r, app, server, rme, peer, rack.Ynl(rme, r.ynl()))


def test_controller_configures_the_tenant(r, app, s, rme, peer, ynl):
    ksft_eq(app.datapath_id, int(FACTORY_MAC.replace(":", ""), 16), "datapath id not the guest MAC")
    # Before the controller says anything, the NIC drops what no rule
    # matches: no tenant traffic.
    ksft_eq(pings(s, 2, interval=0.3), 0, "traffic passed before the controller configured the tenant")
    app.configure_tenant(VNI, 1, METER_KBPS, METER_PORT, DENY_PORT, BILLING_PORT)
    peer.run("(timeout 20 tcpdump -n -i eth0 -c 2 udp port 4789 "
             "> /tmp/rack/vxlan.txt 2>/dev/null &); sleep 1")
    ksft_ge(pings(s, 4, interval=0.3), 3, "no ping through the tenant's VXLAN after the controller's flows")
    time.sleep(1)
    _, cap = peer.run("cat /tmp/rack/vxlan.txt")
    ksft_in(f"vni {VNI}", cap, "the fabric did not carry the controller's VNI")
    _, dev = ynl("dev-get")
    ksft_eq(dev["tenant"]["vni"], VNI, "the NIC's tenant VNI is not the controller's tunnel_id")
    ksft_eq(app.errors, [], "the switch refused part of the tenant's configuration")


def test_acl_denies_one_port(r, app, s, rme, peer, ynl):
    res = iperf3(s, peer, DENY_PORT, "--connect-timeout 3000", seconds=1)
    ksft_in("error", res, "TCP to the denied port connected")
    ok = iperf3(s, peer, BILLING_PORT, "", seconds=1)
    ksft_ge(ok.get("end", {}).get("sum_received", {}).get("bytes", 0), 100_000,
            "an allowed port did not work next to the deny rule")


def band_drops_match_the_loss(app, meter_id, before, end, size):
    """The meter's drop band, as the controller reads it, counted what
    iperf3 lost (this meter is the only place the rack drops them) and
    nothing of what arrived."""
    in_packets, in_bytes, bands = app.meter_stats()[meter_id]
    dropped, dropped_bytes = (bands[0][0] - before[2][0][0], bands[0][1] - before[2][0][1])
    lost, got = end.get("lost_packets", 0), end["packets"] - end.get("lost_packets", 0)
    ksft_pr(f"meter {meter_id}: band dropped {dropped} packets ({dropped_bytes} bytes); "
            f"iperf3 lost {lost} of {end['packets']}; {in_packets - before[0]} reached the meter")
    ksft_ge(dropped, 1, "the meter's band counted no drop")
    ksft_lt(abs(dropped - lost), max(10, 0.05 * lost),
            "the band's drops are not what iperf3 lost")
    ksft_ge(in_packets - before[0], got + dropped, "the meter counted fewer packets than it passed")
    ksft_eq(dropped_bytes, dropped * (size + UDP_OVERHEAD), "the band's bytes are not whole frames")
    ksft_ge(in_bytes - before[1], dropped_bytes, "the meter's bytes in are below its drops")


def test_meter_holds_rate(r, app, s, rme, peer, ynl):
    size = 1400
    before = app.meter_stats()[1]
    res = iperf3(s, peer, METER_PORT, f"-u -b {4 * METER_KBPS}K -l {size}", seconds=5)
    end = res["end"]["sum_received"] if "sum_received" in res.get("end", {}) else res["end"]["sum"]
    got_pkts = end["packets"] - end.get("lost_packets", 0)
    frames_bps = got_pkts * (size + UDP_OVERHEAD) / end["seconds"]
    rate = METER_KBPS * 1000 / 8
    ksft_pr(f"OpenFlow meter {METER_KBPS} kb/s = {rate:.0f} B/s: {frames_bps:.0f} B/s of frames "
            f"delivered ({frames_bps / rate:.3f} of the rate), offered {4 * METER_KBPS} kb/s")
    ksft_lt(abs(frames_bps - rate) / rate, 0.10, "meter not within 10% of its rate")
    band_drops_match_the_loss(app, 1, before, end, size)


def test_packet_meter_holds_rate(r, app, s, rme, peer, ynl):
    pps, port = 400, 5204
    app.packet_meter(2, pps, port, VNI, 1, cookie=7)
    size = 200
    before = app.meter_stats()[2]
    # Offered at four times the meter's packet rate.
    res = iperf3(s, peer, port, f"-u -b {4 * pps * size * 8} -l {size}", seconds=5)
    end = res["end"]["sum_received"] if "sum_received" in res.get("end", {}) else res["end"]["sum"]
    got = (end["packets"] - end.get("lost_packets", 0)) / end["seconds"]
    ksft_pr(f"OpenFlow packet meter {pps} packets/s: {got:.0f} packets/s delivered "
            f"({got / pps:.3f} of the rate), offered {4 * pps}")
    ksft_lt(abs(got - pps) / pps, 0.10, "packet meter not within 10% of its rate")
    band_drops_match_the_loss(app, 2, before, end, size)


def test_packet_in_then_the_flow_the_controller_installs(r, app, s, rme, peer, ynl):
    send = (f"python3 -c \"import socket,time; s=socket.socket(2,2); "
            f"[(s.sendto(b'x'*64, ('{PEER_IP}', {LEARN_PORT})), time.sleep(0.05)) for _ in range(N)]\"")

    def misses():
        return [m for _, m in app.packet_ins if m.match.get("udp_dst") == LEARN_PORT]

    s.run(send.replace("N", "3"))
    ksft_true(wait_for(lambda: app.learned, timeout=10), "no PACKET_IN, or no flow installed for it")
    m = misses()[0]
    ksft_eq((m.match["in_port"], m.match["ipv4_dst"]), (1, PEER_IP), "PACKET_IN's match")
    t_in, t_installed, _ = app.learned[0]
    time.sleep(1)
    cookie = 0x1000 + LEARN_PORT
    stats = app.flow_stats()
    ksft_in(cookie, stats, "the learned flow is not in the table")
    # The next packets do not miss: the learned flow counts them.
    n_missed = len(misses())
    s.run(send.replace("N", "10"))
    time.sleep(2)
    after = app.flow_stats()[cookie]
    others = [dict(m.match.items()) for _, m in app.packet_ins if m not in misses()]
    ksft_pr(f"PACKET_IN to flow installed (barrier answered): {(t_installed - t_in) * 1000:.1f} ms; "
            f"{n_missed} PACKET_IN for the flow before, {len(misses()) - n_missed} after; "
            f"the flow counted {after[0] - stats[cookie][0]} of 10 packets; other PACKET_INs: {others[:3]}")
    ksft_eq(len(misses()) - n_missed, 0, "packets still missed after the flow was installed")
    ksft_ge(after[0] - stats[cookie][0], 10, "the learned flow did not count the next packets")


def test_billing_matches_iperf3(r, app, s, rme, peer, ynl):
    size = 1000
    before = app.flow_stats()[4]
    res = iperf3(s, peer, BILLING_PORT, f"-u -b 8M -l {size}", seconds=3)
    sent = res["end"]["sum"]["packets"] if "sum" in res["end"] else res["end"]["sum_sent"]["packets"]
    expected = sent * (size + UDP_OVERHEAD)
    after = app.flow_stats()[4]
    billed = after[1] - before[1]
    ksft_pr(f"iperf3 sent {sent} datagrams = {expected} frame bytes; FLOW_STATS billed "
            f"{after[0] - before[0]} packets, {billed} bytes ({billed / expected:.4f})")
    ksft_lt(abs(billed - expected) / expected, 0.01, "billing not within 1% of iperf3's bytes")


def test_port_stats_are_the_device_counters(r, app, s, rme, peer, ynl):
    time.sleep(1)
    ports = app.port_stats()
    _, dev = ynl("dev-get")
    c = dev["counters"]
    host = ports[1]
    ksft_pr(f"PORT_STATS host rx {host.rx_packets}/{host.rx_bytes}, tx {host.tx_packets}/"
            f"{host.tx_bytes}; device tx {c['tx-packets']}/{c['tx-bytes']}, "
            f"rx {c['rx-packets']}/{c['rx-bytes']}")
    # The host port receives what the guest sends. Traffic may have moved
    # between the two reads (ARP): allow the difference of a few frames.
    ksft_lt(abs(host.rx_packets - c["tx-packets"]), 3)
    ksft_lt(abs(host.tx_packets - c["rx-packets"]), 3)
    ksft_eq(ports[2].tx_packets, host.rx_packets, "fabric TX is not the host's RX")


def test_flow_removed_on_idle_timeout(r, app, s, rme, peer, ynl):
    app.add_flow(0x77, dict(in_port=1, eth_type=0x0800, ip_proto=17, udp_dst=5999),
                 idle_timeout=2, encap=(VNI, 1001))
    ksft_true(wait_for(lambda: any(m.cookie == 0x77 for m in app.removed), timeout=10),
              "no FLOW_REMOVED for the idle flow")
    m = next(m for m in app.removed if m.cookie == 0x77)
    ksft_eq(m.reason, 0, "FLOW_REMOVED reason is not idle timeout")


def test_controller_away_nothing_opens(r, app, s, rme, peer, ynl):
    before = app.flow_stats()
    app.drop_connection()
    t0 = time.time()
    # While no controller is connected: traffic continues, the ACL holds.
    ksft_ge(pings(s, 3, interval=0.3), 2, "traffic stopped when the controller went away")
    res = iperf3(s, peer, DENY_PORT, "--connect-timeout 2000", seconds=1)
    ksft_in("error", res, "the denied port opened while the controller was away")
    ksft_true(time.time() - t0 < 8 or not app.connected.is_set(), "the check outlasted the absence")
    ksft_true(app.connected.wait(30), "the controller did not get back to the agent")
    after = app.flow_stats()
    ksft_eq(sorted(after), sorted(before), "flows changed across the reconnection")
    ksft_true(all(after[c][0] >= before[c][0] for c in after), "counters went back")
    ksft_ge(pings(s, 3, interval=0.3), 2, "no traffic after the reconnection")


def test_module_reloaded_under_the_agent(r, app, s, rme, peer, ynl):
    """bmgnic_rme is unloaded and loaded again under the daemon. The new
    module has none of the switch's rules, meters or VTEPs (it clears the
    NIC's table when it starts). The daemon hears of it from nlctrl,
    installs its state again and joins the new module's events group:
    the tenant's traffic and the ACL work as before, the flow counters go
    on from where they were, and a new flow is learned from a PACKET_IN."""
    before = app.flow_stats()
    rules = len(ynl("flow-get", kind="dump")[1])
    meters = len(ynl("meter-get", kind="dump")[1])
    t0 = time.time()
    rme.run(f"rmmod bmgnic_rme; insmod {rack.MODULES[1]} sideband=eth0")
    back = wait_for(lambda: len(ynl("flow-get", kind="dump")[1]) == rules, timeout=60)
    ksft_pr(f"{rules} rules and {meters} meter(s) before the reload; the rules "
            f"{'back' if back else 'still not back'} {time.time() - t0:.1f} s after rmmod")
    ksft_true(back, "the daemon did not install its flows in the reloaded module")
    ksft_eq(len(ynl("meter-get", kind="dump")[1]), meters, "the meters did not come back")
    ksft_ge(pings(s, 3, interval=0.3), 2, "no tenant traffic after the module came back")
    res = iperf3(s, peer, DENY_PORT, "--connect-timeout 2000", seconds=1)
    ksft_in("error", res, "the denied port opened across the reload")
    after = app.flow_stats()
    ksft_eq(sorted(after), sorted(before), "the controller's flows changed across the reload")
    ksft_true(all(after[c][0] >= before[c][0] for c in after), "flow counters went back")
    port = LEARN_PORT + 1
    s.run(f"python3 -c \"import socket,time; s=socket.socket(2,2); "
          f"[(s.sendto(b'x'*64, ('{PEER_IP}', {port})), time.sleep(0.05)) for _ in range(3)]\"")
    ksft_true(wait_for(lambda: any(p == port for _, _, p in app.learned), timeout=15),
              "no PACKET_IN from the reloaded module's events")
    _, log = rme.run("cat /tmp/rack/rmed.log")
    ksft_in("reloaded", log, "the daemon did not notice the reload")


def fabric_port_statuses(app, since):
    return [(t, reason, port) for t, reason, port in app.port_statuses
            if port.port_no == FABRIC and t >= since]


def carrier(s, dev):
    return s.run(f"cat /sys/class/net/{dev}/carrier", check=False)[1].strip()


def test_fabric_cable_pulled_and_plugged_back(r, app, s, rme, peer, ynl):
    """The fabric cable is pulled: the peer's socket, the model's link
    partner, leaves its path. The NIC loses link; the guest sees its
    carrier go, the RME the link in dev-get, the controller a PORT_STATUS.
    Plugged back, each sees the link come back and the tenant's traffic
    flows again."""
    model = r.models[0]
    dev = rack.server_netdev(s)
    ksft_eq(carrier(s, dev), "1", "no carrier before the cable was pulled")
    unplugged = model.fabric_remote + ".unplugged"
    t0 = time.time()
    os.rename(model.fabric_remote, unplugged)
    try:
        ksft_true(wait_for(lambda: fabric_port_statuses(app, t0), timeout=20),
                  "no PORT_STATUS for the fabric port after the cable was pulled")
        t, reason, port = fabric_port_statuses(app, t0)[0]
        ksft_pr(f"cable pulled: PORT_STATUS after {t - t0:.1f} s, reason {reason}, "
                f"state {port.state:#x}")
        ksft_eq(reason, OFPPR_MODIFY)
        ksft_true(port.state & OFPPS_LINK_DOWN, "the fabric port is not LINK_DOWN")
        ksft_true(wait_for(lambda: carrier(s, dev) == "0", timeout=10),
                  "the guest kept its carrier without a fabric link")
        ksft_eq(ynl("dev-get")[1]["fabric-link"], 0, "dev-get says the fabric has link")
    finally:
        os.rename(unplugged, model.fabric_remote)
    t1 = time.time()
    ksft_true(wait_for(lambda: fabric_port_statuses(app, t1), timeout=20),
              "no PORT_STATUS for the fabric port after the cable was plugged back")
    t, reason, port = fabric_port_statuses(app, t1)[0]
    ksft_pr(f"plugged back: PORT_STATUS after {t - t1:.1f} s, state {port.state:#x}")
    ksft_eq(port.state & (OFPPS_LINK_DOWN | OFPPS_LIVE), OFPPS_LIVE, "the fabric port is not live")
    ksft_true(wait_for(lambda: carrier(s, dev) == "1", timeout=10), "the guest's carrier did not return")
    ksft_eq(ynl("dev-get")[1]["fabric-link"], 1, "dev-get says the fabric has no link")
    ksft_eq(len(fabric_port_statuses(app, t0)), 2, "not one PORT_STATUS per change")
    ksft_ge(pings(s, 3, interval=0.3), 2, "no tenant traffic after the cable came back")


def test_malformed_and_unsupported_messages(r, app, s, rme, peer, ynl):
    dp = app.dp
    p = dp.ofproto_parser
    ofp = dp.ofproto
    vlan = p.OFPFlowMod(dp, match=p.OFPMatch(vlan_vid=(ofp.OFPVID_PRESENT | 5)), instructions=[])
    ksft_eq(app.request_error(vlan), (ofp.OFPET_BAD_MATCH, ofp.OFPBMC_BAD_FIELD))
    group = p.OFPFlowMod(dp, match=p.OFPMatch(in_port=1), instructions=[
        p.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [p.OFPActionGroup(1)])])
    ksft_eq(app.request_error(group), (ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_OUT_GROUP))
    # A flow mod whose match claims more bytes than the message has.
    raw = bytearray(struct.pack("!BBHI", 4, 14, 56, 0xbad) + bytes(40) + struct.pack("!HH", 1, 200)
                    + bytes(4))
    ksft_eq(app.raw(bytes(raw), 0xbad), (ofp.OFPET_BAD_MATCH, ofp.OFPBMC_BAD_LEN))
    ksft_eq(app.raw(struct.pack("!BBHI", 4, 99, 8, 0xbae), 0xbae),
            (ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_BAD_TYPE))
    ksft_ge(pings(s, 2, interval=0.3), 1, "the tenant's traffic stopped after the errors")


def main():
    bmgnic_env.run_in_rack("openflow", start, [
        test_controller_configures_the_tenant,
        test_acl_denies_one_port,
        test_meter_holds_rate,
        test_packet_meter_holds_rate,
        test_packet_in_then_the_flow_the_controller_installs,
        test_billing_matches_iperf3,
        test_port_stats_are_the_device_counters,
        test_flow_removed_on_idle_timeout,
        test_controller_away_nothing_opens,
        test_module_reloaded_under_the_agent,
        test_fabric_cable_pulled_and_plugged_back,
        test_malformed_and_unsupported_messages,
    ])


if __name__ == "__main__":
    main()
