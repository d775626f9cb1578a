#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""How fast a controller's flows reach bmgnic_rme's table through the RME
daemon: os-ken sends BMGNIC_BENCH_OF_FLOWS distinct FLOW_MODs (encapsulate
UDP to 10.20.x.y toward VTEP 1) with a barrier after every
BMGNIC_BENCH_OF_BATCH, in the OpenFlow rack (controller on the host, agent
in the RME VM over its management network, the module behind netlink).

    [os-ken] --OpenFlow (TCP, slirp)-- [RME VM: bmgnic-rmed --netlink-- bmgnic_rme] --NC-SI-- [NIC]

A barrier's reply means every FLOW_MOD before it is a rule of the module's
software table. The NIC gets a rule's exact entries on demand, when a
packet first misses (NC-SI time then, measured by ncsi_install.py and by
the openflow scenario's PACKET_IN to install latency), so this rate is the
control path's alone and has no NC-SI link bound to compare with.

Prints the rate per batch (median and spread of BMGNIC_BENCH_OF_ROUNDS
rounds), the FLOW stats count, and the time to delete them all.
A benchmark, not a test: it prints figures; it exits non-zero when a part
could not be measured.
"""

import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "openflow"))

import rack_controller  # noqa: E402
from rack_controller import rack  # noqa: E402

rack_controller.need_os_ken()

FLOWS = int(os.environ.get("BMGNIC_BENCH_OF_FLOWS", "10000"))
BATCH = int(os.environ.get("BMGNIC_BENCH_OF_BATCH", "100"))
ROUNDS = int(os.environ.get("BMGNIC_BENCH_OF_ROUNDS", "3"))


def main():
    with rack.Rack("openflow_install") as r:
        _, server, rme, peer, app = rack_controller.openflow_rack(r)
        app.configure_tenant(rack.VNI, 1, 100_000, 5203, 5202, 5201)
        rates = []
        for rnd in range(ROUNDS):
            t0 = time.time()
            batches = app.install_many(FLOWS, BATCH, rack.VNI, 1)
            took = time.time() - t0
            stats = app.flow_stats()
            mine = [c for c in stats if c >= 0x10000]
            t1 = time.time()
            app.delete_cookies(0x10000, 0xffff0000)
            deleted = time.time() - t1
            left = [c for c in app.flow_stats() if c >= 0x10000]
            rate = FLOWS / took
            rates.append(rate)
            print(f"# round {rnd + 1}: {FLOWS} flows in {took:.1f} s = {rate:.0f} flows/s "
                  f"(batch of {BATCH}: median {statistics.median(batches) * 1000:.0f} ms); "
                  f"FLOW stats counted {len(mine)}; deleting them took {deleted:.1f} s, "
                  f"{len(left)} left", flush=True)
            if len(mine) != FLOWS or left:
                print("# the flow table does not hold what was installed")
                sys.exit(1)
        print(f"OpenFlow FLOW_MOD install rate, controller to bmgnic_rme's table: "
              f"median {statistics.median(rates):.0f} flows/s "
              f"(range {min(rates):.0f}-{max(rates):.0f}, {ROUNDS} rounds of {FLOWS})")


if __name__ == "__main__":
    main()
