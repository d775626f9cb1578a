#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The tenant driver as a tenant uses it: an Ethernet interface that
passes ping and iperf3 to a peer VM, reports itself to ethtool, follows
the link and quarantine state the RME sets, recovers from device errors,
and loads and unloads under traffic without leaking.

Rack: the model runs open (plain L2 between the server VM's bmgnic and the
peer VM's virtio NIC on the fabric; no RME VM), the server VM boots with
kmemleak on. The RME bank is reached from the host with bmgnic-rmectl.

On the debug kernel (make check's debug pass) the server boots without
kmemleak: the leak scan is the normal kernel's job. On the debug kernel
under TCG, kmemleak's record of every allocation made the boot take 144 s
instead of 55 s and each command about twice as long, with KASAN and
lockdep already checking every one of them.
"""

import json
import re
import time

import bmgnic_env
from bmgnic_env import rack, wait_for, wire, BMGNIC_KO
from lib.py import ksft_eq, ksft_ge, ksft_in, ksft_ne, ksft_pr, ksft_true

SERVER_IP, PEER_IP = "10.10.1.1", "10.10.1.2"
FACTORY_MAC = "52:54:00:b0:00:01"
BAR0 = f"{bmgnic_env.TOP}/tools/testing/vm/bar0.py"
# Queue pair 0's RX doorbell: the map gives the register within its block.
RX_TAIL_0 = wire.regs.guest.QUEUE_BASE + wire.regs.guest.RX_TAIL


def iface(vm):
    """The interface bmgnic registered, found by driver."""
    _, out = vm.run("for d in /sys/class/net/*; do "
                    "[ \"$(basename $(readlink -f $d/device/driver) 2>/dev/null)\" = bmgnic ] "
                    "&& basename $d; done; true")
    names = out.split()
    return names[0] if names else None


def bring_up(s, dev):
    s.run(f"ip addr flush dev {dev}; ip addr add {SERVER_IP}/24 dev {dev}; ip link set {dev} up")


def pings(vm, count=3, timeout=2):
    rc, out = vm.run(f"ping -n -c {count} -W {timeout} {PEER_IP}", timeout=60, check=False)
    m = re.search(r"(\d+) received", out)
    return int(m.group(1)) if m else 0


def carrier(vm, dev):
    _, out = vm.run(f"cat /sys/class/net/{dev}/carrier", check=False)
    return out.strip()


def operstate(vm, dev):
    _, out = vm.run(f"cat /sys/class/net/{dev}/operstate", check=False)
    return out.strip()


def ethtool_stats(vm, dev):
    _, out = vm.run(f"ethtool -S {dev}")
    return {k: int(v) for k, v in re.findall(r"^\s+(\w+): (\d+)$", out, re.M)}


# Whether the server VM tracks allocations for the leak scan.
KMEMLEAK = not rack.debug_kernel()


def start(r):
    model = r.start_model(open_l2=True)
    server = r.start_vm("server", model=model, cmdline="kmemleak=on" if KMEMLEAK else "")
    peer = r.start_vm("peer", nics=[(model.fabric_remote, model.fabric_local)])
    for vm in (server, peer):
        vm.wait_ready()
    peer.run(f"ip addr add {PEER_IP}/24 dev eth0; ip link set eth0 up")
    server.run(f"insmod {BMGNIC_KO}")
    return (model, server, peer)


def test_interface_registers_with_device_mac(model, s, peer):
    dev = iface(s)
    ksft_true(dev, "bmgnic registered no interface")
    _, link = s.run(f"ip -d link show {dev}")
    ksft_in(f"link/ether {FACTORY_MAC}", link, "MAC not taken from the device")
    ksft_in("maxmtu 1500", link, "max MTU is not the device's cap")
    _, info = s.run(f"ethtool -i {dev}")
    ksft_pr(f"ethtool -i {dev}:\n" + info.strip())
    ksft_in("driver: bmgnic", info)
    ksft_true(re.search(r"bus-info: 0000:[0-9a-f]{2}:00\.0", info), "no PCI bus info")
    # Down until opened.
    ksft_eq(s.run(f"ip -br link show {dev}")[1].split()[1], "DOWN")


def test_ping_peer(model, s, peer):
    dev = iface(s)
    bring_up(s, dev)
    ksft_eq(carrier(s, dev), "1", "no carrier with the fabric link up")
    ksft_eq(pings(s, 5), 5, "ping through bmgnic lost echoes")
    _, ifs = s.run(f"ethtool {dev}")
    ksft_in("Link detected: yes", ifs)


def test_iperf3_tcp_and_stats(model, s, peer):
    dev = iface(s)
    peer.run("iperf3 -s -1 -D -I /tmp/iperf3.pid; sleep 0.5")
    _, out = s.run(f"iperf3 -c {PEER_IP} -t 3 -J", timeout=60)
    result = json.loads(out)
    received = result["end"]["sum_received"]["bytes"]
    mbps = result["end"]["sum_received"]["bits_per_second"] / 1e6
    ksft_pr(f"iperf3 TCP {received} bytes, {mbps:.1f} Mbit/s")
    ksft_ge(received, 1_000_000, "iperf3 moved less than 1 MB")
    stats = ethtool_stats(s, dev)
    _, out = s.run(f"ethtool -S {dev}")
    ksft_pr(f"ethtool -S {dev}:\n" + out.strip())
    ksft_ge(stats["tx_bytes"], received, "device counted fewer TX bytes than iperf3 sent")
    ksft_eq(stats["tx_drop_bad_descriptor"], 0)
    ksft_eq(stats["driver_rx_bad_descriptor"], 0)
    # ip -s link folds the same counters.
    _, js = s.run(f"ip -s -j link show {dev}")
    link = json.loads(js)[0]["stats64"]
    ksft_ge(link["tx"]["bytes"], received)
    ksft_ge(link["rx"]["packets"], 1)


def snmp(vm, proto):
    """`proto`'s counters in the VM's /proc/net/snmp, by name."""
    _, out = vm.run(f"grep '^{proto}:' /proc/net/snmp")
    names, values = [line.split()[1:] for line in out.splitlines()[:2]]
    return dict(zip(names, map(int, values)))


def tcp_payloads_sent(s, dev, seconds):
    """Runs iperf3 TCP to the peer while tcpdump on `dev` records what the
    stack hands the driver; returns (bytes iperf3 moved, the TCP payload
    length of each frame seen)."""
    s.run(f"rm -f /tmp/tso.txt; (timeout {seconds + 8} tcpdump -i {dev} -nn -q -c 400 "
          f"'tcp dst port 5201' > /tmp/tso.txt 2>/dev/null &); sleep 1")
    _, out = s.run(f"iperf3 -c {PEER_IP} -t {seconds} -J", timeout=60, check=False)
    s.run("sleep 1; pkill -INT tcpdump; true")
    _, seen = s.run("cat /tmp/tso.txt")
    try:
        moved = json.loads(out)["end"]["sum_received"]["bytes"]
    except (ValueError, KeyError):
        moved = 0
    return moved, [int(n) for n in re.findall(r"tcp (\d+)$", seen, re.M)]


def test_tx_offloads_segment_and_checksum(model, s, peer):
    """TCP hands the driver frames larger than the MTU and the device cuts
    them to size with correct checksums; ethtool -K turns it off."""
    dev = iface(s)
    _, out = s.run(f"ethtool -k {dev}")
    for feature in ("scatter-gather", "tx-checksum-ipv4", "tx-checksum-ipv6",
                    "tx-tcp-segmentation", "tx-tcp6-segmentation"):
        ksft_true(re.search(rf"^\s*{feature}: on$", out, re.M),
                  f"{feature} is not on and switchable: " +
                  (re.search(rf"^\s*{feature}:.*$", out, re.M) or [""])[0].strip())
    peer.run("iperf3 -s -D -I /tmp/iperf3.pid; sleep 0.5")
    before = (snmp(peer, "Tcp")["InCsumErrors"], snmp(peer, "Ip")["InHdrErrors"],
              snmp(peer, "Udp")["InCsumErrors"])
    moved, lengths = tcp_payloads_sent(s, dev, 3)
    ksft_pr(f"TSO on: {moved} bytes, {len(lengths)} frames seen, largest payload "
            f"{max(lengths, default=0)} bytes")
    ksft_ge(moved, 1_000_000, "iperf3 moved less than 1 MB with TSO on")
    ksft_ge(max(lengths, default=0), 2 * 1448, "the stack handed no TSO frame to the driver")
    # Checksum only: UDP datagrams, each with its checksum left to the device.
    _, out = s.run(f"iperf3 -c {PEER_IP} -u -b 20M -l 1000 -t 2 -J", timeout=60, check=False)
    udp = json.loads(out)["end"]["sum_received"]
    ksft_ge(udp["packets"] - udp["lost_packets"], 100, "no UDP datagram arrived")
    after = (snmp(peer, "Tcp")["InCsumErrors"], snmp(peer, "Ip")["InHdrErrors"],
             snmp(peer, "Udp")["InCsumErrors"])
    ksft_eq(after, before, "the peer saw checksum errors (TCP, IP header, UDP)")
    stats = ethtool_stats(s, dev)
    ksft_eq((stats["tx_drop_bad_descriptor"], stats["tx_drop_too_long"]), (0, 0),
            "the device refused offloaded frames")
    s.run(f"ethtool -K {dev} tso off tx off")
    moved, lengths = tcp_payloads_sent(s, dev, 2)
    ksft_pr(f"TSO and checksums off: {moved} bytes, largest payload {max(lengths, default=0)}")
    ksft_ge(moved, 500_000, "iperf3 moved less than 500 kB with the offloads off")
    ksft_true(lengths and max(lengths) <= 1448, "frames above the MSS with TSO off")
    s.run(f"ethtool -K {dev} tso on tx on")
    peer.run("kill $(cat /tmp/iperf3.pid) 2>/dev/null; true")


def test_ring_sizes_and_coalescing(model, s, peer):
    dev = iface(s)
    _, out = s.run(f"ethtool -g {dev}")
    ksft_pr(f"ethtool -g {dev}:\n" + out.strip())
    ksft_true(re.search(r"Pre-set maximums:\s*\nRX:\s+4096", out), "RX max not 4096")
    s.run(f"ethtool -G {dev} rx 512 tx 128")
    _, out = s.run(f"ethtool -g {dev}")
    ksft_true(re.search(r"Current hardware settings:\s*\nRX:\s+512", out), "RX ring not resized")
    ksft_eq(pings(s, 3), 3, "no traffic after resizing the rings")
    rc, out = s.run(f"ethtool -G {dev} rx 100", check=False)
    ksft_ne(rc, 0, "a ring size that is not a power of two was accepted")
    ksft_in("powers of two", out, "no extack message for a bad ring size")
    # Frames of many fragments need room: the driver keeps 64 TX slots.
    rc, out = s.run(f"ethtool -G {dev} tx 32", check=False)
    ksft_ne(rc, 0, "a TX ring of 32 was accepted")
    ksft_in("at least 64", out, "no extack message for a small TX ring")
    s.run(f"ethtool -C {dev} rx-usecs 50")
    _, out = s.run(f"ethtool -c {dev}")
    ksft_true(re.search(r"rx-usecs:\s+50", out), "moderation not applied")
    ksft_eq(pings(s, 3), 3, "no traffic with interrupt moderation")
    s.run(f"ethtool -C {dev} rx-usecs 0; ethtool -G {dev} rx 256 tx 256")


def test_mac_change_refused(model, s, peer):
    dev = iface(s)
    rc, out = s.run(f"ip link set dev {dev} address 02:11:22:33:44:55", check=False)
    ksft_ne(rc, 0, "the guest changed the RME-assigned MAC")
    ksft_in("Operation not permitted", out)
    _, link = s.run(f"ip link show {dev}")
    ksft_in(FACTORY_MAC, link)
    _, log = s.run("dmesg | grep bmgnic | tail -3")
    ksft_in("assigned by the cloud's management engine", log)
    # No station address at all: netdev::Registration refuses it as
    # eth_mac_addr() does, before the driver is asked.
    for bad in ("03:11:22:33:44:55", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"):
        rc, out = s.run(f"ip link set dev {dev} address {bad}", check=False)
        ksft_ne(rc, 0, f"the guest set {bad}")
        ksft_in("Cannot assign requested address", out, f"{bad}: not EADDRNOTAVAIL")
    _, link = s.run(f"ip link show {dev}")
    ksft_in(FACTORY_MAC, link)


def test_quarantine_drops_carrier(model, s, peer):
    dev = iface(s)
    rack.rmectl(model, "init", "policy", "quarantined=1", "miss=allow")
    ksft_true(wait_for(lambda: carrier(s, dev) == "0"), "carrier stayed on in quarantine")
    ksft_eq(pings(s, 2, 1), 0, "traffic passed in quarantine")
    rack.rmectl(model, "init", "policy", "quarantined=0", "miss=allow")
    ksft_true(wait_for(lambda: carrier(s, dev) == "1"), "carrier did not come back")
    # The stack restarts the queue once link watch has seen the carrier.
    ksft_true(wait_for(lambda: operstate(s, dev) == "up"), "operstate did not return to up")
    # ARP failed during the quarantine; the stack would answer the next
    # ping from that FAILED entry with "Destination Host Unreachable".
    s.run(f"ip neigh flush dev {dev}")
    ksft_eq(pings(s, 3), 3, "traffic did not resume after quarantine")


def test_device_error_resets_and_recovers(model, s, peer):
    dev = iface(s)
    before = ethtool_stats(s, dev)["driver_resets"]
    # An RX doorbell far past the ring: the device stops with error 3.
    # (The TX doorbell is only a kick while the driver publishes its index
    # in the status block: the device ignores the value written there.)
    bmgnic_env.expect_resets(1)
    s.run(f"{BAR0} write {RX_TAIL_0:#x} 0x7fffffff")
    ksft_true(wait_for(lambda: ethtool_stats(s, dev)["driver_resets"] > before),
              "driver did not reset the device")
    _, log = s.run("dmesg | grep bmgnic | tail -5")
    ksft_in("device error 3", log)
    ksft_eq(pings(s, 3), 3, "traffic did not resume after the reset")


def test_rmmod_under_traffic(model, s, peer):
    peer.run("iperf3 -s -D -I /tmp/iperf3-bg.pid; sleep 0.5")
    bmgnic_env.mark_kernel_log(s, "rmmod under traffic")
    s.run(f"(iperf3 -c {PEER_IP} -t 30 >/dev/null 2>&1 &) ; sleep 2")
    s.run("rmmod bmgnic", timeout=60)
    ksft_eq(iface(s), None, "interface left after rmmod")
    s.run("pkill iperf3; true")
    peer.run("kill $(cat /tmp/iperf3-bg.pid); true")
    splat = rack.SPLATS.search(bmgnic_env.kernel_log_since(s, "rmmod under traffic"))
    ksft_true(splat is None, f"kernel splat after rmmod under traffic: {splat and splat.group(0)}")
    s.run(f"insmod {BMGNIC_KO}")
    bring_up(s, iface(s))
    ksft_eq(pings(s, 3), 3, "no traffic after reload")


def test_load_unload_cycles_without_leaks(model, s, peer):
    cycles = bmgnic_env.scaled(100, minimum=5)
    script = f"""
ok=0
for i in $(seq {cycles}); do
    rmmod bmgnic 2>/dev/null
    insmod {BMGNIC_KO} || break
    dev=$(ls /sys/bus/pci/drivers/bmgnic/*/net/ 2>/dev/null | head -1)
    [ -n "$dev" ] || break
    ip addr add {SERVER_IP}/24 dev $dev && ip link set $dev up || break
    ping -n -c 1 -W 2 {PEER_IP} >/dev/null && ok=$((ok+1))
done
echo "cycles_with_traffic=$ok"
"""
    t0 = time.time()
    _, out = s.run(script, timeout=900)
    took = time.time() - t0
    m = re.search(r"cycles_with_traffic=(\d+)", out)
    ok = int(m.group(1)) if m else 0
    ksft_pr(f"{ok} of {cycles} load/ping/unload cycles passed traffic in {took:.0f} s")
    ksft_ge(ok, cycles - 2, "load/unload cycles lost traffic")
    s.run("rmmod bmgnic")
    if KMEMLEAK:
        # kmemleak reports objects unreferenced for a while: scan twice.
        s.run("echo scan > /sys/kernel/debug/kmemleak; sleep 6; "
              "echo scan > /sys/kernel/debug/kmemleak", timeout=300)
        _, leaks = s.run("cat /sys/kernel/debug/kmemleak")
        ksft_pr("kmemleak: " + (leaks.strip()[:2000] or "no leaks"))
        ksft_eq(leaks.count("unreferenced object"), 0, "kmemleak found leaks")
    else:
        ksft_pr("kmemleak: off on the debug kernel; the normal kernel's run scans for leaks")
    s.run(f"insmod {BMGNIC_KO}")
    bring_up(s, iface(s))


def test_mtu_follows_the_device_cap(model, s, peer):
    # Runs last: setting an identity ends the model's open mode.
    rack.rmectl(model, "init", "identity", f"mac={FACTORY_MAC}", "mtu_cap=9000", f"ipv4={SERVER_IP}")
    s.run("rmmod bmgnic")
    s.run(f"insmod {BMGNIC_KO}")
    dev = iface(s)
    _, link = s.run(f"ip -d link show {dev}")
    ksft_in("maxmtu 9000", link)
    s.run(f"ip link set {dev} up; ip link set {dev} mtu 9000")
    _, link = s.run(f"ip link show {dev}")
    ksft_in("mtu 9000", link)
    rc, out = s.run(f"ip link set {dev} mtu 9001", check=False)
    ksft_ne(rc, 0, "MTU above the device maximum accepted")
    ksft_in("mtu greater than device maximum", out)
    # The RME lowers the cap under a running interface: the driver asks
    # the device, which refuses.
    rack.rmectl(model, "init", "identity", f"mac={FACTORY_MAC}", "mtu_cap=1500", f"ipv4={SERVER_IP}")
    s.run(f"ip link set {dev} mtu 1500")
    rc, out = s.run(f"ip link set {dev} mtu 4000", check=False)
    ksft_ne(rc, 0, "MTU above the RME's new cap accepted")
    _, log = s.run("dmesg | grep bmgnic | tail -3")
    ksft_in("MTU 4000 refused: the device allows at most 1500", log)


def main():
    bmgnic_env.run_in_rack("tenant_driver", start, [
        test_interface_registers_with_device_mac,
        test_ping_peer,
        test_iperf3_tcp_and_stats,
        test_tx_offloads_segment_and_checksum,
        test_ring_sizes_and_coalescing,
        test_mac_change_refused,
        test_quarantine_drops_carrier,
        test_device_error_resets_and_recovers,
        test_rmmod_under_traffic,
        test_load_unload_cycles_without_leaks,
        test_mtu_follows_the_device_cap,
    ])


if __name__ == "__main__":
    main()
