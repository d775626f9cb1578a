#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The rack boots and both modules attach to their side of the BMGNIC.

Server VM: bmgnic binds to the vfio-user function by PCI ID and reads the
ID/version registers of BAR0. RME VM: bmgnic_rme attaches to the sideband
netdev named by its parameter and refuses a missing or unknown one.
"""

import re

import bmgnic_env
from bmgnic_env import rack, wire, BMGNIC_KO, RME_KO
from lib.py import ksft_in, ksft_ne, ksft_true


def test_pci_function_enumerates(r, vms):
    _, out = vms["server"].run("cat /sys/bus/pci/devices/*/uevent")
    ksft_in("PCI_ID=1AF4:10F0", out, "BMGNIC function not enumerated")
    ksft_in("PCI_CLASS=20000", out, "BMGNIC is not an Ethernet controller")
    _, caps = vms["server"].run("lspci -vv -d 1af4:10f0 2>/dev/null")
    ksft_in("Express (v2) Endpoint", caps)
    ksft_in("MSI-X: Enable- Count=3", caps)


def test_driver_binds_and_reads_id(r, vms):
    s = vms["server"]
    s.run(f"insmod {BMGNIC_KO}")
    _, bound = s.run("ls /sys/bus/pci/drivers/bmgnic/")
    ksft_true(re.search(r"0000:[0-9a-f:.]+", bound), "no device bound to bmgnic")
    _, log = s.run("dmesg | grep bmgnic")
    g = wire.regs.guest
    ksft_in(f"BMGNIC ID {g.ID_MAGIC:#010x}, register map v{g.VERSION_MAJOR}.{g.VERSION_MINOR}", log)
    # The factory MAC (the RME has not assigned one), the default MTU cap,
    # one MSI-X vector per cause.
    ksft_in("MAC 52:54:00:b0:00:01, MTU cap 1500, 3 MSI-X vectors", log)


def test_driver_unbinds_cleanly(r, vms):
    s = vms["server"]
    s.run("rmmod bmgnic")
    rc, _ = s.run("ls /sys/bus/pci/drivers/bmgnic", check=False)
    ksft_ne(rc, 0, "driver directory left after rmmod")
    s.run(f"insmod {BMGNIC_KO}")
    _, bound = s.run("ls /sys/bus/pci/drivers/bmgnic/")
    ksft_true(re.search(r"0000:", bound), "rebind after reload failed")


def test_rme_needs_a_sideband(r, vms):
    rme = vms["rme"]
    rc, out = rme.run(f"insmod {RME_KO}", check=False)
    ksft_ne(rc, 0, "bmgnic_rme loaded without sideband=")
    ksft_in("Invalid parameters", out)
    rc, out = rme.run(f"insmod {RME_KO} sideband=nosuchdev0", check=False)
    ksft_ne(rc, 0, "bmgnic_rme loaded with an unknown sideband")
    ksft_in("No such device", out)
    rc, out = rme.run(f"insmod {RME_KO} sideband=0123456789abcdef", check=False)
    ksft_ne(rc, 0, "an over-long interface name was accepted")
    _, log = rme.run("dmesg | grep bmgnic_rme")
    ksft_in("sideband=<ifname> parameter is required", log)
    ksft_in("sideband nosuchdev0: no such network device", log)


def test_rme_attaches_to_sideband(r, vms):
    rme = vms["rme"]
    rme.run("ip link set eth0 up")
    rme.run(f"insmod {RME_KO} sideband=eth0")
    _, log = rme.run("dmesg | grep bmgnic_rme")
    ksft_in("attached to sideband eth0", log)
    _, info = rme.run(f"modinfo -F parm {RME_KO}")
    ksft_in("sideband:Network interface of the NC-SI sideband", info)
    ksft_in("(string)", info)
    rme.run("rmmod bmgnic_rme")
    _, log = rme.run("dmesg | grep bmgnic_rme")
    ksft_in("detached from sideband", log)


def test_peer_has_fabric_link(r, vms):
    _, out = vms["peer"].run("ip -o link show eth0")
    ksft_in("eth0", out)


def main():
    def start(r):
        _, vms = rack.standard_rack(r)
        return (r, vms)

    bmgnic_env.run_in_rack("rack_boot", start, [
        test_pci_function_enumerates, test_driver_binds_and_reads_id,
        test_driver_unbinds_cleanly, test_rme_needs_a_sideband,
        test_rme_attaches_to_sideband, test_peer_has_fabric_link])


if __name__ == "__main__":
    main()
