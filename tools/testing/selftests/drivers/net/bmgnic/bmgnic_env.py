# SPDX-License-Identifier: GPL-2.0
"""Shared set-up of the bmgnic rack selftests.

Puts the kernel's own netdev selftest library (tools/testing/selftests/net/
lib/py: ksft_run, ksft_eq, ...; KTAP output) and the project's rack runner
on the import path.
"""

import functools
import json
import os
import re
import sys
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 6))
sys.path.insert(0, os.path.join(TOP, "tools/testing/vm"))

import rack  # noqa: E402

sys.path.insert(0, os.path.join(TOP, "tools/testing"))
import wire  # noqa: E402

KDIR = rack.kernel_build_dir()
KSRC = os.path.realpath(os.path.join(KDIR, "source"))
sys.path.insert(0, os.path.join(KSRC, "tools/testing/selftests/net"))
BMGNIC_KO, RME_KO = rack.MODULES
if not rack.debug_kernel():
    for ko in (BMGNIC_KO, RME_KO):
        if not os.path.exists(ko):
            raise SystemExit(f"{ko} is not built: run 'make' first")
scaled = rack.scaled

# Device resets a scenario provokes on purpose; any other is a failure.
_expected_resets = 0
RESET_LINE = re.compile(r"bmgnic .*device error \d+ \(info \S+\): resetting")


def wait_for(cond, timeout=10, interval=0.2):
    """Polls `cond` until it holds or `timeout` seconds pass; returns
    whether it held."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return False


def pings(vm, count=3, wait=2, interval=None, peer=rack.PEER_IP):
    """How many of `count` pings from `vm` to `peer` were answered."""
    every = f"-i {interval} " if interval else ""
    _, out = vm.run(f"ping -n -c {count} {every}-W {wait} {peer}", check=False, timeout=60)
    got = re.search(r"(\d+) received", out)
    return int(got.group(1)) if got else 0


def iperf3(server, peer, port, args, seconds=3, peer_ip=rack.PEER_IP):
    """Runs iperf3 from `server` to a one-shot server on `peer` at `port`;
    returns its JSON report, or {"error": ...} when it produced none."""
    peer.run(f"iperf3 -s -1 -D -p {port} -I /tmp/iperf3-{port}.pid; sleep 0.5")
    _, out = server.run(f"iperf3 -c {peer_ip} -p {port} -t {seconds} -J {args}",
                        check=False, timeout=120)
    peer.run(f"kill $(cat /tmp/iperf3-{port}.pid) 2>/dev/null; true")
    try:
        return json.loads(out)
    except ValueError:
        return {"error": out.strip()[-300:]}


def mark_kernel_log(vm, label):
    """Writes a marker line into `vm`'s kernel log; `kernel_log_since`
    returns what the kernel logged after it."""
    vm.run(f"echo 'bmgnic-selftest: {label}' > /dev/kmsg")


def kernel_log_since(vm, label):
    """The kernel log of `vm` after the last `mark_kernel_log(vm, label)`:
    a case judges only what it caused, not early boot or earlier cases."""
    _, log = vm.run("dmesg", check=False)
    return log.rpartition(f"bmgnic-selftest: {label}")[2]


COUNTER_PORT = 5101
# The peer's side of the counter's connection: every line it receives,
# with the time it arrived.
RECORDER = """
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", %d))
s.listen(1)
c, _ = s.accept()
out = open("/tmp/counter.log", "a", buffering=1)
buf = b""
while True:
    data = c.recv(4096)
    if not data:
        break
    buf += data
    while b"\\n" in buf:
        line, buf = buf.split(b"\\n", 1)
        out.write("%%.3f %%s\\n" %% (time.time(), line.decode()))
""" % COUNTER_PORT


class TenantCounter:
    """A process of the tenant that must survive whatever the scenario
    does to its server: a bash loop (the tenant image has no netcat) that
    writes its count over one TCP connection to the peer every 200 ms; the
    peer records each line with its arrival time."""

    def __init__(self, peer):
        self.peer = peer
        self.pid = None

    def start(self, server):
        """Starts the recorder on the peer and the counter on `server`;
        returns whether the peer records counts."""
        self.peer.run(f"cat > /tmp/recorder.py <<'EOF'\n{RECORDER}\nEOF\n"
                      "(python3 /tmp/recorder.py > /tmp/recorder.err 2>&1 &)")
        # Python starts slowly from the 9p root under TCG: connect once it
        # listens.
        if not wait_for(lambda: f":{COUNTER_PORT} " in self.peer.run("ss -Hltn")[1], timeout=60):
            return False
        server.run(f"cat > /root/counter.sh <<'EOF'\n"
                   f"exec 3<>/dev/tcp/{rack.PEER_IP}/{COUNTER_PORT} || exit 1\n"
                   "i=0\nwhile :; do i=$((i+1)); echo $i >&3 || exit 1; sleep 0.2; done\nEOF\n"
                   "(setsid bash /root/counter.sh > /dev/null 2>&1 &); sleep 1")
        ok = self.counting()
        self.pid = self.process(server)
        return ok

    @staticmethod
    def process(server):
        """The counter's PID(s) on `server`."""
        return server.run("pgrep -f counter.sh", check=False)[1].split()

    def counted(self):
        """The peer's last recorded count (0 before the first)."""
        _, out = self.peer.run("tail -n 1 /tmp/counter.log 2>/dev/null", check=False)
        fields = out.split()
        return int(fields[1]) if len(fields) == 2 else 0

    def counting(self, timeout=30):
        """Waits until the peer records a new count; returns whether it did."""
        before = self.counted()
        return wait_for(lambda: self.counted() > before, timeout=timeout, interval=0.5)


def expect_resets(n=1):
    """Declares `n` device resets the running scenario provokes."""
    global _expected_resets
    _expected_resets += n


def timed(case):
    """`case`, printing how long it took as a KTAP comment: where a
    scenario's time goes."""
    @functools.wraps(case)
    def run(*args):
        t0 = time.monotonic()
        try:
            return case(*args)
        finally:
            print(f"# {case.__name__} took {time.monotonic() - t0:.1f} s", flush=True)
    return run


def run_in_rack(name, start, cases):
    """Boots a rack with `start(rack)`, which returns the arguments of the
    test cases, and runs `cases` on it with the kernel's ksft_run (KTAP),
    then a last case that fails on any kernel splat in any VM's console.
    A rack that fails to come up is reported in one line, its logs kept."""
    from lib.py import ksft, ksft_exit, ksft_run, KsftFailEx
    try:
        with rack.Rack(name) as r:
            t0 = time.monotonic()
            args = start(r)
            print(f"# {name}: rack up in {time.monotonic() - t0:.0f} s", flush=True)

            def consoles_are_clean(*_):
                splats = r.console_splats()
                for role, line in splats[:20]:
                    print(f"# {role} console: {line}")
                if splats:
                    raise KsftFailEx(f"{len(splats)} splat lines in the VM consoles")
                resets = r.console_lines(RESET_LINE)
                for role, line in resets[:10]:
                    print(f"# {role} console: {line}")
                if len(resets) > _expected_resets:
                    raise KsftFailEx(f"{len(resets)} device resets, {_expected_resets} expected")

            ksft_run([timed(c) for c in cases] + [consoles_are_clean], args=args)
            if not ksft.KSFT_RESULT_ALL:
                r.failed = True
    except rack.RackError as e:
        print(f"# {name}: rack failed: {e}")
        print("TAP version 13\n1..1\nnot ok 1 " + f"{name}.rack_up")
        raise SystemExit(1)
    ksft_exit()
