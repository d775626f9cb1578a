#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The RME checkpoints a bare-metal tenant, restores it on the same server,
and moves it to another server (Documentation/bmgnic/migration.rst).

Rack: two servers, each a board (bmgnic-platform) with an NVMe disk, a
BMGNIC model on auxiliary power and an RME VM running bmgnic_rme and the
RME daemon's Redfish service; the boards share one directory, the
provider storage. Server A boots the tenant OS image; server B is off
with an empty disk. The peer VM is the tenant's VXLAN peer, cabled to
both servers' fabric ports (the same MAC on both, as a fabric's gateway
would be); its vxlan device is the control plane's to point at a server.

A bash loop in the tenant writes a count over one TCP connection to the
peer every 200 ms, and the peer pings the tenant every 200 ms. Everything
the cloud does goes through Redfish, with sushy's connector and task
monitor: the OEM actions BmgnicComputerSystem.Checkpoint and .Restore.
Nothing is done inside the tenant.
"""

import os
import re
import shutil
import subprocess
import sys
import time

import bmgnic_env
from bmgnic_env import TenantCounter, pings, rack, wait_for, TOP

sys.path.insert(0, os.path.join(TOP, "tools/testing/openflow"))
sys.path.insert(0, os.path.join(TOP, "tools/testing/redfish"))
import rack_controller  # noqa: E402

rack_controller.need_venv("sushy", "requests")

from lib.py import ksft_eq, ksft_ge, ksft_in, ksft_pr, ksft_true  # noqa: E402

import rack_redfish  # noqa: E402

CHECKPOINT, RESTORE = rack_redfish.CHECKPOINT, rack_redfish.RESTORE
VTEP_B = rack_redfish.VTEP_B


class Migration:
    """What the cases share."""

    def __init__(self, r, a, b, peer, storage):
        self.r, self.a, self.b, self.peer, self.storage = r, a, b, peer, storage
        self.counter = TenantCounter(peer)


def start(r):
    return (Migration(r, *rack_redfish.migration_rack(r)),)


def nic_config(server):
    """What the module holds of the tenant: identity, tenant, VTEPs, meters
    and rules (without ids and counters)."""
    _, dev = server.ynl("dev-get")
    _, vteps = server.ynl("vtep-get", kind="dump")
    _, meters = server.ynl("meter-get", kind="dump")
    _, flows = server.ynl("flow-get", kind="dump")
    rules = sorted((f["priority"], f["action"], f.get("vtep", -1), f.get("meter", -1),
                    sorted(f.get("match", {}).items())) for f in flows)
    return {"identity": dev.get("identity"), "vni": dev.get("tenant", {}).get("vni"),
            "vteps": sorted((v["index"], v["ip"]) for v in vteps),
            "meters": sorted((m["index"], m["rate"], m["burst"]) for m in meters),
            "rules": rules}


def peer_neighbour(m):
    """The peer's ARP entry for the tenant: (lladdr, state)."""
    _, out = m.peer.run(f"ip neigh show {rack.SERVER_IP} dev vxlan0")
    fields = out.split()
    mac = fields[fields.index("lladdr") + 1] if "lladdr" in fields else None
    return mac, fields[-1] if fields else None


def test_tenant_runs_on_server_a(m):
    ksft_ge(pings(m.a.vm, 3), 2, "the tenant does not reach its peer")
    ksft_true(m.counter.start(m.a.vm), "the peer records no count from the tenant")
    _, log = m.a.vm.run("cat /var/log/qemu-ga.log 2>/dev/null; pgrep -l qemu-ga", check=False)
    ksft_in("qemu-ga", log, "the tenant image's guest agent does not run")
    ksft_ge(pings(m.peer, 3, peer=rack.SERVER_IP), 2, "the peer does not reach the tenant")
    m.neighbour = peer_neighbour(m)
    ksft_eq(m.neighbour[0], rack.FACTORY_MAC.lower(), "the peer's ARP entry is not the tenant's MAC")
    m.config = nic_config(m.a)


def checkpoint(m, server, name):
    task, took = server.action(CHECKPOINT, name)
    body = server.task_json(task)
    messages = " / ".join(x["Message"] for x in body.get("Messages", []))
    ksft_eq(body["TaskState"], "Completed", f"checkpoint {name}: {messages}")
    ksft_eq(server.power(), "off", f"checkpoint {name}: the server is not off")
    info = body["Oem"]["Bmgnic"]["Checkpoint"]
    ksft_true(os.path.exists(os.path.join(m.storage, f"{name}.disk")),
              f"checkpoint {name} is not in provider storage")
    ksft_eq(server.identity().get("mac", "00:00:00:00:00:00"), "00:00:00:00:00:00",
            f"checkpoint {name}: the NIC still has the tenant's identity")
    return body, info, took


