# SPDX-License-Identifier: GPL-2.0
"""An os-ken application that drives the BMGNIC's OpenFlow agent the way a
controller does, checks what it sees, and writes the results as KTAP to
$BMGNIC_OF_RESULTS. Run by agent_live.py against the agent over an
in-memory module; the rack scenario has its own app.

First connection: handshake and features, port description, a PACKET_IN
for a miss and the flow that answers it (the misses stop), a meter and a
metered flow, flow stats that count, errors for what the NIC cannot do,
FLOW_REMOVED on idle timeout and on delete. Then the controller closes
the connection; on the agent's reconnection the flows and their
counters are still there.
"""

import os
import time

from os_ken.app.ofctl import api as ofctl
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.lib.packet import packet as pkt, udp
from os_ken.ofproto import ofproto_v1_3 as ofp

FABRIC, HOST, VTEP1 = 2, 1, 1001


class LiveCheck(app_manager.OSKenApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.results = []
        self.connections = 0
        self.packet_ins = []
        self.removed = []
        self.errors = []
        self.out = os.environ.get("BMGNIC_OF_RESULTS", "/dev/stdout")

    def case(self, name, ok, detail=""):
        self.results.append((name, bool(ok), detail))

    def finish(self):
        with open(self.out + ".tmp", "w") as f:
            f.write("TAP version 13\n")
            f.write(f"1..{len(self.results)}\n")
            for i, (name, ok, detail) in enumerate(self.results, 1):
                if detail:
                    f.write(f"# {detail}\n")
                f.write(f"{'ok' if ok else 'not ok'} {i} {name}\n")
        os.rename(self.out + ".tmp", self.out)

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def features(self, ev):
        self.connections += 1
        dp = ev.msg.datapath
        if self.connections == 1:
            self.case("FEATURES_REPLY: datapath id and one table",
                      ev.msg.datapath_id == 0x525400b00001 and ev.msg.n_tables == 1,
                      f"dpid {ev.msg.datapath_id:#x}, {ev.msg.n_tables} tables")
            hub.spawn(self.first, dp)
        elif self.connections == 2:
            hub.spawn(self.second, dp)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev):
        self.packet_ins.append((time.time(), ev.msg))

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    def flow_removed(self, ev):
        self.removed.append(ev.msg)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def error(self, ev):
        self.errors.append((ev.msg.xid, ev.msg.type, ev.msg.code))

    def request(self, msg, cls):
        return ofctl.send_msg(self, msg, reply_cls=cls, reply_multi=True)

    def barrier(self, dp):
        ofctl.send_msg(self, dp.ofproto_parser.OFPBarrierRequest(dp),
                       reply_cls=dp.ofproto_parser.OFPBarrierReply)

    def error_for(self, dp, msg):
        msg.xid = None
        dp.set_xid(msg)
        dp.send_msg(msg)
        self.barrier(dp)
        hub.sleep(0.2)
        return next(((t, c) for x, t, c in self.errors if x == msg.xid), None)

    def flows(self, dp):
        p = dp.ofproto_parser
        replies = self.request(p.OFPFlowStatsRequest(dp), p.OFPFlowStatsReply)
        return [s for r in replies for s in r.body]

    def first(self, dp):
        try:
            self._first(dp)
        except Exception as e:  # a failed step must still report
            self.case("first connection completes", False, repr(e))
            self.finish()

    def _first(self, dp):
        p = dp.ofproto_parser
        ports = self.request(p.OFPPortDescStatsRequest(dp), p.OFPPortDescStatsReply)
        nos = sorted(port.port_no for r in ports for port in r.body)
        self.case("PORT_DESC: host, fabric and the VTEP's tunnel port", nos == [HOST, FABRIC, VTEP1],
                  f"ports {nos}")

        # A miss reaches the controller with the packet's headers.
        deadline = time.time() + 10
        while not self.packet_ins and time.time() < deadline:
            hub.sleep(0.2)
        ok = bool(self.packet_ins)
        detail = ""
        if ok:
            msg = self.packet_ins[-1][1]
            u = pkt.Packet(msg.data).get_protocol(udp.udp)
            ok = msg.match["in_port"] == HOST and u is not None and u.dst_port == 5201
            detail = f"match {dict(msg.match.items())}"
        self.case("PACKET_IN for a miss, with the frame's headers", ok, detail)

        # The controller answers with a flow: the misses stop.
        m = p.OFPMatch(in_port=HOST, eth_type=0x0800, ip_proto=17, udp_dst=5201)
        dp.send_msg(p.OFPFlowMod(dp, cookie=0x51, priority=100, match=m,
                                 flags=ofp.OFPFF_SEND_FLOW_REM,
                                 instructions=[p.OFPInstructionActions(
                                     ofp.OFPIT_APPLY_ACTIONS, [p.OFPActionOutput(FABRIC)])]))
        self.barrier(dp)
        installed_at = time.time()
        hub.sleep(3)
        late = [t for t, _ in self.packet_ins if t > installed_at + 1.5]
        self.case("no PACKET_IN once the controller's flow is installed", not late,
                  f"{len(late)} after the flow")

        # A meter and a metered encapsulating flow.
        dp.send_msg(p.OFPMeterMod(dp, command=ofp.OFPMC_ADD, flags=ofp.OFPMF_KBPS, meter_id=1,
                                  bands=[p.OFPMeterBandDrop(rate=8000, burst_size=0)]))
        enc = p.OFPMatch(in_port=HOST, eth_type=0x0800, ip_proto=6, tcp_dst=5202)
        dp.send_msg(p.OFPFlowMod(dp, cookie=0x52, priority=90, match=enc, instructions=[
            p.OFPInstructionMeter(1),
            p.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [
                p.OFPActionSetField(tunnel_id=5001), p.OFPActionOutput(VTEP1)])]))
        self.barrier(dp)
        cfg = self.request(p.OFPMeterConfigStatsRequest(dp, 0, ofp.OFPM_ALL),
                           p.OFPMeterConfigStatsReply)
        bands = [b.rate for r in cfg for m in r.body for b in m.bands]
        self.case("METER_CONFIG reports the meter", bands == [8000], f"bands {bands}")

        hub.sleep(3)
        stats = {s.cookie: s for s in self.flows(dp)}
        ok = 0x51 in stats and 0x52 in stats and stats[0x51].packet_count >= 2 \
            and stats[0x51].byte_count == 100 * stats[0x51].packet_count
        self.case("FLOW stats count the module's traffic", ok,
                  f"{ {hex(c): (s.packet_count, s.byte_count) for c, s in stats.items()} }")
        agg = self.request(p.OFPAggregateStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY,
                                                      ofp.OFPG_ANY, 0, 0, p.OFPMatch()),
                           p.OFPAggregateStatsReply)
        self.case("AGGREGATE counts both flows", agg[0].body.flow_count == 2)

        # What the NIC cannot do gets the error a controller expects.
        vlan = p.OFPFlowMod(dp, match=p.OFPMatch(vlan_vid=(ofp.OFPVID_PRESENT | 5)),
                            instructions=[])
        self.case("VLAN match: BAD_MATCH/BAD_FIELD",
                  self.error_for(dp, vlan) == (ofp.OFPET_BAD_MATCH, ofp.OFPBMC_BAD_FIELD))
        out = p.OFPPacketOut(dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                             actions=[p.OFPActionOutput(HOST)], data=b"\0" * 60)
        self.case("PACKET_OUT: BAD_REQUEST/EPERM",
                  self.error_for(dp, out) == (ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_EPERM))
        remark = p.OFPMeterMod(dp, command=ofp.OFPMC_ADD, flags=ofp.OFPMF_KBPS, meter_id=2,
                               bands=[p.OFPMeterBandDscpRemark(rate=100, burst_size=0, prec_level=1)])
        self.case("DSCP remark band: METER_MOD_FAILED/BAD_BAND",
                  self.error_for(dp, remark) == (ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_BAD_BAND))

        # Idle timeout: a drop flow sees no traffic and goes.
        idle = p.OFPMatch(in_port=HOST, eth_type=0x0800, ip_proto=17, udp_dst=9)
        dp.send_msg(p.OFPFlowMod(dp, cookie=0x53, priority=80, idle_timeout=2, match=idle,
                                 flags=ofp.OFPFF_SEND_FLOW_REM, instructions=[]))
        self.barrier(dp)
        deadline = time.time() + 8
        while not any(r.cookie == 0x53 for r in self.removed) and time.time() < deadline:
            hub.sleep(0.2)
        r = next((r for r in self.removed if r.cookie == 0x53), None)
        self.case("FLOW_REMOVED on idle timeout", r is not None and r.reason == ofp.OFPRR_IDLE_TIMEOUT)

        self.before = {s.cookie: s.packet_count for s in self.flows(dp)}
        # Leave; the agent reconnects and the flows stay.
        self.gone_at = time.time()
        dp.close()

    def second(self, dp):
        try:
            self._second(dp)
        except Exception as e:
            self.case("second connection completes", False, repr(e))
        self.finish()

    def _second(self, dp):
        p = dp.ofproto_parser
        self.case("the agent reconnects", True, f"after {time.time() - self.gone_at:.1f} s")
        hub.sleep(1)
        after = {s.cookie: s.packet_count for s in self.flows(dp)}
        ok = set(after) == set(self.before) and all(after[c] >= self.before[c] for c in after)
        self.case("flows and counters survive the controller's absence", ok,
                  f"before {self.before}, after {after}")
        dp.send_msg(p.OFPFlowMod(dp, command=ofp.OFPFC_DELETE, out_port=ofp.OFPP_ANY,
                                 out_group=ofp.OFPG_ANY, cookie=0x51, cookie_mask=0xff,
                                 match=p.OFPMatch()))
        self.barrier(dp)
        hub.sleep(0.5)
        r = next((r for r in self.removed if r.cookie == 0x51), None)
        self.case("FLOW_REMOVED on delete, with the flow's counters",
                  r is not None and r.reason == ofp.OFPRR_DELETE and r.packet_count >= after[0x51],
                  f"{r and (r.reason, r.packet_count)}")
