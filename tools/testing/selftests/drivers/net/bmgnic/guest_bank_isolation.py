#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The tenant cannot reach the RME bank through BAR0.

The cloud configures the tenant's identity, network, flows and policy over
NC-SI. Then root in the server VM writes every 32-bit register of BAR0's
guest block with all-ones, zero and a pattern, through sysfs's resource0
mapping, as any bare-metal tenant could. The RME bank, read back over NC-SI,
is unchanged; the rejected writes are counted where the RME sees them.
"""

import bmgnic_env
from bmgnic_env import rack, wire, TOP
from lib.py import ksft_eq, ksft_ge, ksft_in, ksft_pr

CONFIG = ["init",
          "identity", "mac=52:54:00:b0:00:01", "mtu_cap=9000", "ipv4=10.0.0.1",
          "tenant", "vni=5001", "local_mac=02:00:00:00:00:01", "local_ip=192.168.0.1",
          "vtep", "index=1", "mac=02:00:00:00:00:02", "ip=192.168.0.2",
          "encap-subnet", "dst=10.0.0.0/24", "vtep=1", "slot=5",
          "policy", "miss=drop", "events=3", "miss_events_per_sec=10"]

GUEST = wire.regs.guest
# bar0.py's sweep: every 32-bit register of the guest block, three values.
SWEEP_WRITES = 3 * GUEST.REGS_END // 4
GUEST_RO_WRITES = GUEST.STATS_BASE + 8 * GUEST.STAT_NAMES.index("guest_ro_writes")


def split_dump(lines):
    state = [l for l in lines if not l.startswith("counters ")]
    counters = dict(kv.split("=") for l in lines if l.startswith("counters ")
                    for kv in l.split()[1:])
    return state, {k: int(v) for k, v in counters.items()}


def test_bar0_sweep_changes_no_rme_object(r, model, server):
    before, c0 = split_dump(rack.rmectl(model, *CONFIG, "dump"))
    ksft_in("tenant vni=5001 local_mac=02:00:00:00:00:01 local_ip=192.168.0.1", before)
    _, out = server.run(f"python3 {TOP}/tools/testing/vm/bar0.py sweep "
                        "0xffffffff 0x00000000 0x5a5a5a5a", timeout=300)
    ksft_in(f"{SWEEP_WRITES} writes", out)
    after, c1 = split_dump(rack.rmectl(model, "dump"))
    ksft_eq(after, before, "an RME-bank object changed")
    rejected = c1["guest_ro_writes"] - c0["guest_ro_writes"]
    # Most of the block is read-only or unassigned; the few writable
    # guest registers (control, MTU, interrupts, rings) accept some values.
    ksft_ge(rejected, 2900, f"only {rejected} rejected writes counted")
    ksft_pr(f"{rejected} of {SWEEP_WRITES} guest writes rejected and counted")
    r.rejected = rejected


def test_guest_sees_its_identity_read_only(r, model, server):
    _, out = server.run(f"python3 {TOP}/tools/testing/vm/bar0.py read "
                        f"{GUEST.MAC_LO} {GUEST.MAC_HI} {GUEST.MTU_CAP}")
    # MAC_LO/HI little-endian, MTU cap from the RME.
    ksft_in(f"{GUEST.MAC_LO:#06x} 0xb0005452", out)
    ksft_in(f"{GUEST.MAC_HI:#06x} 0x00000100", out)
    ksft_in(f"{GUEST.MTU_CAP:#06x} {9000:#010x}", out)


def test_rejected_writes_visible_to_the_guest_too(r, model, server):
    _, out = server.run(f"python3 {TOP}/tools/testing/vm/bar0.py read {GUEST_RO_WRITES}")
    value = int(out.split()[1], 16)
    ksft_ge(value, r.rejected, "guest_ro_writes register below the RME's count")


def main():
    def start(r):
        model = r.start_model()
        server = r.start_vm("server", model=model)
        server.wait_ready()
        return (r, model, server)

    bmgnic_env.run_in_rack("guest_bank_isolation", start, [
        test_bar0_sweep_changes_no_rme_object,
        test_guest_sees_its_identity_read_only,
        test_rejected_writes_visible_to_the_guest_too])


if __name__ == "__main__":
    main()