def restore(m, server, name):
    task, took = server.action(RESTORE, name)
    body = server.task_json(task)
    messages = " / ".join(x["Message"] for x in body.get("Messages", []))
    ksft_eq(body["TaskState"], "Completed", f"restore {name}: {messages}")
    return body, took


def check_tenant_back(m, server, label):
    """The restored tenant: its counter process is the one from before and
    its connection carries on; it reaches its peer; its NIC holds the
    tenant's configuration."""
    server.vm.reconnect(240)
    ksft_true(m.counter.counting(120), f"{label}: the counter's connection does not carry on")
    ksft_eq(TenantCounter.process(server.vm), m.counter.pid,
            f"{label}: the counter process is not the one from before")
    ksft_ge(pings(server.vm, 3), 2, f"{label}: the tenant does not reach its peer")
    got = nic_config(server)
    ksft_eq(got, m.config, f"{label}: the NIC's configuration is not the tenant's")


def test_checkpoint_without_the_guest_agent_leaves_the_tenant_running(m):
    # The tenant stopped its agent: the RME cannot ask it to hibernate, and
    # nothing may change (the power, the NIC, the tenant's processes).
    m.a.vm.run("pkill -x qemu-ga; sleep 0.5")
    task, _ = m.a.action(CHECKPOINT, "ckpt-no-agent")
    body = m.a.task_json(task)
    messages = " / ".join(x["Message"] for x in body.get("Messages", []))
    ksft_eq(body["TaskState"], "Exception", "a checkpoint without the guest agent completed")
    ksft_in("guest agent did not answer", messages, "the failure does not say why")
    ksft_eq(m.a.power(), "on", "the server did not stay on")
    ksft_eq(nic_config(m.a), m.config, "the NIC's configuration changed")
    ksft_true(not os.path.exists(os.path.join(m.storage, "ckpt-no-agent.json")),
              "a checkpoint was stored")
    ksft_true(m.counter.counting(), "the tenant stopped counting")
    m.a.vm.run("for p in /sys/class/virtio-ports/*; do "
               "[ \"$(cat $p/name)\" = org.qemu.guest_agent.0 ] && "
               "qemu-ga -d -m virtio-serial -p /dev/${p##*/} -l /var/log/qemu-ga.log; done; "
               "pgrep -x qemu-ga")


def test_checkpoint_and_restore_on_the_same_server(m):
    before = m.counter.counted()
    body, info, took = checkpoint(m, m.a, "ckpt-1")
    billed = body["Oem"]["Bmgnic"]["Tenancy"]
    ksft_pr(f"checkpoint (TCG): {took:.1f} s in all; hibernation {info['HibernateSeconds']} s, "
            f"storing {info['StoreSeconds']} s; image {info['ImageBytes'] / 2**20:.1f} MiB "
            f"on a {info['DiskBytes'] >> 20} MiB disk; kernel {info['Kernel']['release']}")
    ksft_eq(pings(m.peer, 2, wait=1, peer=rack.SERVER_IP), 0,
            "the checkpointed tenant still answers")
    body, took = restore(m, m.a, "ckpt-1")
    ksft_pr(f"restore on the same server (TCG): {took:.1f} s; the guest agent answered "
            f"{body['Oem']['Bmgnic']['Restore']['ResumeSeconds']} s after the power-on")
    check_tenant_back(m, m.a, "same server")
    ksft_ge(m.counter.counted(), before, "the peer lost counts")
    # Billing goes on from what the checkpoint carried.
    current = m.a.current_tenancy()
    ksft_eq(current["CarriedBytes"], billed["TotalBilledBytes"],
            "the restored tenancy does not carry the checkpoint's bill")
    ksft_true(wait_for(lambda: m.a.current_tenancy()["BilledBytes"] > current["CarriedBytes"],
                       timeout=30), "the restored tenancy's bill does not grow")


def peer_clock(m):
    return float(m.peer.run("date +%s.%N")[1])


