#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""`make demo`: boot the rack and show the BMGNIC from every side."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import rack  # noqa: E402

TOP = rack.TOP


def show(vm, title, command):
    print(f"\n--- {vm.role}: {title}\n$ {command}")
    _, out = vm.run(command)
    print(out.rstrip())


def main():
    print("== bmgnic demo: preparing the kernel, QEMU, model and modules "
          "(cached after the first run)")
    kdir = rack.kernel_build_dir()
    if subprocess.run(["make", "-s", "-C", kdir, f"M={TOP}", "modules"],
                      stdout=subprocess.DEVNULL).returncode != 0:
        sys.exit("demo: module build failed (run 'make' to see why)")
    bmgnic_ko, rme_ko = rack.MODULES
    try:
        with rack.Rack("demo") as r:
            print("== booting the rack: server VM (tenant), RME VM, peer VM, "
                  "one bmgnic-model between them")
            model, vms = rack.standard_rack(r)
            server, rme, peer = vms["server"], vms["rme"], vms["peer"]
            show(server, "the BMGNIC on the tenant's PCIe bus", "lspci -nn -d 1af4:10f0")
            show(server, "load the tenant driver", f"insmod {bmgnic_ko} && dmesg | grep -E 'bmgnic[ :]'")
            show(server, "bound to bmgnic", "lspci -k -d 1af4:10f0 2>/dev/null")
            show(server, "the ID and version registers, read from BAR0 by hand",
                 f"python3 {TOP}/tools/testing/vm/bar0.py read 0x0 0x4")
            show(rme, "the RME module, attached to the NC-SI sideband",
                 f"ip link set eth0 up && insmod {rme_ko} sideband=eth0 && dmesg | grep bmgnic_rme")
            show(peer, "the peer on the fabric", "ip -br link show eth0")
            print(f"\n--- model log ({os.path.basename(model.log)})")
            with open(model.log) as f:
                print(f.read().rstrip())
    except rack.RackError as e:
        sys.exit(f"demo failed: {e}")
    print("\n== demo done: every VM and the model have been stopped")


if __name__ == "__main__":
    main()
