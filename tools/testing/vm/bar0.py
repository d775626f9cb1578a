#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Reads and writes BMGNIC BAR0 registers from inside a guest, as any root
process on a bare-metal server could, through sysfs's resource0 mapping.

    bar0.py read OFFSET [OFFSET...]
    bar0.py write OFFSET VALUE
    bar0.py sweep VALUE [VALUE...]   write every register with each value
"""

import glob
import mmap
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import wire  # noqa: E402

PCI_ID = (f"{wire.regs.PCI_VENDOR_ID:#06x}", f"{wire.regs.PCI_DEVICE_ID:#06x}")


def find_bar0():
    for dev in sorted(glob.glob("/sys/bus/pci/devices/*")):
        with open(f"{dev}/vendor") as v, open(f"{dev}/device") as d:
            if (v.read().strip(), d.read().strip()) == PCI_ID:
                return f"{dev}/resource0"
    sys.exit(f"no BMGNIC ({wire.regs.PCI_VENDOR_ID:04x}:{wire.regs.PCI_DEVICE_ID:04x}) found")


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("read", "write", "sweep"):
        sys.exit(__doc__)
    fd = os.open(find_bar0(), os.O_RDWR | os.O_SYNC)
    regs = memoryview(mmap.mmap(fd, wire.regs.guest.REGS_END)).cast("I")
    if sys.argv[1] == "read":
        for off in sys.argv[2:]:
            print(f"{int(off, 0):#06x} {regs[int(off, 0) // 4]:#010x}")
    elif sys.argv[1] == "write":
        regs[int(sys.argv[2], 0) // 4] = int(sys.argv[3], 0)
    else:
        writes = 0
        for value in sys.argv[2:]:
            for i in range(len(regs)):
                regs[i] = int(value, 0)
                writes += 1
        print(f"{writes} writes")


if __name__ == "__main__":
    main()
