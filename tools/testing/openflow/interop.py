#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The RME daemon's OpenFlow 1.3 codec against os-ken's, in both
directions, with no network: a disagreement is a bug in ours until the
specification says otherwise.

1. Controller to switch: os-ken serializes the messages a controller sends
   (FLOW_MOD with matches, instructions and actions, METER_MOD, every
   multipart request the agent serves, ROLE_REQUEST, SET_CONFIG, ...);
   `ofcodec echo` decodes and re-encodes each; the bytes must come back
   identical.
2. Switch to controller: `ofcodec samples` writes one of each message the
   agent sends; os-ken's parser must read each, and the fields checked
   below must hold what the codec wrote.
3. Malformed requests get the OpenFlow error a controller expects.

Usage: interop.py OFCODEC   (the path of the built `ofcodec` example)
Prints KTAP.
"""

import struct
import subprocess
import sys

from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser


class Datapath:
    """What os-ken's message classes need of a datapath to serialize."""
    ofproto = ofp
    ofproto_parser = parser


DP = Datapath()
results = []


def case(name, ok, detail=""):
    results.append((name, bool(ok), detail))


def serialize(msg, xid):
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


def controller_messages():
    """One of each message a controller sends that the agent reads."""
    m = parser.OFPMatch(in_port=1, eth_type=0x0800, ip_proto=17,
                        ipv4_dst=("10.0.0.0", "255.255.255.0"), udp_dst=5201)
    encap = [parser.OFPActionSetField(tunnel_id=5001), parser.OFPActionOutput(2)]
    yield "FLOW_MOD add, meter and apply-actions", parser.OFPFlowMod(
        DP, cookie=0xc0ffee, command=ofp.OFPFC_ADD, idle_timeout=10, priority=100,
        flags=ofp.OFPFF_SEND_FLOW_REM, match=m,
        instructions=[parser.OFPInstructionMeter(1),
                      parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, encap)])
    yield "FLOW_MOD delete-strict with cookie mask", parser.OFPFlowMod(
        DP, cookie=7, cookie_mask=0xff, command=ofp.OFPFC_DELETE_STRICT,
        out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY, priority=5,
        match=parser.OFPMatch(eth_src=("02:00:00:00:00:00", "ff:ff:ff:00:00:00"),
                              vlan_vid=(ofp.OFPVID_PRESENT | 10)))
    yield "FLOW_MOD with an empty drop", parser.OFPFlowMod(
        DP, command=ofp.OFPFC_MODIFY, priority=1, match=parser.OFPMatch(eth_type=0x86dd),
        instructions=[parser.OFPInstructionActions(ofp.OFPIT_CLEAR_ACTIONS, [])])
    yield "METER_MOD kbps drop band", parser.OFPMeterMod(
        DP, command=ofp.OFPMC_ADD, flags=ofp.OFPMF_KBPS | ofp.OFPMF_STATS, meter_id=1,
        bands=[parser.OFPMeterBandDrop(rate=10000, burst_size=100)])
    yield "METER_MOD pktps drop band", parser.OFPMeterMod(
        DP, command=ofp.OFPMC_MODIFY, flags=ofp.OFPMF_PKTPS, meter_id=2,
        bands=[parser.OFPMeterBandDrop(rate=1000, burst_size=0)])
    yield "ROLE_REQUEST", parser.OFPRoleRequest(DP, ofp.OFPCR_ROLE_MASTER, 3)
    yield "SET_CONFIG", parser.OFPSetConfig(DP, 0, 0xffff)
    yield "GET_CONFIG_REQUEST", parser.OFPGetConfigRequest(DP)
    yield "FEATURES_REQUEST", parser.OFPFeaturesRequest(DP)
    yield "BARRIER_REQUEST", parser.OFPBarrierRequest(DP)
    yield "ECHO_REQUEST", parser.OFPEchoRequest(DP, data=b"are you there")
    yield "multipart DESC", parser.OFPDescStatsRequest(DP, 0)
    yield "multipart FLOW", parser.OFPFlowStatsRequest(DP, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY,
                                                     ofp.OFPG_ANY, 0, 0, m)
    yield "multipart AGGREGATE", parser.OFPAggregateStatsRequest(
        DP, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0, parser.OFPMatch())
    yield "multipart TABLE", parser.OFPTableStatsRequest(DP, 0)
    yield "multipart PORT_STATS", parser.OFPPortStatsRequest(DP, 0, ofp.OFPP_ANY)
    yield "multipart PORT_DESC", parser.OFPPortDescStatsRequest(DP, 0)
    yield "multipart METER", parser.OFPMeterStatsRequest(DP, 0, ofp.OFPM_ALL)
    yield "multipart METER_CONFIG", parser.OFPMeterConfigStatsRequest(DP, 0, ofp.OFPM_ALL)
    yield "multipart METER_FEATURES", parser.OFPMeterFeaturesStatsRequest(DP, 0)


