#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Two bare-metal servers whose NICs share a fabric: tenants with different
VNIs cannot reach each other, the same tenant on both servers can.

Rack: servers A and B, each with its own emulated BMGNIC and its own RME
VM (one BMC per server); the two NICs' fabric ports are cabled back to
back. Each RME is driven with ynl only.
"""

import re

import bmgnic_env
from bmgnic_env import rack, BMGNIC_KO, RME_KO
from lib.py import ksft_eq, ksft_ge, ksft_pr

SERVERS = {
    "a": {"ip": "10.20.0.1", "mac": "52:54:00:b0:00:0a", "vtep": "192.168.0.1",
          "vtep_mac": "02:00:00:00:00:0a"},
    "b": {"ip": "10.20.0.2", "mac": "52:54:00:b0:00:0b", "vtep": "192.168.0.2",
          "vtep_mac": "02:00:00:00:00:0b"},
}


def start(r):
    nic_a = r.start_model("nica", fabric_to="nicb", mac=SERVERS["a"]["mac"])
    nic_b = r.start_model("nicb", fabric_to="nica", mac=SERVERS["b"]["mac"])
    vms = {
        "a": r.start_vm("server-a", model=nic_a),
        "b": r.start_vm("server-b", model=nic_b),
        "rme-a": r.start_vm("rme-a", nics=[(nic_a.ncsi_remote, nic_a.ncsi_local)]),
        "rme-b": r.start_vm("rme-b", nics=[(nic_b.ncsi_remote, nic_b.ncsi_local)]),
    }
    cli = r.ynl()
    for vm in vms.values():
        vm.wait_ready()
    ynls = {me: rack.Ynl(vms[f"rme-{me}"], cli) for me in SERVERS}
    for me, other in (("a", "b"), ("b", "a")):
        rme = vms[f"rme-{me}"]
        rme.run(f"ip link set eth0 up; insmod {RME_KO} sideband=eth0")
        mine, theirs = SERVERS[me], SERVERS[other]
        ynl = ynls[me]
        ynl("identity-set", {"identity": {"mac": mine["mac"], "ipv4": [mine["ip"]]}})
        ynl("vtep-set", {"index": 1, "mac": theirs["vtep_mac"], "ip": theirs["vtep"]})
        for ethertype in (0x0806, 0x0800):
            ynl("flow-add", {"priority": 10, "action": "encap", "vtep": 1,
                             "match": {"ethertype": ethertype}})
        server = vms[me]
        server.run(f"insmod {BMGNIC_KO}")
        dev = rack.server_netdev(server)
        server.run(f"ip addr add {mine['ip']}/24 dev {dev}; ip link set {dev} up")
    return (vms, ynls)


def set_tenant(ynls, me, vni):
    s = SERVERS[me]
    ynls[me]("tenant-set", {"tenant": {"vni": vni, "local-mac": s["vtep_mac"],
                                       "local-ip": s["vtep"]}})


def pings(vm, dst, count=3):
    _, out = vm.run(f"ping -n -c {count} -W 2 {dst}", check=False, timeout=60)
    m = re.search(r"(\d+) received", out)
    return int(m.group(1)) if m else 0


def wrong_vni(ynls, me):
    _, dev = ynls[me]("dev-get")
    return next(d["packets"] for d in dev["counters"]["drops"]
                if d["reason"] == "rx_drop_wrong_vni")


def test_different_tenants_cannot_reach_each_other(vms, ynls):
    set_tenant(ynls, "a", 100)
    set_tenant(ynls, "b", 200)
    ksft_eq(pings(vms["a"], SERVERS["b"]["ip"]), 0, "VNI 100 reached VNI 200")
    ksft_eq(pings(vms["b"], SERVERS["a"]["ip"]), 0, "VNI 200 reached VNI 100")
    dropped = (wrong_vni(ynls, "a"), wrong_vni(ynls, "b"))
    ksft_pr(f"rx_drop_wrong_vni: server A {dropped[0]}, server B {dropped[1]}")
    ksft_ge(min(dropped), 1, "a NIC delivered or did not count another tenant's frames")


def test_same_tenant_on_both_servers_can(vms, ynls):
    set_tenant(ynls, "b", 100)
    for me in ("a", "b"):
        vms[me].run(f"ip neigh flush dev {rack.server_netdev(vms[me])}")
    ksft_ge(pings(vms["a"], SERVERS["b"]["ip"]), 3, "VNI 100 on A did not reach VNI 100 on B")
    ksft_ge(pings(vms["b"], SERVERS["a"]["ip"]), 3, "VNI 100 on B did not reach VNI 100 on A")


def main():
    bmgnic_env.run_in_rack("tenant_isolation", start, [
        test_different_tenants_cannot_reach_each_other,
        test_same_tenant_on_both_servers_can,
    ])


if __name__ == "__main__":
    main()
