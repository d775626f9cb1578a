#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Runs the modules' KUnit suites in the rack and reports every case.

Each module's `#[kunit_tests]` suite runs when it is loaded. It is loaded
where it belongs (bmgnic in the server VM, bound to the emulated device;
bmgnic_rme in the RME VM, attached to its sideband), the kernel log of the
load is parsed by the kernel's own `tools/testing/kunit/kunit.py parse`, and
each case is printed as one KTAP result line.
"""

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tools/testing/vm"))
import rack  # noqa: E402


def parse_ktap(ksrc, log_text):
    """Returns [(name, status)] of every case kunit.py found in log_text."""
    with tempfile.TemporaryDirectory() as d:
        raw = os.path.join(d, "dmesg.txt")
        js = os.path.join(d, "results.json")
        with open(raw, "w") as f:
            f.write(log_text)
        out = subprocess.run(
            [sys.executable, os.path.join(ksrc, "tools/testing/kunit/kunit.py"),
             "parse", f"--json={js}", raw], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        print("\n".join("# " + line for line in out.stdout.splitlines()))
        if not os.path.exists(js):
            return []
        with open(js) as f:
            doc = json.load(f)
    cases = []

    def walk(group, prefix):
        for case in group.get("test_cases", []):
            cases.append((f"{prefix}{case['name']}", case["status"]))
        for sub in group.get("sub_groups", []):
            walk(sub, f"{prefix}{sub['name']}.")

    walk(doc, "")
    return cases


def load_suite(vm, ko, args):
    """Loads `ko` in `vm`, which runs its suite; returns the kernel log of
    the load, and why insmod failed (None if it did not)."""
    vm.run("dmesg -C")
    rc, out = vm.run(f"insmod {ko} {args}", check=False)
    _, log = vm.run("dmesg")
    return log, (f"insmod {os.path.basename(ko)} failed: {out.strip()}" if rc != 0 else None)


def kunit_runner_waits(r):
    """The hung-task reports on the rack's consoles whose task is insmod
    waiting in kunit_try_catch_run: KUnit runs a module's suite from its
    insmod and waits for each case, with a timeout of its own (a stuck
    case fails as such). On the debug kernel under TCG a long case (the
    10 000 evictions) can keep that wait past the detector's 120 s."""
    waits = set()
    for vm in r.vms:
        try:
            with open(vm.console, errors="replace") as f:
                lines = [line.rstrip() for line in f]
        except OSError:
            continue
        for i, line in enumerate(lines):
            if re.search(r"INFO: task insmod:\d+ blocked for more than", line) and \
                    any("kunit_try_catch_run" in later for later in lines[i + 1:i + 40]):
                waits.add((vm.role, line))
    return waits


def main():
    kdir = rack.kernel_build_dir()
    ksrc = os.path.realpath(os.path.join(kdir, "source"))
    results = []
    failed = False
    try:
        with rack.Rack("kunit") as r:
            model = r.start_model()
            server = r.start_vm("server", model=model)
            rme = r.start_vm("rme", nics=[(model.ncsi_remote, model.ncsi_local)])
            server.wait_ready()
            rme.wait_ready()
            bmgnic_ko, rme_ko = rack.MODULES
            rme.run("ip link set eth0 up")
            # Both VMs at once: each suite is one guest CPU's work, and on
            # the debug kernel each takes a minute or more.
            with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
                loads = {"bmgnic": pool.submit(load_suite, server, bmgnic_ko, ""),
                         "bmgnic_rme": pool.submit(load_suite, rme, rme_ko, "sideband=eth0")}
                logs = {module: job.result() for module, job in loads.items()}
            expected = {}
            for module, (log, failure) in logs.items():
                if failure:
                    print(f"# {failure}")
                expected[module] = parse_ktap(ksrc, log)
            for module, cases in expected.items():
                if not cases:
                    results.append((f"{module}.kunit_suite_ran", "FAIL"))
                results.extend(cases)
            waits = kunit_runner_waits(r)
            for role, line in sorted(waits):
                print(f"# note: {role} console, KUnit waiting for a slow case (not counted): {line}")
            splats = [s for s in r.console_splats() if s not in waits]
            for role, line in splats[:20]:
                print(f"# {role} console: {line}")
            results.append(("consoles_are_clean", "FAIL" if splats else "PASS"))
            if any(status != "PASS" for _, status in results):
                r.failed = True
    except rack.RackError as e:
        print(f"# rack failed: {e}")
        failed = True
    print("TAP version 13")
    print(f"1..{len(results) + (1 if failed else 0)}")
    n = 0
    for n, (name, status) in enumerate(results, 1):
        ok = status == "PASS"
        skip = " # SKIP" if status == "SKIPPED" else ""
        print(f"{'ok' if ok or skip else 'not ok'} {n} kunit.{name}{skip}")
    if failed:
        print(f"not ok {n + 1} kunit.rack_boot")
    sys.exit(1 if failed or any(s not in ("PASS", "SKIPPED") for _, s in results) else 0)


if __name__ == "__main__":
    main()
