# SPDX-License-Identifier: GPL-2.0
"""Shared set-up of the bmgnic rack selftests.

Puts the kernel's own netdev selftest library (tools/testing/selftests/net/
lib/py: ksft_run, ksft_eq, ...; KTAP output) and the project's rack runner
on the import path.
"""

import os
import sys

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 6))
sys.path.insert(0, os.path.join(TOP, "tools/testing/vm"))

import rack  # noqa: E402

KDIR = rack.kernel_build_dir()
KSRC = os.path.realpath(os.path.join(KDIR, "source"))
sys.path.insert(0, os.path.join(KSRC, "tools/testing/selftests/net"))
BMGNIC_KO, RME_KO = (os.path.join(TOP, "drivers/bmgnic/bmgnic.ko"),
                     os.path.join(TOP, "rme/bmgnic_rme.ko"))
for ko in (BMGNIC_KO, RME_KO):
    if not os.path.exists(ko):
        raise SystemExit(f"{ko} is not built: run 'make' first")
