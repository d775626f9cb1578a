#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The tenant's system sleeps and comes back with a working NIC: bmgnic's
suspend/resume and hibernation callbacks (rust/kernel/pci/sleep.rs).

Rack: the model on auxiliary power; the server VM owned by its board
(bmgnic-platform), booting the tenant OS image from its NVMe disk (swap on
p3, `resume=` on the kernel's command line: no 9p, whose transport has no
restore callback); the RME VM, which gives the NIC its tenant with ynl;
the peer VM, the tenant's VXLAN peer.

A bash loop in the tenant, the "counter", writes its count over a TCP
connection to the peer every 200 ms; the peer records each line. Suspend
to idle and hibernation (freeze and thaw) run with pm_test=devices, so
every device's callbacks run and the system comes back by itself; the
last case hibernates for real into swap, the server powers off (its QEMU
process gone), powers on, and the kernel restores the image: bmgnic's
restore programs a device that the model has reset. In each case the
counter's connection, opened before, carries on, and the peer's pings see
the tenant again.
"""

import os
import re
import subprocess
import time

import bmgnic_env
from bmgnic_env import TenantCounter, kernel_log_since, mark_kernel_log, pings, rack, wait_for

from lib.py import ksft_eq, ksft_ge, ksft_in, ksft_pr, ksft_true  # noqa: E402

class Sleeper:
    """What the cases share."""

    def __init__(self, r, server, rme, peer, ynl, board, model):
        self.r, self.server, self.rme, self.peer = r, server, rme, peer
        self.ynl, self.board, self.model = ynl, board, model

    def dev(self):
        return rack.server_netdev(self.server)

    def device_starts(self):
        """How many times the device has been given rings, by the model's
        log: once per open of the interface, each after a reset."""
        with open(self.model.log, errors="replace") as f:
            return f.read().count("rings enabled")

    def driver_resets(self):
        _, out = self.server.run(f"ethtool -S {self.dev()}")
        got = re.search(r"driver_resets: (\d+)", out)
        return int(got.group(1)) if got else -1

    def pm_test_sleep(self, state):
        """Sleeps with pm_test=devices: every driver's suspend-type
        callbacks, five seconds, their resume-type callbacks."""
        self.server.run("echo devices > /sys/power/pm_test")
        t = time.time()
        rc, out = self.server.run(f"echo {state} > /sys/power/state", check=False, timeout=180)
        took = time.time() - t
        self.server.run("echo none > /sys/power/pm_test")
        return rc, out, took


def start(r):
    model = r.start_model(aux_power=True)
    disk = os.path.join(r.logdir, "tenant-disk.img")
    subprocess.run(["cp", "--sparse=always", rack.tenant_image(), disk], check=True)
    board = rack.Platform(r, "server", disk=disk, power_on=True)
    server = r.start_vm("server", model=model, platform=board)
    rme = r.start_vm("rme", nics=[(model.ncsi_remote, model.ncsi_local)])
    peer = r.start_vm("peer", nics=[(model.fabric_remote, model.fabric_local)])
    for vm in (rme, peer):
        vm.wait_ready()
    peer_mac = rack.peer_vtep(peer)
    rack.rme_up(rme)
    ynl = rack.Ynl(rme, r.ynl())
    ynl("identity-set", {"identity": {"mac": rack.FACTORY_MAC, "mtu-cap": 1500,
                                      "ipv4": [rack.SERVER_IP]}})
    ynl("tenant-set", {"tenant": {"vni": rack.VNI, "local-mac": rack.LOCAL_VTEP_MAC,
                                  "local-ip": rack.LOCAL_VTEP}})
    ynl("vtep-set", {"index": 1, "mac": peer_mac, "ip": rack.PEER_VTEP})
    for match in ({"ethertype": 0x0806}, {"ethertype": 0x0800}):
        ynl("flow-add", {"priority": 10, "action": "encap", "vtep": 1, "match": match})
    server.wait_ready(300)
    if not wait_for(lambda: server.run(f"ip -br addr | grep -q {rack.SERVER_IP}",
                                       check=False)[0] == 0, timeout=60):
        raise rack.RackError("the tenant's init did not bring bmgnic up")
    return (Sleeper(r, server, rme, peer, ynl, board, model),)


def test_counter_connects(s):
    # Each device's sleep callbacks, logged with their result.
    s.server.run("echo 1 > /sys/power/pm_print_times")
    _, swaps = s.server.run("cat /proc/swaps")
    ksft_in("/dev/nvme0n1p3", swaps, "the tenant's swap is not on")
    ksft_ge(pings(s.server, 3), 2, "the tenant does not reach its peer")
    s.counter = TenantCounter(s.peer)
    ksft_true(s.counter.start(s.server), "the peer records no count from the tenant")

def check_back(s, label, resets, starts, callbacks):
    """After a sleep: the PCI core ran its `callbacks` on the device
    (pm_print_times), the driver reset the device and programmed it again
    (the model saw one more start than `starts`), the interface is up with
    its link, the counter's connection carries on, pings pass, and the
    driver logged no error and counted no device error."""
    ksft_eq(s.device_starts(), starts + 1,
            f"{label}: the driver did not stop the device and program it again")
    log = kernel_log_since(s.server, label)
    for callback in callbacks:
        ksft_true(re.search(rf"bmgnic \S+: PM: pci_pm_{callback} returned 0 ", log),
                  f"{label}: bmgnic's {callback} callback did not run and return 0")
    dev = s.dev()
    _, link = s.server.run(f"ip -br link show {dev}")
    ksft_in("LOWER_UP", link, f"{label}: the interface has no link")
    ksft_true(s.counter.counting(120), f"{label}: the counter's connection does not carry on")
    ksft_ge(pings(s.server, 3), 2, f"{label}: the tenant does not reach its peer")
    ksft_eq(TenantCounter.process(s.server), s.counter.pid,
            f"{label}: the counter process is not the one from before")
    ksft_true(not re.search(r"bmgnic .*(error|failed|refused)", log),
              f"{label}: bmgnic logged an error: {log[-600:]}")
    ksft_eq(s.driver_resets(), resets, f"{label}: the driver reset the device")


def test_suspend_to_idle(s):
    resets, starts = s.driver_resets(), s.device_starts()
    mark_kernel_log(s.server, "s2idle")
    rc, out, took = s.pm_test_sleep("freeze")
    ksft_eq(rc, 0, f"suspend to idle failed: {out.strip()[-300:]}")
    ksft_pr(f"suspend to idle, pm_test=devices (5 s asleep; TCG): {took:.1f} s")
    check_back(s, "s2idle", resets, starts, ("suspend", "resume"))


def test_hibernation_pm_test(s):
    resets, starts = s.driver_resets(), s.device_starts()
    mark_kernel_log(s.server, "hibernation-pm-test")
    rc, out, took = s.pm_test_sleep("disk")
    ksft_eq(rc, 0, f"hibernation (pm_test) failed: {out.strip()[-300:]}")
    ksft_pr(f"hibernation, pm_test=devices (TCG): {took:.1f} s")
    # The PM core leaves a hibernation test through the restore callbacks.
    check_back(s, "hibernation-pm-test", resets, starts, ("freeze", "restore"))


def test_down_interface_stays_down(s):
    dev = s.dev()
    s.server.run(f"ip link set {dev} down")
    starts = s.device_starts()
    rc, out, _ = s.pm_test_sleep("freeze")
    ksft_eq(rc, 0, f"suspend to idle failed: {out.strip()[-300:]}")
    ksft_eq(s.device_starts(), starts, "the driver gave a down interface's device rings")
    _, link = s.server.run(f"ip -br link show {dev}")
    ksft_in("DOWN", link.split()[1], "a down interface came back up from sleep")
    s.server.run(f"ip link set {dev} up")
    ksft_true(wait_for(lambda: pings(s.server, 1) == 1, timeout=30),
              "the interface does not work when brought up after sleep")


def test_hibernate_power_off_and_restore(s):
    resets = s.driver_resets()
    mark_kernel_log(s.server, "restore")
    before = s.counter.counted()
    s.server.run("echo none > /sys/power/pm_test; echo shutdown > /sys/power/disk")
    # The agent must answer before the system freezes: hibernate from the
    # background.
    with open(s.server.console, "rb") as f:
        mark = len(f.read())
    t = time.time()
    s.server.run("(setsid sh -c 'sleep 1; echo disk > /sys/power/state' "
                 "> /dev/null 2>&1 &)")
    off = wait_for(lambda: s.board.request("status")["state"]["power"] == "off",
                   timeout=600, interval=1)
    ksft_true(off, "the tenant did not hibernate and power off")
    hibernated = time.time() - t
    ksft_pr(f"hibernate to swap and power off (TCG): {hibernated:.1f} s")
    with open(s.server.console, "rb") as f:
        console = f.read()[mark:].decode(errors="replace")
    # The image is written after the thaw callbacks, so only the console
    # has them.
    ksft_true(re.search(r"bmgnic \S+: PM: pci_pm_thaw returned 0 ", console),
              "bmgnic's thaw callback did not run and return 0 before the image was saved")
    saved = re.search(r"PM: hibernation: Wrote (\d+) kbytes", console)
    ksft_true(saved, "the kernel did not report saving the image")
    compressed = re.search(r"PM: Image size after compression: (\d+) kbytes", console)
    if saved and compressed:
        ksft_pr(f"hibernation image: {int(saved.group(1)) / 1024:.1f} MiB, "
                f"{int(compressed.group(1)) / 1024:.1f} MiB in swap")
    ksft_true(s.counter.counted() >= before, "the peer lost counts")
    starts = s.device_starts()
    t = time.time()
    s.board.request("power-on")
    s.server.reconnect(600)
    restored = time.time() - t
    ksft_pr(f"power on to the restored tenant answering (TCG): {restored:.1f} s")
    with open(s.server.console, "rb") as f:
        console = f.read()[mark:].decode(errors="replace")
    ksft_true(re.search(r"PM: Image loading done", console),
              "the boot kernel did not load the hibernation image")
    # The restored kernel's log goes on from the snapshot, taken after the
    # freeze callbacks.
    check_back(s, "restore", resets, starts, ("freeze", "restore"))


if __name__ == "__main__":
    bmgnic_env.run_in_rack("system_sleep", start, [
        test_counter_connects,
        test_suspend_to_idle,
        test_hibernation_pm_test,
        test_down_interface_stays_down,
        test_hibernate_power_off_and_restore,
    ])