def test_migration_to_server_b(m):
    # The peer pings the tenant all along; -O reports a ping that got no
    # answer, -D stamps every line with the peer's clock.
    m.peer.run(f"(ping -n -D -O -i 0.2 -W 1 {rack.SERVER_IP} > /tmp/migration-ping.log 2>&1 &)")
    time.sleep(2)
    began = peer_clock(m)
    body, info, took_ckpt = checkpoint(m, m.a, "ckpt-2")
    # The control plane points the tenant at server B: the peer's VTEP
    # sends the tenant's MAC, and the VNI's flooding, to B's.
    m.peer.run(f"bridge fdb replace {rack.FACTORY_MAC} dev vxlan0 dst {VTEP_B} self permanent; "
               f"bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst {VTEP_B} self permanent; "
               f"bridge fdb del 00:00:00:00:00:00 dev vxlan0 dst {rack.LOCAL_VTEP} self")
    billed = body["Oem"]["Bmgnic"]["Tenancy"]
    body, took_restore = restore(m, m.b, "ckpt-2")
    check_tenant_back(m, m.b, "migrated")
    ended = peer_clock(m)
    time.sleep(3)
    m.peer.run("pkill -INT -f 'ping -n -D -O'; sleep 1")
    _, log = m.peer.run("cat /tmp/migration-ping.log")
    replies = [(float(t), int(n)) for t, n in
               re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)", log, re.M)]
    answered = {n for _, n in replies}
    lost = [(float(t), int(n)) for t, n in
            re.findall(r"^\[(\d+\.\d+)\] no answer yet for icmp_seq=(\d+)", log, re.M)
            if int(n) not in answered]
    ksft_true(len(replies) > 10 and lost, f"the peer's pings: {log[-400:]}")
    # The downtime: from the last answer before the first ping lost after
    # the checkpoint began, to the first answer after the last one lost
    # before the tenant was back. A loss outside the migration is one it
    # should not have caused.
    inside = [n for t, n in lost if began <= t <= ended]
    outside = [n for t, n in lost if not began <= t <= ended]
    down_from = max((t for t, n in replies if n < min(inside)), default=began)
    down_to = min((t for t, n in replies if n > max(inside)), default=ended)
    ksft_pr(f"migration (TCG): checkpoint {took_ckpt:.1f} s, restore on server B "
            f"{took_restore:.1f} s (guest agent {body['Oem']['Bmgnic']['Restore']['ResumeSeconds']}"
            f" s after the power-on); downtime seen by the pinging peer "
            f"{down_to - down_from:.1f} s, {len(inside)} pings lost in it, "
            f"{len(outside)} outside it")
    ksft_eq(outside, [], "the peer lost pings outside the migration")
    ksft_eq(peer_neighbour(m)[0], m.neighbour[0], "the peer's ARP entry changed")
    _, mac = m.b.vm.run(f"cat /sys/class/net/{rack.server_netdev(m.b.vm)}/address")
    ksft_eq(mac.strip(), rack.FACTORY_MAC.lower(), "the tenant's MAC changed")
    ksft_eq(m.a.identity().get("mac", "00:00:00:00:00:00"), "00:00:00:00:00:00",
            "server A's NIC still has the tenant")
    ksft_eq(m.b.current_tenancy()["CarriedBytes"], billed["TotalBilledBytes"],
            "server B's tenancy does not carry the bill from server A")
    _, tenant = m.b.ynl("dev-get")
    ksft_eq(tenant["tenant"]["local-ip"], VTEP_B, "the tenant does not send from B's VTEP")


def test_restore_of_another_kernel_build_is_refused(m):
    # A checkpoint whose disk boots another build of the kernel than the
    # one that wrote its image: the disk's bzImage says #2, not #1.
    src, bad = (os.path.join(m.storage, n) for n in ("ckpt-2", "ckpt-other-kernel"))
    shutil.copyfile(src + ".json", bad + ".json")
    subprocess.run(["cp", "--sparse=always", src + ".disk", bad + ".disk"], check=True)
    image = open(rack.kernel_build_dir() + "/arch/x86/boot/bzImage", "rb").read()
    at = image.find(b") #") + 3
    patched = os.path.join(m.r.logdir, "bzImage-other")
    with open(patched, "wb") as f:
        f.write(image[:at] + (b"9" if image[at:at + 1] != b"9" else b"8") + image[at + 1:])
    subprocess.run(["mcopy", "-o", "-i", f"{bad}.disk@@1048576", patched, "::/bzImage"],
                   check=True)
    disk = m.a.board.disk
    digest = subprocess.run(["sha256sum", disk], capture_output=True, text=True).stdout.split()[0]
    task, _ = m.a.action(RESTORE, "ckpt-other-kernel")
    body = m.a.task_json(task)
    messages = " / ".join(x["Message"] for x in body.get("Messages", []))
    ksft_pr(f"refused: {messages[-300:]}")
    ksft_eq(body["TaskState"], "Exception", "a checkpoint of another kernel build was restored")
    ksft_in("was taken with kernel", messages, "the refusal does not say why")
    ksft_eq(m.a.power(), "off", "the server did not stay off")
    after = subprocess.run(["sha256sum", disk], capture_output=True, text=True).stdout.split()[0]
    ksft_eq(after, digest, "the server's disk was written")
    ksft_eq(m.a.identity().get("mac", "00:00:00:00:00:00"), "00:00:00:00:00:00",
            "the NIC was given the tenant of a refused checkpoint")
    # The tenant on server B is not disturbed.
    ksft_true(m.counter.counting(30), "the tenant on server B stopped counting")


def main():
    bmgnic_env.run_in_rack("migration", start, [
        test_tenant_runs_on_server_a,
        test_checkpoint_without_the_guest_agent_leaves_the_tenant_running,
        test_checkpoint_and_restore_on_the_same_server,
        test_migration_to_server_b,
        test_restore_of_another_kernel_build_is_refused,
    ])


if __name__ == "__main__":
    main()