def check_controller_to_switch(ofcodec):
    msgs = list(controller_messages())
    wire = [serialize(m, i + 1) for i, (_, m) in enumerate(msgs)]
    out = subprocess.run([ofcodec, "echo"], input=b"".join(wire), capture_output=True,
                         check=True).stdout
    for (name, _), sent in zip(msgs, wire):
        back, out = out[:len(sent)], out[len(sent):]
        case(f"os-ken -> codec -> os-ken: {name}", back == sent,
             "" if back == sent else f"sent {sent.hex()} got {back.hex()}")


def parse(buf):
    version, msg_type, msg_len, xid = ofproto_parser.header(buf)
    return ofproto_parser.msg(DP, version, msg_type, msg_len, xid, buf[:msg_len]), msg_len


def check_switch_to_controller(ofcodec):
    out = subprocess.run([ofcodec, "samples"], capture_output=True, check=True).stdout
    parsed = []
    while out:
        try:
            msg, n = parse(out)
        except Exception as e:  # os-ken raises whatever its parser hits
            case("os-ken parses every message the agent sends", False, repr(e))
            return
        parsed.append(msg)
        out = out[n:]
    by_name = {}
    for msg in parsed:
        by_name.setdefault(type(msg).__name__, []).append(msg)
    case("os-ken parses every message the agent sends", len(parsed) == 19, f"{len(parsed)} parsed")

    def one(cls):
        return by_name.get(cls.__name__, [None])[0]

    f = one(parser.OFPSwitchFeatures)
    case("FEATURES_REPLY fields", f and f.datapath_id == 0x525400b00001 and f.n_tables == 1
         and f.capabilities == 7)
    p = one(parser.OFPPacketIn)
    case("PACKET_IN match and data", p and p.match["in_port"] == 1 and p.data == b"\x5a" * 64
         and p.reason == ofp.OFPR_NO_MATCH and p.total_len == 64)
    r = one(parser.OFPFlowRemoved)
    case("FLOW_REMOVED counters and match", r and r.packet_count == 42 and r.byte_count == 4200
         and r.match["ipv4_dst"] == ("10.0.0.0", "255.255.255.0") and r.match["udp_dst"] == 5201)
    s = one(parser.OFPPortStatus)
    case("PORT_STATUS port", s and s.desc.port_no == 1 and s.desc.name == b"host"
         and s.desc.hw_addr == "52:54:00:b0:00:01" and s.desc.state == ofp.OFPPS_LIVE)
    d = one(parser.OFPDescStatsReply)
    case("multipart DESC", d and d.body.sw_desc == b"bmgnic-rmed")
    fl = one(parser.OFPFlowStatsReply)
    ok = False
    if fl and len(fl.body) == 1:
        st = fl.body[0]
        acts = [i for i in st.instructions if isinstance(i, parser.OFPInstructionActions)]
        meters = [i for i in st.instructions if isinstance(i, parser.OFPInstructionMeter)]
        ok = (st.packet_count == 42 and st.byte_count == 4200 and st.cookie == 7 and
              meters and meters[0].meter_id == 1 and acts and
              acts[0].actions[0].key == "tunnel_id" and acts[0].actions[0].value == 5001 and
              acts[0].actions[1].port == 2)
    case("multipart FLOW stats, instructions and actions", ok)
    a = one(parser.OFPAggregateStatsReply)
    case("multipart AGGREGATE", a and a.body.packet_count == 1 and a.body.flow_count == 3)
    t = one(parser.OFPTableStatsReply)
    case("multipart TABLE", t and t.body[0].active_count == 3 and t.body[0].matched_count == 90)
    ps = one(parser.OFPPortStatsReply)
    case("multipart PORT_STATS", ps and ps.body[0].rx_bytes == 1000 and ps.body[0].tx_packets == 11)
    pd = one(parser.OFPPortDescStatsReply)
    case("multipart PORT_DESC", pd and pd.body[0].curr_speed == 10_000_000)
    ms = one(parser.OFPMeterStatsReply)
    case("multipart METER", ms and ms.body[0].byte_in_count == 500
         and ms.body[0].band_stats[0].byte_band_count == 200)
    mc = one(parser.OFPMeterConfigStatsReply)
    case("multipart METER_CONFIG", mc and mc.body[0].bands[0].rate == 10000
         and mc.body[0].bands[0].burst_size == 100)
    mf = one(parser.OFPMeterFeaturesStatsReply)
    case("multipart METER_FEATURES", mf and mf.body[0].max_meter == 255 and mf.body[0].max_bands == 1)
    rr = one(parser.OFPRoleReply)
    case("ROLE_REPLY", rr and rr.role == ofp.OFPCR_ROLE_MASTER and rr.generation_id == 1)
    e = one(parser.OFPErrorMsg)
    case("ERROR", e and e.type == ofp.OFPET_BAD_MATCH and e.code == ofp.OFPBMC_BAD_FIELD)


