#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""`make check`: every test of the project, in stages, with one summary line.

Stages: setup (packages, toolchain, kernel source, QEMU, the Python
venv), wire, model and rmed (fmt, clippy, cargo test; the Python reader
of the wire constants; the RME daemon's OpenFlow codec and agent against
os-ken), kernel (the rack kernel), modules (clippy build, no warnings,
rustfmt), kunit (each module's suite in the rack), selftests (rack
scenarios, KTAP), debug (the server and RME VMs on the debug kernel:
KASAN, lockdep, ...; KUnit and the scenarios in DEBUG_SCENARIOS with their
loops and durations scaled by DEBUG_SCALE, after the selftests), fuzz
(each target for BMGNIC_FUZZ_SECONDS, beside the debug pass at idle
priority). QEMU builds in the background from the end of the packages
step, both kernels from the end of the kernel source step. Every VM
console is scanned for splats in every scenario. Every case is counted;
the last line is "N passed, N failed" and the exit status is non-zero on
any failure. A stage that fails says so by name; the stages that need it
are counted as failed.

    check.py           everything (make check)
    check.py --debug   set-up, kernels and modules, then every scenario on
                       the debug kernel, unscaled (make check-debug)
"""

import concurrent.futures
import glob
import os
import re
import signal
import subprocess
import sys
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.environ.get("BMGNIC_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "bmgnic")
ENV = dict(os.environ, BMGNIC_CACHE=CACHE,
           CARGO_TARGET_DIR=os.environ.get("CARGO_TARGET_DIR") or os.path.join(CACHE, "cargo-target"),
           LIBCLANG_PATH=os.environ.get("LIBCLANG_PATH") or "/usr/lib/llvm-19/lib",
           PATH=os.path.expanduser("~/.cargo/bin") + ":" + os.environ.get("PATH", ""),
           PYTHONUNBUFFERED="1")

passed = 0
failed = 0
failures = []
# Process groups of the stages running now (the debug pass runs beside
# the others), killed if make check is.
running = set()


def record(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        failures.append(name)
    print(f"{'ok' if ok else 'not ok'} - {name}{(' # ' + detail) if detail else ''}", flush=True)


def run(stage, cmd, timeout, cwd=TOP, echo=True, env=None, idle=False):
    """Runs cmd in its own process group (under SCHED_IDLE with idle=True,
    as Background does); returns (rc, output)."""
    print(f"[{stage}] $ {' '.join(cmd)}{' (idle priority)' if idle else ''}", flush=True)
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=cwd, env=dict(ENV, **(env or {})), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=Background._idle if idle else None)
    running.add(proc.pid)
    lines = []
    try:
        deadline = start + timeout
        for line in proc.stdout:
            lines.append(line)
            if echo:
                print(f"[{stage}] {line}", end="", flush=True)
            if time.time() > deadline:
                raise subprocess.TimeoutExpired(cmd, timeout)
        proc.wait(max(1, deadline - time.time()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        lines.append(f"timed out after {timeout}s\n")
        print(f"[{stage}] timed out after {timeout}s", flush=True)
        return 124, "".join(lines)
    finally:
        # Nothing a stage started may outlive it.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        running.discard(proc.pid)
    print(f"[{stage}] exit {proc.returncode} in {time.time() - start:.0f}s", flush=True)
    return proc.returncode, "".join(lines)


class Background:
    """A build that runs beside the foreground stages: its output goes to a
    file and is printed, with its stage's prefix, when the stage that needs
    it waits for it. With idle=True it runs under SCHED_IDLE and nice 19, and so
    does its session's autogroup, so it only takes CPU time the rack's VMs leave unused (on two cores the
    scenarios use about 1.2 of them) and never slows a foreground stage."""

    def __init__(self, stage, cmd, timeout, idle=False):
        self.stage, self.cmd, self.timeout = stage, cmd, timeout
        self.start = time.time()
        os.makedirs(CACHE, exist_ok=True)
        self.log = open(os.path.join(CACHE, f".background-{stage}.log"), "w+")
        print(f"[{stage}] $ {' '.join(cmd)} (in the background{', idle priority' if idle else ''})",
              flush=True)
        self.proc = subprocess.Popen(cmd, cwd=TOP, env=ENV, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True,
                                     preexec_fn=Background._idle if idle else None)

    @staticmethod
    def _idle():
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        os.nice(19)
        # The job has a session of its own, so with CONFIG_SCHED_AUTOGROUP
        # it is a group of its own, which the scheduler weighs against the
        # other stages' groups whatever its tasks' policy: the group's
        # nice is what keeps it out of their way.
        try:
            with open("/proc/self/autogroup", "w") as f:
                f.write("19")
        except OSError:
            pass

    def wait(self):
        """Waits for the job; returns (rc, output) as run() does."""
        waited = time.time()
        try:
            self.proc.wait(max(1, self.start + self.timeout - time.time()))
            rc = self.proc.returncode
        except subprocess.TimeoutExpired:
            rc = 124
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.seek(0)
        out = self.log.read()
        self.log.close()
        for line in out.splitlines():
            print(f"[{self.stage}] {line}", flush=True)
        if rc == 124:
            print(f"[{self.stage}] timed out after {self.timeout}s", flush=True)
            out += f"timed out after {self.timeout}s\n"
        print(f"[{self.stage}] exit {rc} after {time.time() - self.start:.0f}s in the background, "
              f"{time.time() - waited:.0f}s of them waited for", flush=True)
        return rc, out

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def series_rust_files(source):
    """The Rust files of `source`, the kernel tree the build used, that the
    kernel-crate series (rust/patches) adds or changes."""
    files = set()
    for patch in glob.glob(os.path.join(TOP, "rust/patches/*.patch")):
        with open(patch) as f:
            files.update(m.group(1) for m in re.finditer(r"^\+\+\+ b/(\S+\.rs)$", f.read(), re.M))
    return [os.path.join(source, f) for f in sorted(files)]


def stage_failed(stage, why):
    print(f"make check: stage '{stage}' failed: {why}", flush=True)


def count_ktap(stage, prefix, out, rc):
    """Counts top-level KTAP results; a run that crashed counts as failed."""
    results = re.findall(r"^(ok|not ok) \d+ (.*?)(?: # (SKIP.*))?$", out, re.M)
    for status, name, skip in results:
        record(f"{prefix}: {name}", status == "ok", skip or "")
    if rc != 0 and not any(s == "not ok" for s, _, _ in results):
        record(f"{prefix}: completed", False, f"exit {rc}")
        stage_failed(stage, f"{prefix} exited {rc}")
    elif any(s == "not ok" for s, _, _ in results):
        stage_failed(stage, f"{prefix} has failing cases")


def fuzz_stage(idle):
    """Coverage-guided fuzzing of everything that parses input, each target
    for BMGNIC_FUZZ_SECONDS, the corpus kept in the cache between runs.
    Returns [(case, ok, detail)] for record(): it may run in a thread beside
    the debug pass (idle=True, under SCHED_IDLE: it takes only the CPU time
    that pass's guests leave unused)."""
    fuzz_secs = int(os.environ.get("BMGNIC_FUZZ_SECONDS", "20"))
    artifacts = os.path.join(CACHE, "fuzz-artifacts")
    os.makedirs(artifacts, exist_ok=True)
    fuzz_env = {"CARGO_TARGET_DIR": os.path.join(CACHE, "cargo-fuzz-target")}
    targets = (("qemu/fuzz", "ncsi_frame"), ("qemu/fuzz", "packet_pipeline"),
               ("qemu/fuzz", "descriptors"), ("qemu/fuzz", "tx_offload"),
               ("qemu/fuzz", "platform_channel"),
               ("qemu/fuzz", "checkpoint_disk"), ("rme/daemon/fuzz", "openflow_message"))

    def fuzz(fuzz_dir, target):
        corpus = os.path.join(CACHE, "fuzz-corpus", target)
        os.makedirs(corpus, exist_ok=True)
        return run("fuzz", ["cargo", "fuzz", "run", "-s", "none", target, corpus, "--",
                            f"-max_total_time={fuzz_secs}", "-print_final_stats=1",
                            f"-artifact_prefix={artifacts}/{target}-"],
                   600 + fuzz_secs, cwd=os.path.join(TOP, fuzz_dir), echo=False, env=fuzz_env,
                   idle=idle)

    # One libFuzzer process per core (their builds take cargo's lock in turn).
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        outcomes = list(pool.map(lambda t: fuzz(*t), targets))
    cases = []
    for (fuzz_dir, target), (rc, out) in zip(targets, outcomes):
        runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", out)
        detail = f"{int(runs.group(1))} executions in {fuzz_secs}s, no crash" if runs and rc == 0 \
            else f"exit {rc}; crash inputs in {artifacts}"
        if rc != 0:
            print("\n".join(out.splitlines()[-30:]))
            stage_failed("fuzz", f"{target}: {detail}")
        cases.append((f"fuzz: {target}", rc == 0, detail))
    return cases


# The debug pass of `make check`: the driver and BAR0 scenarios, with
# loop counts and durations at DEBUG_SCALE (bmgnic_env.scaled); their
# assertions are the same. The others (migration's tenant runs its image's
# kernel there anyway; rme_resilience, 13 minutes on the debug kernel) run
# on the debug kernel in `make check-debug`.
DEBUG_SCENARIOS = ("tenant_driver", "guest_bank_isolation")
DEBUG_SCALE = "0.1"


def debug_pass(scenarios, scale, build, beside=None):
    """Runs KUnit and `scenarios` with the server and RME VMs on the debug
    kernel (`build`: the Background job of scripts/build-debug-modules.sh),
    counting their cases with a "debug" prefix. It runs after the normal
    scenarios: beside them, its guests missed timing-bound checks. Once the
    debug kernel is built, `beside` is called: it may start idle-priority
    work that uses what this pass leaves of the CPU."""
    rc, out = build.wait()
    if beside:
        beside()
    record("debug: debug kernel (KASAN, lockdep, DEBUG_NET, DMA-API debug) and modules build", rc == 0)
    if rc != 0:
        stage_failed("debug", "the debug kernel or the modules against it did not build")
        return
    env = {"BMGNIC_KERNEL": "debug", "BMGNIC_SCALE": scale,
           "BMGNIC_DEBUG_MODULES": out.strip().splitlines()[-1]}
    rc, out = run("debug", [sys.executable, os.path.join(TOP, "tools/testing/kunit/bmgnic_kunit.py")],
                  20 * 60, env=env)
    count_ktap("debug", "debug kunit", out, rc)
    for name in scenarios:
        t = os.path.join(TOP, "tools/testing/selftests/drivers/net/bmgnic", name + ".py")
        rc, out = run("debug", [sys.executable, t], 30 * 60, env=env)
        count_ktap("debug", f"debug {name}", out, rc)


def all_scenarios():
    tests = sorted(glob.glob(os.path.join(TOP, "tools/testing/selftests/drivers/net/bmgnic/*.py")))
    return [os.path.basename(t)[:-3] for t in tests if os.access(t, os.X_OK)]


def main():
    builds = []
    # A CI timeout terminates make check: the background builds go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        check(builds)
    finally:
        for job in builds:
            job.stop()
        for pgid in list(running):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def check(builds):
    t0 = time.time()
    debug_only = "--debug" in sys.argv[1:]
    # Set-up in three steps, each build starting as soon as what it needs
    # is there, so that it runs while set-up waits on the network: QEMU
    # after the packages; the rack kernel (normal priority: each cargo
    # stage has serial stretches it fills) and the debug kernel (idle
    # priority: it mostly runs while the rack's scenarios leave a core
    # unused) after the toolchain and the kernel source.
    setup = os.path.join(TOP, "scripts/setup.sh")
    ok_setup = run("setup", [setup, "packages"], 30 * 60)[0] == 0
    if ok_setup:
        qemu_build = Background("qemu", [os.path.join(TOP, "scripts/build-qemu.sh")], 45 * 60)
        builds.append(qemu_build)
        ok_setup = run("setup", [setup, "rust", "kernel-source"], 30 * 60)[0] == 0
    if ok_setup:
        kernel_build = Background("kernel", [os.path.join(TOP, "scripts/build-kernel.sh")], 60 * 60)
        debug_build = Background("debug", [os.path.join(TOP, "scripts/build-debug-modules.sh")],
                                 150 * 60, idle=True)
        builds += [kernel_build, debug_build]
        ok_setup = run("setup", [setup, "python"], 20 * 60)[0] == 0
    record("setup: packages, Rust toolchain, kernel source, Python peers", ok_setup)
    if not ok_setup:
        stage_failed("setup", "see [setup] lines above")

    # The wire formats and the device model: ordinary Rust crates.
    model = os.path.join(TOP, "qemu")
    if ok_setup and not debug_only:
        rmed = os.path.join(TOP, "rme/daemon")
        for crate, path in (("wire", os.path.join(TOP, "wire")), ("model", model), ("rmed", rmed),
                            ("cleanup", os.path.join(TOP, "rme/cleanup"))):
            rc, _ = run(crate, ["cargo", "fmt", "--check"], 300, cwd=path)
            record(f"{crate}: cargo fmt --check", rc == 0)
            rc, _ = run(crate, ["cargo", "clippy", "--locked", "--all-targets", "--", "-D", "warnings"],
                        1200, cwd=path)
            record(f"{crate}: cargo clippy -D warnings", rc == 0)
            rc, out = run(crate, ["cargo", "test", "--locked"], 1200, cwd=path)
            tests = re.findall(r"^test (\S+) \.\.\. (ok|FAILED|ignored)$", out, re.M)
            for name, status in tests:
                if status != "ignored":
                    record(f"{crate}: {name}", status == "ok")
            if rc != 0:
                stage_failed(crate, "cargo test failed")
                if not any(s == "FAILED" for _, s in tests):
                    record(f"{crate}: cargo test ran", False, f"exit {rc}")
        rc, _ = run("wire", [sys.executable, os.path.join(TOP, "tools/testing/wire.py")], 60)
        record("wire: the Python tests read the wire constants (tools/testing/wire.py)", rc == 0)

        # The daemon's OpenFlow codec against os-ken's, both directions,
        # and its agent (over an in-memory module) against os-ken as the
        # controller, then a hostile one.
        # The daemon itself, for the rack's openflow scenario.
        rc, _ = run("rmed", ["cargo", "build", "--release", "--locked"], 900, cwd=rmed)
        record("rmed: bmgnic-rmed builds (release)", rc == 0)
        rc, out = run("rmed", ["cargo", "build", "--locked", "--examples"], 600, cwd=rmed)
        venv = run("rmed", [os.path.join(TOP, "scripts/setup.sh"), "python"], 600, echo=False)[1]
        python = os.path.join(venv.strip().splitlines()[-1], "bin/python")
        examples = os.path.join(ENV["CARGO_TARGET_DIR"], "debug/examples")
        record("rmed: examples build", rc == 0)
        if rc == 0:
            rc, out = run("rmed", [python, os.path.join(TOP, "tools/testing/openflow/interop.py"),
                                   os.path.join(examples, "ofcodec")], 300)
            count_ktap("rmed", "rmed: os-ken interop", out, rc)
            rc, out = run("rmed", [python, os.path.join(TOP, "tools/testing/openflow/agent_live.py"),
                                   python, os.path.join(examples, "memory_agent")], 400)
            count_ktap("rmed", "rmed: agent with os-ken", out, rc)
            # The Redfish service (over an in-memory platform) with sushy
            # as Ironic drives it, then DMTF's protocol validator.
            rc, out = run("redfish", [python, os.path.join(TOP, "tools/testing/redfish/host.py"),
                                      os.path.join(examples, "redfish_memory")], 900)
            count_ktap("redfish", "rmed: redfish with sushy and the validator", out, rc)

    # Kernel and modules.
    ok_kernel = False
    if ok_setup:
        rc, out = kernel_build.wait()
        ok_kernel = rc == 0
        if not ok_kernel:
            stage_failed("kernel", "the rack kernel did not build")
    record("kernel: rack kernel builds (Rust, KUnit, 9p, VXLAN, NC-SI)", ok_kernel)

    ok_modules = False
    if ok_kernel:
        kdir = out.strip().splitlines()[-1]
        run("modules", ["make", "-C", kdir, f"M={TOP}", "clean"], 300, echo=False)
        rc, out = run("modules", ["make", "-C", kdir, f"M={TOP}", "CLIPPY=1", "modules"], 20 * 60)
        warnings = [l for l in out.splitlines() if re.search(r"\bwarning\b", l)]
        ok_modules = rc == 0 and not warnings
        record("modules: bmgnic.ko and bmgnic_rme.ko build with CLIPPY=1, no warnings", ok_modules,
               f"{len(warnings)} warnings" if warnings else "")
        if not ok_modules:
            stage_failed("modules", "build failed or warned")
        sources = sorted(glob.glob(os.path.join(TOP, "drivers/**/*.rs"), recursive=True)
                         + glob.glob(os.path.join(TOP, "wire/src/*.rs"))
                         + glob.glob(os.path.join(TOP, "rme/**/*.rs"), recursive=True)
                         + series_rust_files(os.path.realpath(os.path.join(kdir, "source"))))
        rc, _ = run("modules", [os.path.join(TOP, "tools/testing/netlink_spec.sh"),
                                os.path.realpath(os.path.join(kdir, "source"))], 300)
        record("modules: netlink spec generates with the kernel's ynl_gen_c", rc == 0)
        rustfmt_conf = os.path.join(kdir, "source", ".rustfmt.toml")
        rc, _ = run("modules", ["rustfmt", "--check", "--edition=2021",
                                f"--config-path={rustfmt_conf}", *sources], 120)
        record("modules: kernel-side Rust is rustfmt clean", rc == 0)
    else:
        record("modules: build", False, "kernel stage failed")

    # In the rack.
    if ok_setup:
        rc, _ = qemu_build.wait()
        record("setup: QEMU with vfio-user-pci", rc == 0)
        if rc != 0:
            stage_failed("setup", "QEMU did not build")
            ok_modules = False
    # The fuzzers run beside the debug pass, at idle priority: until the
    # debug kernel is built they would only take CPU time from it. Without
    # a debug pass they run on their own at the end.
    fuzzing = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    fuzz_job = None

    def start_fuzz():
        nonlocal fuzz_job
        fuzz_job = fuzzing.submit(fuzz_stage, True)

    if ok_modules and debug_only:
        debug_pass(all_scenarios(), "1", debug_build)
    elif ok_modules:
        rc, out = run("kunit", [sys.executable, os.path.join(TOP, "tools/testing/kunit/bmgnic_kunit.py")],
                      15 * 60)
        count_ktap("kunit", "kunit", out, rc)
        tests = sorted(glob.glob(os.path.join(TOP, "tools/testing/selftests/drivers/net/bmgnic/*.py")))
        for t in tests:
            if not os.access(t, os.X_OK):
                continue
            name = os.path.basename(t)[:-3]
            rc, out = run("selftests", [sys.executable, t], 20 * 60)
            count_ktap("selftests", name, out, rc)
        # Its kernel was built in the background meanwhile.
        debug_pass(DEBUG_SCENARIOS, DEBUG_SCALE, debug_build, beside=start_fuzz)
    else:
        record("kunit and selftests: run in the rack", False, "modules stage failed")
    if ok_setup and not debug_only:
        for case in fuzz_job.result() if fuzz_job else fuzz_stage(False):
            record(*case)
    fuzzing.shutdown()

    print(f"# make check took {time.time() - t0:.0f}s")
    if failures:
        print("# failed: " + "; ".join(failures))
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
