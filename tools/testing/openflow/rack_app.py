# SPDX-License-Identifier: GPL-2.0
"""The tenant's SDN controller in the rack: an os-ken application that
configures a bare-metal tenant through the RME daemon's OpenFlow agent,
the only thing that configures it in the openflow scenario.

It keeps what the switch tells it (PACKET_IN, FLOW_REMOVED, PORT_STATUS,
errors) and
offers the scenario the operations a cloud's network controller would
run: the tenant's flows and meter, learning a flow from a PACKET_IN,
stats, deleting, dropping the connection. Calls block until the switch
answered (ofctl's send_msg, or a barrier).
"""

import threading
import time

from os_ken.app.ofctl import api as ofctl
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3 as ofp

HOST, FABRIC, TUNNEL_BASE = 1, 2, 1000


class TenantController(app_manager.OSKenApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dp = None
        self.connections = 0
        self.connected = threading.Event()
        self.packet_ins = []
        self.removed = []
        self.errors = []
        # (time, reason, port) of each PORT_STATUS.
        self.port_statuses = []
        # (vni, tunnel port) once the tenant is configured: PACKET_INs of
        # UDP are then answered with a flow that encapsulates them.
        self.learn = None
        # (PACKET_IN time, installed time, UDP port) of learned flows.
        self.learned = []
        self.learning = set()

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def features(self, ev):
        self.dp = ev.msg.datapath
        self.connections += 1
        self.datapath_id = ev.msg.datapath_id
        self.connected.set()

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, "dead"])
    def state(self, ev):
        if ev.state == "dead" and ev.datapath is self.dp:
            self.connected.clear()

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev):
        now = time.time()
        self.packet_ins.append((now, ev.msg))
        m = ev.msg.match
        if self.learn and m.get("ip_proto") == 17 and m.get("udp_dst") not in self.learning:
            self.learning.add(m["udp_dst"])
            # Not in the event loop: the barrier's reply comes through it.
            threading.Thread(target=self._learn, args=(ev.msg.datapath, m["udp_dst"], now),
                             daemon=True).start()

    def _learn(self, dp, udp_dst, seen_at):
        """Installs a flow that encapsulates UDP to `udp_dst`; the barrier's
        reply says it is in the module's table."""
        vni, port = self.learn
        p = dp.ofproto_parser
        match = p.OFPMatch(in_port=HOST, eth_type=0x0800, ip_proto=17, udp_dst=udp_dst)
        dp.send_msg(p.OFPFlowMod(dp, cookie=0x1000 + udp_dst, priority=50, match=match,
                                 instructions=[self._encap(p, vni, port)]))
        ofctl.send_msg(self, p.OFPBarrierRequest(dp), reply_cls=p.OFPBarrierReply)
        self.learned.append((seen_at, time.time(), udp_dst))

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def port_status(self, ev):
        self.port_statuses.append((time.time(), ev.msg.reason, ev.msg.desc))

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    def flow_removed(self, ev):
        self.removed.append(ev.msg)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def error(self, ev):
        self.errors.append((ev.msg.xid, ev.msg.type, ev.msg.code))

    @staticmethod
    def _encap(p, vni, port):
        return p.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [
            p.OFPActionSetField(tunnel_id=vni), p.OFPActionOutput(port)])

    def barrier(self):
        dp = self.dp
        ofctl.send_msg(self, dp.ofproto_parser.OFPBarrierRequest(dp),
                       reply_cls=dp.ofproto_parser.OFPBarrierReply)

    def configure_tenant(self, vni, vtep, meter_kbps, meter_port, deny_port, billing_port):
        """The tenant's network: ARP, ICMP and TCP (iperf3's control)
        encapsulated toward VTEP `vtep` with `vni`; UDP to `billing_port`
        too; UDP to `meter_port` through a meter of `meter_kbps`; TCP to
        `deny_port` dropped."""
        dp = self.dp
        p = dp.ofproto_parser
        port = TUNNEL_BASE + vtep
        dp.send_msg(p.OFPMeterMod(dp, command=ofp.OFPMC_ADD, flags=ofp.OFPMF_KBPS | ofp.OFPMF_STATS,
                                  meter_id=1, bands=[p.OFPMeterBandDrop(rate=meter_kbps)]))
        flows = [
            (1, 10, p.OFPMatch(in_port=HOST, eth_type=0x0806), None),
            (2, 10, p.OFPMatch(in_port=HOST, eth_type=0x0800, ip_proto=1), None),
            (3, 10, p.OFPMatch(in_port=HOST, eth_type=0x0800, ip_proto=6), None),
            (4, 20, p.OFPMatch(in_port=HOST, eth_type=0x0800, ip_proto=17,
                               udp_dst=billing_port), None),
            (5, 20, p.OFPMatch(in_port=HOST, eth_type=0x0800, ip_proto=17, udp_dst=meter_port), 1),
        ]
        for cookie, prio, match, meter in flows:
            inst = [self._encap(p, vni, port)]
            if meter:
                inst.insert(0, p.OFPInstructionMeter(meter))
            dp.send_msg(p.OFPFlowMod(dp, cookie=cookie, priority=prio, match=match,
                                     flags=ofp.OFPFF_SEND_FLOW_REM, instructions=inst))
        deny = p.OFPMatch(in_port=HOST, eth_type=0x0800, ip_proto=6, tcp_dst=deny_port)
        dp.send_msg(p.OFPFlowMod(dp, cookie=6, priority=100, match=deny, instructions=[]))
        self.barrier()
        self.learn = (vni, port)

    def packet_meter(self, meter_id, pps, udp_port, vni, vtep, cookie):
        """A meter of `pps` packets/s and a flow through it that
        encapsulates UDP to `udp_port`."""
        dp = self.dp
        p = dp.ofproto_parser
        dp.send_msg(p.OFPMeterMod(dp, command=ofp.OFPMC_ADD, flags=ofp.OFPMF_PKTPS | ofp.OFPMF_STATS,
                                  meter_id=meter_id, bands=[p.OFPMeterBandDrop(rate=pps)]))
        match = p.OFPMatch(in_port=HOST, eth_type=0x0800, ip_proto=17, udp_dst=udp_port)
        dp.send_msg(p.OFPFlowMod(dp, cookie=cookie, priority=20, match=match, instructions=[
            p.OFPInstructionMeter(meter_id), self._encap(p, vni, TUNNEL_BASE + vtep)]))
        self.barrier()

    def add_flow(self, cookie, match_kwargs, idle_timeout=0, encap=None, priority=30):
        dp = self.dp
        p = dp.ofproto_parser
        inst = [self._encap(p, *encap)] if encap else []
        dp.send_msg(p.OFPFlowMod(dp, cookie=cookie, priority=priority, idle_timeout=idle_timeout,
                                 match=p.OFPMatch(**match_kwargs), flags=ofp.OFPFF_SEND_FLOW_REM,
                                 instructions=inst))
        self.barrier()

    def install_many(self, n, batch, vni, vtep, cookie=0x10000):
        """Installs `n` distinct encapsulating flows (UDP to 10.20.x.y),
        a barrier after every `batch`; returns the seconds each batch took
        from its first FLOW_MOD to its barrier's reply."""
        dp = self.dp
        p = dp.ofproto_parser
        times = []
        for start in range(0, n, batch):
            t0 = time.time()
            for i in range(start, min(n, start + batch)):
                match = p.OFPMatch(in_port=HOST, eth_type=0x0800, ip_proto=17,
                                   ipv4_dst=f"10.20.{i >> 8 & 0xff}.{i & 0xff}", udp_dst=9)
                dp.send_msg(p.OFPFlowMod(dp, cookie=cookie + i, priority=40, match=match,
                                         instructions=[self._encap(p, vni, TUNNEL_BASE + vtep)]))
            self.barrier()
            times.append(time.time() - t0)
        return times

    def delete_cookies(self, cookie, mask):
        """Deletes the flows whose cookie matches under `mask`."""
        dp = self.dp
        p = dp.ofproto_parser
        dp.send_msg(p.OFPFlowMod(dp, command=ofp.OFPFC_DELETE, out_port=ofp.OFPP_ANY,
                                 out_group=ofp.OFPG_ANY, cookie=cookie, cookie_mask=mask,
                                 match=p.OFPMatch()))
        self.barrier()

    def flow_stats(self):
        dp = self.dp
        p = dp.ofproto_parser
        replies = ofctl.send_msg(self, p.OFPFlowStatsRequest(dp), reply_cls=p.OFPFlowStatsReply,
                                 reply_multi=True)
        return {s.cookie: (s.packet_count, s.byte_count) for r in replies for s in r.body}

    def meter_stats(self):
        """{meter id: (packets in, bytes in, [(packets, bytes) per band])}."""
        dp = self.dp
        p = dp.ofproto_parser
        replies = ofctl.send_msg(self, p.OFPMeterStatsRequest(dp, 0, ofp.OFPM_ALL),
                                 reply_cls=p.OFPMeterStatsReply, reply_multi=True)
        return {s.meter_id: (s.packet_in_count, s.byte_in_count,
                             [(b.packet_band_count, b.byte_band_count) for b in s.band_stats])
                for r in replies for s in r.body}

    def port_stats(self):
        dp = self.dp
        p = dp.ofproto_parser
        replies = ofctl.send_msg(self, p.OFPPortStatsRequest(dp, 0, ofp.OFPP_ANY),
                                 reply_cls=p.OFPPortStatsReply, reply_multi=True)
        return {s.port_no: s for r in replies for s in r.body}

    def raw(self, data, xid):
        """Sends bytes as they are (a malformed message) and returns the
        (type, code) of the error that answers `xid`, if any."""
        self.dp.send(data)
        self.barrier()
        time.sleep(0.2)
        return next(((t, c) for x, t, c in self.errors if x == xid), None)

    def request_error(self, msg):
        """Sends `msg` and returns the (type, code) of its error, if any."""
        dp = self.dp
        msg.xid = None
        dp.set_xid(msg)
        dp.send_msg(msg)
        self.barrier()
        time.sleep(0.2)
        return next(((t, c) for x, t, c in self.errors if x == msg.xid), None)

    def drop_connection(self):
        """Closes the connection as a controller going away does; os-ken
        connects again after ofp_switch_connect_interval."""
        self.connected.clear()
        dp = self.dp
        dp.close()
        # os-ken's native hub cannot kill the datapath's send thread, and
        # its teardown joins it: wake it with a closing entry, or the
        # connect loop never gets to connect again.
        q = dp.send_q
        if q is not None:
            q.put((b"", True))