def check_errors(ofcodec):
    """Malformed requests, as a hostile or buggy controller sends them."""
    good = serialize(parser.OFPFlowMod(DP, match=parser.OFPMatch(in_port=1)), 77)

    def answer(raw):
        out = subprocess.run([ofcodec, "echo"], input=raw, capture_output=True, check=True).stdout
        msg, _ = parse(out)
        return (msg.type, msg.code, msg.xid) if isinstance(msg, parser.OFPErrorMsg) else None

    wrong_version = bytes([0x01]) + good[1:]
    case("version 1.0 FLOW_MOD: BAD_REQUEST/BAD_VERSION",
         answer(wrong_version) == (ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_BAD_VERSION, 77))
    bad_type = good[:1] + bytes([99]) + good[2:]
    case("unknown message type: BAD_REQUEST/BAD_TYPE",
         answer(bad_type) == (ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_BAD_TYPE, 77))
    # The match's length field says 200 bytes.
    bad_match = bytearray(good)
    struct.pack_into("!H", bad_match, 50, 200)
    case("match longer than the message: BAD_MATCH/BAD_LEN",
         answer(bytes(bad_match)) == (ofp.OFPET_BAD_MATCH, ofp.OFPBMC_BAD_LEN, 77))
    no_prereq = serialize(parser.OFPFlowMod(DP, match=parser.OFPMatch(tcp_dst=22)), 78)
    case("tcp_dst without ip_proto: BAD_MATCH/BAD_PREREQ",
         answer(no_prereq) == (ofp.OFPET_BAD_MATCH, ofp.OFPBMC_BAD_PREREQ, 78))
    group_mod = serialize(parser.OFPGroupMod(DP, ofp.OFPGC_ADD, ofp.OFPGT_ALL, 1, []), 79)
    out = subprocess.run([ofcodec, "echo"], input=group_mod, capture_output=True, check=True).stdout
    case("GROUP_MOD is decoded as unsupported, not as garbage", out[:2] == bytes([4, ofp.OFPT_GROUP_MOD]))


def main():
    ofcodec = sys.argv[1]
    check_controller_to_switch(ofcodec)
    check_switch_to_controller(ofcodec)
    check_errors(ofcodec)
    print("TAP version 13")
    print(f"1..{len(results)}")
    for i, (name, ok, detail) in enumerate(results, 1):
        if detail and not ok:
            print(f"# {detail}")
        print(f"{'ok' if ok else 'not ok'} {i} {name}")
    sys.exit(0 if all(ok for _, ok, _ in results) else 1)


if __name__ == "__main__":
    main()
