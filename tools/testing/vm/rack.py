# SPDX-License-Identifier: GPL-2.0
"""The bmgnic test rack: device models and QEMU VMs, started and stopped here.

    [server VM + bmgnic.ko] ==vfio-user== [bmgnic-model] --fabric-- [peer VM]
                                               |
                                             NC-SI
                                               |
                                   [RME VM + bmgnic_rme.ko]

Every VM boots the one rack kernel with the host's root file system shared
read-only over virtio-9p (so the host's ip, ethtool, iperf3, tcpdump and
the freshly built modules are there), a writable shared directory at
/tmp/rack, and an agent console the host drives with VM.run().

Everything a Rack starts is stopped when it closes. Its log directory
(model logs, each VM's console, command transcripts) is removed after a
clean run and kept, with its path printed, when anything failed.

With BMGNIC_KERNEL=debug the server and RME VMs boot the debug rack kernel
(KASAN, lockdep, ...; scripts/build-kernel.sh --debug) and load the modules
built against it; peers keep the normal kernel. Every VM's console is
scanned for kernel splats (console_splats()), whatever the kernel.
BMGNIC_SCALE (default 1) scales the loop counts and durations of the
scenarios that have them (scaled()), never their assertions.
"""

import base64
import functools
import http.server
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
# The roles that boot the debug kernel when BMGNIC_KERNEL=debug.
DEBUG_ROLES = ("server", "rme")


def debug_kernel():
    """Whether the server and RME VMs boot the debug kernel."""
    kind = os.environ.get("BMGNIC_KERNEL", "rack")
    if kind not in ("rack", "debug"):
        raise RackError(f"BMGNIC_KERNEL={kind}: want rack or debug")
    return kind == "debug"


def scaled(n, minimum=1):
    """`n` loops or seconds, scaled by BMGNIC_SCALE (the debug pass runs
    the slow scenarios shorter; their assertions stay)."""
    scale = float(os.environ.get("BMGNIC_SCALE", "1"))
    return max(minimum, int(math.ceil(n * scale)))


# How long a VM may take from power-on to its agent's first answer. A
# debug kernel under TCG reaches init in about two minutes, later when
# another rack shares the CPUs, then runs init over 9p with every check on.
BOOT_TIMEOUT = 600 if debug_kernel() else 180
# How long a command in a VM may take unless its caller says otherwise:
# right after boot, a debug-kernel guest may still be running the boot
# probes that wait_ready sent before its first answer.
COMMAND_TIMEOUT = 360 if debug_kernel() else 120
# How often wait_ready probes a booting VM's agent, in seconds.
PROBE_INTERVAL = 5

# The modules as the VMs load them: from the shared checkout, or with the
# debug kernel from the rack's shared directory (/tmp/rack in the VMs),
# where each Rack copies the ones built against it.
if debug_kernel():
    MODULES = ("/tmp/rack/modules/bmgnic.ko", "/tmp/rack/modules/bmgnic_rme.ko")
else:
    MODULES = (os.path.join(TOP, "drivers/bmgnic/bmgnic.ko"),
               os.path.join(TOP, "rme/bmgnic_rme.ko"))

# What no console may show: KASAN, lockdep, WARN, BUG, oopses, stalls,
# hung tasks, DMA-API misuse, malformed skbs, leaked device references.
SPLATS = re.compile("|".join([
    r"BUG: ", r"WARNING: ", r"Oops", r"general protection fault", r"kernel BUG",
    r"UBSAN: ", r"possible circular locking", r"inconsistent lock state",
    r"possible recursive locking", r"suspicious RCU usage", r"lock held when returning",
    r"sleeping function called from invalid context", r"scheduling while atomic",
    r"protocol [0-9a-f]+ is buggy", r"waiting for \S+ to become free",
    r"soft lockup", r"hard LOCKUP", r"blocked for more than \d+ seconds", r"rcu_sched self-detected stall",
    r"rcu: INFO: rcu_\w+ detected stalls", r"DMA-API: .*(device driver|failed to)", r"list_add corruption",
    r"list_del corruption", r"refcount_t: ", r"Kernel panic",
]))


# The kernel starts PID 1: from here on, everything on the console counts.
INIT_STARTED = re.compile(r"Run \S+ as init process")


def debug_modules_dir():
    """The modules built against the debug kernel (built on first use)."""
    return os.environ.get("BMGNIC_DEBUG_MODULES") or _script("build-debug-modules.sh")


class RackError(Exception):
    """A rack component failed; the message names it."""


def _cache():
    return os.environ.get("BMGNIC_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "bmgnic")


def _script(name, *args):
    env = dict(os.environ, BMGNIC_CACHE=_cache())
    out = subprocess.run([os.path.join(TOP, "scripts", name), *args], env=env,
                         stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise RackError(f"scripts/{name} failed")
    return out.stdout.strip().splitlines()[-1]


def kernel_build_dir():
    """The rack kernel's build directory (built on first use)."""
    return os.environ.get("BMGNIC_KDIR") or _script("build-kernel.sh")


def debug_kernel_build_dir():
    """The debug rack kernel's build directory (built on first use)."""
    return os.environ.get("BMGNIC_DEBUG_KDIR") or _script("build-kernel.sh", "--debug")


def qemu_binary():
    """A qemu-system-x86_64 with vfio-user-pci (built on first use)."""
    return os.environ.get("BMGNIC_QEMU") or _script("build-qemu.sh")


def model_binary():
    """The device model, built with cargo into the cache (BMGNIC_MODEL:
    another bmgnic-model binary, e.g. an older one to compare with)."""
    if os.environ.get("BMGNIC_MODEL"):
        return os.environ["BMGNIC_MODEL"]
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(_cache(), "cargo-target")
    env = dict(os.environ, CARGO_TARGET_DIR=target)
    out = subprocess.run(["cargo", "build", "--quiet", "--release", "--locked"],
                         cwd=os.path.join(TOP, "qemu"), env=env)
    if out.returncode != 0:
        raise RackError("device model build failed (cargo build in qemu/)")
    return os.path.join(target, "release", "bmgnic-model")


def tenant_image():
    """The tenant OS image (scripts/build-tenant-image.sh): the rack kernel
    and its bmgnic.ko on a Debian root, booted by the firmware from the
    server's NVMe disk. Built on first use, cached by its inputs."""
    return _script("build-tenant-image.sh", kernel_build_dir(),
                   os.path.join(TOP, "drivers/bmgnic/bmgnic.ko"), f"{SERVER_IP}/24")


def provision_media(job):
    """The RME's install or erase medium (scripts/build-provision-image.sh),
    the install one carrying the tenant image."""
    args = ["build-provision-image.sh", job, kernel_build_dir()]
    if job == "install":
        args.append(tenant_image())
    return _script(*args)


def provision_netboot(job):
    """The directory a provisioner serves to boot the `job` system over
    the network: its kernel, initramfs and iPXE script (boot.ipxe), built
    with its medium."""
    return provision_media(job)[:-len(".iso")] + ".netboot"


def platform_binary():
    """bmgnic-platform, built with the model (same crate)."""
    if os.environ.get("BMGNIC_MODEL"):
        return os.path.join(os.path.dirname(os.environ["BMGNIC_MODEL"]), "bmgnic-platform")
    return os.path.join(os.path.dirname(model_binary()), "bmgnic-platform")


def rmectl(model, *commands):
    """Runs bmgnic-rmectl against `model`'s sideband, standing in for the
    RME; returns its output lines."""
    tool = os.path.join(os.path.dirname(model.rack.model), "bmgnic-rmectl")
    out = subprocess.run([tool, "--local", model.ncsi_remote, "--remote", model.ncsi_local,
                          *commands], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if out.returncode != 0:
        raise RackError(f"bmgnic-rmectl {' '.join(commands)}: {out.stdout.strip()}")
    return out.stdout.splitlines()


def accel_args():
    """TCG by default. BMGNIC_ACCEL=kvm opts into KVM after checking that
    /dev/kvm really opens (nested, software-only KVM hangs Linux guests on
    some hosts, so it is never assumed)."""
    accel = os.environ.get("BMGNIC_ACCEL", "tcg")
    if accel == "kvm":
        try:
            os.close(os.open("/dev/kvm", os.O_RDWR))
        except OSError as e:
            raise RackError(f"BMGNIC_ACCEL=kvm but /dev/kvm does not open: {e}")
        return ["-accel", "kvm", "-cpu", "host"]
    if accel != "tcg":
        raise RackError(f"BMGNIC_ACCEL={accel}: want tcg or kvm")
    return ["-accel", "tcg,thread=multi", "-cpu", "max"]


class Model:
    """One bmgnic-model process."""

    def __init__(self, rack, name, table_size=None, log_level="info", open_l2=False,
                 fabric_to=None, mac=None, aux_power=False):
        self.rack = rack
        self.name = name
        d = rack.sockdir
        self.socket = os.path.join(d, f"{name}.vfio")
        self.fabric_local = os.path.join(d, f"{name}.fabric")
        self.ncsi_local = os.path.join(d, f"{name}.ncsi")
        # The fabric port's far end: a VM's NIC, or (fabric_to) another
        # model's fabric port, as two servers cabled back to back.
        self.fabric_remote = (os.path.join(d, f"{fabric_to}.fabric") if fabric_to
                              else os.path.join(d, f"{name}.fabric-peer"))
        self.ncsi_remote = os.path.join(d, f"{name}.ncsi-peer")
        self.log = os.path.join(rack.logdir, f"model-{name}.log")
        args = [rack.model, "--socket", self.socket,
                "--fabric", f"local={self.fabric_local},remote={self.fabric_remote}",
                "--ncsi", f"local={self.ncsi_local},remote={self.ncsi_remote}",
                f"--log-level={log_level}"]
        if table_size:
            args.append(f"--table-size={table_size}")
        if mac:
            args.append(f"--mac={mac}")
        if aux_power:
            # The NIC outlives its server's power cycles (a platform's server).
            args.append("--aux-power")
        if open_l2:
            # For use without an RME: no anti-spoofing, and frames pass as
            # plain L2 (table misses allowed) until an RME sets an identity.
            args.append("--open")
        self.args = args
        self._spawn("w")

    def _spawn(self, mode):
        self.proc = subprocess.Popen(self.args, stdout=open(self.log, mode),
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RackError(f"model {self.name} did not start (log: {self.log})")
            time.sleep(0.05)

    def restart(self):
        """Kills the model and starts a new one on the same sockets: a NIC
        reset or replaced, with none of its state. (QEMU's vfio-user link
        to the old process does not come back.)"""
        self.proc.kill()
        self.proc.wait()
        for path in (self.socket, self.fabric_local, self.ncsi_local):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        with open(self.log, "a") as f:
            f.write("--- model restarted ---\n")
        self._spawn("a")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# The RME VM's management network (user-mode, this machine only): the
# OpenFlow controller's port, and the Redfish service's.
MGMT_NET, MGMT_GUEST_IP, MGMT_GUEST_PORT = "10.0.2.0/24", "10.0.2.15", 6653
REDFISH_GUEST_PORT = 8443
# The provisioning network's image server (Ironic's conductor serves its
# deploy images so), as the RME's management network reaches it: port 80
# of this address is relayed to a server on the host's loopback.
IMAGE_SERVER_IP = "10.0.2.100"
# The platform channel's name in the RME VM (/dev/virtio-ports/...).
PLATFORM_PORT_NAME = "org.bmgnic.platform.0"


class AgentTimeout(RackError):
    """A VM's agent did not answer in time."""


class Platform:
    """Where a platform VM's board is: its channel socket, its QMP socket,
    its disk, media directory and provisioning network's boot directory
    (bmgnic-platform, Documentation/bmgnic/platform.rst)."""

    def __init__(self, rack, role, disk=None, media_dir=None, power_on=True,
                 checkpoint_dir=None, netboot_dir=None):
        self.power_on = power_on
        self.channel = os.path.join(rack.sockdir, f"{role}.platform")
        self.qmp = os.path.join(rack.sockdir, f"{role}.qmp")
        # The tenant's qemu-ga, which the board asks to hibernate.
        self.guest_agent = os.path.join(rack.sockdir, f"{role}.qga")
        self.log = os.path.join(rack.logdir, f"{role}-platform.log")
        self.disk, self.media_dir = disk, media_dir
        # Provider storage, shared by the boards a tenant moves between.
        self.checkpoint_dir = checkpoint_dir
        # What the provisioner serves a Pxe boot (TFTP).
        self.netboot_dir = netboot_dir

    def request(self, op, timeout=30, **args):
        """One request on the channel, as the RME would send it (for the
        host's own checks); returns the answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.channel)
            s.sendall((json.dumps({"id": 1, "op": op, **args}) + "\n").encode())
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    raise RackError("platform channel closed")
                buf += chunk
        return json.loads(buf)


class VM:
    """One QEMU VM with an agent console."""

    def __init__(self, rack, role, memory=512, cpus=1, model=None, nics=(),
                 cmdline="", mgmt_port=None, redfish_port=None, platform=None,
                 platform_channel=None, more_models=(), image_server=None):
        self.rack = rack
        self.role = role
        self.console = os.path.join(rack.logdir, f"{role}-console.log")
        # There before the VM runs (a board may start with the power off).
        open(self.console, "a").close()
        self.transcript = open(os.path.join(rack.logdir, f"{role}-commands.log"), "w")
        self.agent_path = os.path.join(rack.sockdir, f"{role}.agent")
        self.seq = 0
        args = [rack.qemu, "-name", role, "-nodefaults", "-no-user-config",
                "-display", "none", "-vga", "none", "-m", str(memory),
                "-smp", str(cpus), *accel_args(),
                "-no-reboot",
                # Appended to: a platform's server boots many times.
                "-chardev", f"file,id=serial,path={self.console},append=on",
                "-serial", "chardev:serial",
                "-chardev", f"socket,id=agent,path={self.agent_path},server=on,wait=off"]
        if platform is None or platform.disk is None:
            args += ["-device", "virtio-serial-pci", "-device", "virtconsole,chardev=agent"]
            args += self._direct_boot(rack, role, cmdline)
        else:
            # The tenant image's agent is on its second UART (ttyS1), which
            # survives a hibernation restore (tools/testing/vm/tenant-init.sh).
            args += ["-device", "isa-serial,chardev=agent,index=1"]
        # else: the firmware boots the board's disk (or its virtual CD): no
        # kernel from the host, no host directory shared in.
        if model is not None:
            # The model does DMA straight into guest RAM: share it.
            args += ["-object", f"memory-backend-memfd,id=mem,size={memory}M,share=on",
                     "-machine", "q35,memory-backend=mem"]
            # Each behind a root port, as a server's NICs sit in slots;
            # `more_models` in the slots after `model`'s.
            for i, m in enumerate([model, *more_models]):
                port = "nicport" if i == 0 else f"nicport{i}"
                args += ["-device", f"pcie-root-port,id={port},chassis=1,slot={i + 1}",
                         "-device", '{"driver":"vfio-user-pci","bus":"' + port + '","socket":'
                         f'{{"path":"{m.socket}","type":"unix"}}}}']
        else:
            args += ["-machine", "q35"]
        for i, (local, remote) in enumerate(nics):
            args += ["-netdev", f"dgram,id=n{i},local.type=unix,local.path={local},"
                     f"remote.type=unix,remote.path={remote}",
                     "-device", f"virtio-net-pci,netdev=n{i},romfile=,"
                     f"mac=52:54:00:00:{len(rack.vms):02x}:{i:02x}"]
        if mgmt_port is not None or redfish_port is not None or image_server is not None:
            # The RME's management NIC (paper Fig. 3): user-mode networking
            # that reaches nothing (restrict=on), but the host's loopback
            # port `mgmt_port` forwarded to the guest's MGMT_GUEST_PORT,
            # where an OpenFlow controller on this machine connects, and
            # `redfish_port` to the Redfish service; and, the other way,
            # IMAGE_SERVER_IP:80 relayed (socat, one per connection) to the
            # host's loopback port `image_server`.
            forwards = ""
            if image_server is not None:
                forwards += (f",guestfwd=tcp:{IMAGE_SERVER_IP}:80-"
                             f"cmd:socat - TCP:127.0.0.1:{image_server}")
            if mgmt_port is not None:
                forwards += (f",hostfwd=tcp:127.0.0.1:{mgmt_port}-"
                             f"{MGMT_GUEST_IP}:{MGMT_GUEST_PORT}")
            if redfish_port is not None:
                forwards += (f",hostfwd=tcp:127.0.0.1:{redfish_port}-"
                             f"{MGMT_GUEST_IP}:{REDFISH_GUEST_PORT}")
            args += ["-netdev", f"user,id=mgmt,restrict=on,net={MGMT_NET}{forwards}",
                     "-device", f"virtio-net-pci,netdev=mgmt,romfile=,"
                     f"mac=52:54:00:00:{len(rack.vms):02x}:fe"]
        if platform_channel is not None:
            # The BMC's wires to its board (an RME VM).
            args += ["-chardev", f"socket,id=platform,path={platform_channel},reconnect-ms=500",
                     "-device", f"virtserialport,chardev=platform,name={PLATFORM_PORT_NAME}"]
        self.platform = platform
        # A board's log has its QEMUs' output too.
        qemu_log = open(platform.log if platform is not None
                        else os.path.join(rack.logdir, f"{role}-qemu.log"), "w")
        if platform is not None:
            # The board owns this QEMU: it starts it, and starts it again.
            board = [rack.platform, "--channel", platform.channel, "--qmp", platform.qmp,
                     "--console", self.console] + (["--power-on"] if platform.power_on else [])
            if platform.disk:
                board += ["--disk", platform.disk, "--guest-agent", platform.guest_agent]
            if platform.checkpoint_dir:
                board += ["--checkpoint-dir", platform.checkpoint_dir]
            if platform.media_dir:
                board += ["--media-dir", platform.media_dir]
            if platform.netboot_dir:
                board += ["--netboot-dir", platform.netboot_dir]
            args = board + ["--"] + args
        with open(os.path.join(rack.logdir, f"{role}-qemu.cmdline"), "w") as f:
            f.write(" ".join(args) + "\n")
        self.proc = subprocess.Popen(args, stdout=qemu_log, stderr=subprocess.STDOUT)
        self.sock = None
        self.buf = bytearray()
        if platform is not None and not platform.power_on:
            # The board is off: reconnect() once something powers it on.
            deadline = time.time() + 10
            while not os.path.exists(platform.channel):
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RackError(f"{role}: the board did not start ({platform.log})")
                time.sleep(0.05)
            return
        # Connect at once: what the guest writes while no one is connected
        # is lost. (What the host writes waits until the guest reads.)
        self._connect(30)

    @staticmethod
    def _direct_boot(rack, role, cmdline):
        """QEMU loads the rack kernel, whose root file system is the
        host's, read-only over 9p, with the checkout and the rack's shared
        directory beside it."""
        return ["-kernel", rack.kernel_for(role),
                "-append", " ".join([
                    "console=ttyS0", "earlyprintk=serial,ttyS0", "panic=-1",
                    "root=/dev/root", "rootfstype=9p",
                    "rootflags=trans=virtio,version=9p2000.L,msize=262144,cache=loose",
                    "ro", f"init={os.path.join(TOP, 'tools/testing/vm/init.sh')}",
                    f"bmgnic.role={role}", f"bmgnic.top={TOP}",
                    "kunit.filter_glob=bmgnic*", cmdline]),
                "-fsdev", "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
                "-device", "virtio-9p-pci,fsdev=root,mount_tag=/dev/root",
                "-fsdev", f"local,id=top,path={TOP},security_model=none,readonly=on",
                "-device", "virtio-9p-pci,fsdev=top,mount_tag=top",
                "-fsdev", f"local,id=rack,path={rack.shared},security_model=none",
                "-device", "virtio-9p-pci,fsdev=rack,mount_tag=rack"]

    def _connect(self, timeout):
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RackError(f"{self.role} VM: QEMU exited "
                                f"(log: {self.rack.logdir}/{self.role}-qemu.log)")
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.agent_path)
                self.sock = s
                return
            except OSError:
                if time.time() > deadline:
                    raise RackError(f"{self.role} VM: no agent socket")
                time.sleep(0.1)

    def _read_until(self, marker, timeout):
        """Reads until `marker` (bytes, or a compiled pattern); returns
        what came before it and keeps what came after. A bytes marker is
        looked for only in what arrived since the last look, so that a
        command's long output costs time linear in its length."""
        deadline = time.time() + timeout
        start = 0
        while True:
            if isinstance(marker, bytes):
                at = self.buf.find(marker, start)
                if at >= 0:
                    end = at + len(marker)
                    break
                start = max(0, len(self.buf) - len(marker) + 1)
            elif (found := marker.search(self.buf)) is not None:
                at, end = found.span()
                break
            left = deadline - time.time()
            if left <= 0:
                raise AgentTimeout(f"{self.role} VM: timed out after {timeout}s "
                                   f"(console: {self.console})")
            if self.proc.poll() is not None:
                raise RackError(f"{self.role} VM: QEMU exited (console: {self.console})")
            self.sock.settimeout(min(left, 1.0))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise RackError(f"{self.role} VM: agent closed (console: {self.console})")
            self.buf += chunk
        head = bytes(self.buf[:at])
        del self.buf[:end]
        return head

    def reconnect(self, timeout=None):
        """After the board powered this VM on again: a new QEMU, a new
        agent console. Waits until its agent answers."""
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buf = None, bytearray()
        self._connect(60)
        self.wait_ready(timeout)

    def wait_ready(self, timeout=None):
        """Waits until the VM's agent answers a first command. The command
        is sent again every few seconds: the first ones can be lost before
        the agent reads its tty (a UART's FIFO is reset when the agent opens
        it; after a hibernation, the boot kernel reads the console before it
        restores the image). The answer to any of them will do: a slow guest
        (a debug kernel beside other racks) may take longer than the interval
        to answer one, and would never catch up with the newest. The
        interval stays short: a probe sent while the FIFO is still to be
        reset is lost, and a longer wait for the next one is added to
        every boot. `timeout` defaults to BOOT_TIMEOUT."""
        timeout = timeout or BOOT_TIMEOUT
        deadline = time.time() + timeout
        sent = []
        while True:
            self.seq += 1
            sent.append(str(self.seq).encode())
            self.sock.sendall(sent[-1] + b" " + base64.b64encode(b"true") + b"\n")
            answered = re.compile(rb"\n@@END (?:" + b"|".join(sent) + rb") ")
            try:
                self._read_until(answered, max(1, min(PROBE_INTERVAL, deadline - time.time())))
                self._read_until(b"\n", 5)
                break
            except AgentTimeout:
                if time.time() > deadline:
                    raise AgentTimeout(f"{self.role} VM: the agent did not answer in {timeout}s "
                                       f"(console: {self.console})") from None
        self.transcript.write(f"# {self.role} ready\n")

    def run(self, command, timeout=None, check=True):
        """Runs a shell script in the VM; returns (rc, output). `timeout`
        defaults to COMMAND_TIMEOUT."""
        timeout = timeout or COMMAND_TIMEOUT
        self.seq += 1
        seq = str(self.seq).encode()
        line = seq + b" " + base64.b64encode(command.encode()) + b"\n"
        self.sock.sendall(line)
        self._read_until(b"@@BEGIN " + seq + b"\n", timeout)
        out = self._read_until(b"\n@@END " + seq + b" ", timeout)
        rc = int(self._read_until(b"\n", 5))
        text = out.decode(errors="replace")
        self.transcript.write(f"$ {command}\n{text}{'' if text.endswith(chr(10)) or not text else chr(10)}"
                              f"# rc={rc}\n")
        self.transcript.flush()
        if check and rc != 0:
            raise RackError(f"{self.role} VM: '{command}' exited {rc}: {text.strip()[-500:]}")
        return rc, text

    def stop(self):
        if self.platform is not None and self.proc.poll() is None:
            # The board cuts the power and goes.
            self.proc.send_signal(signal.SIGTERM)
        if self.proc.poll() is None:
            if self.sock is not None:
                try:
                    self.sock.sendall(b"poweroff\n")
                    self.sock.close()
                except OSError:
                    pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.transcript.close()


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    """A file server that does not log each request on stderr."""

    def log_message(self, *args):
        pass


class Rack:
    """A set of models and VMs that is stopped as a whole."""

    def __init__(self, name):
        self.name = name
        self.bzimage = os.path.join(kernel_build_dir(), "arch/x86/boot/bzImage")
        self.debug_bzimage = None
        if debug_kernel():
            self.debug_bzimage = os.path.join(debug_kernel_build_dir(), "arch/x86/boot/bzImage")
            modules = debug_modules_dir()
        self.qemu = qemu_binary()
        self.model = model_binary()
        self.platform = platform_binary()
        base = os.environ.get("BMGNIC_LOGDIR") or os.path.join(tempfile.gettempdir(), "bmgnic-logs")
        os.makedirs(base, exist_ok=True)
        self.logdir = tempfile.mkdtemp(prefix=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-", dir=base)
        # Unix socket paths must stay short.
        self.sockdir = tempfile.mkdtemp(prefix="bmgnic-")
        self.shared = os.path.join(self.logdir, "shared")
        os.makedirs(self.shared)
        if self.debug_bzimage:
            os.makedirs(os.path.join(self.shared, "modules"))
            for ko in ("drivers/bmgnic/bmgnic.ko", "rme/bmgnic_rme.ko"):
                shutil.copy(os.path.join(modules, ko), os.path.join(self.shared, "modules"))
        self.models = []
        self.vms = []
        self.image_servers = []
        self.failed = False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.failed = True
        self.close()
        return False

    def kernel_for(self, role):
        """The bzImage `role` boots."""
        # A rack's second server or RME ("rme2") is the same role.
        if self.debug_bzimage and role.rstrip("0123456789") in DEBUG_ROLES:
            return self.debug_bzimage
        return self.bzimage

    def console_lines(self, pattern, early=False):
        """Lines of every VM's console that match `pattern`, as (role,
        line): from the start of init on, or (`early`) only before it."""
        found = []
        for vm in self.vms:
            try:
                with open(vm.console, errors="replace") as f:
                    booted = False
                    for line in f:
                        booted = booted or INIT_STARTED.search(line) is not None
                        if booted != early and pattern.search(line):
                            found.append((vm.role, line.rstrip()))
            except OSError:
                continue
        return found

    def console_splats(self):
        """Lines of every VM's console that show a kernel splat once init
        runs, as (role, line). Splats in early boot, before any module or
        test could run, are printed as notes and not counted: the debug
        kernel under TCG sometimes reports KASAN's wild access in
        rcu_is_watching from an interrupt during identify_cpu, which is
        the kernel's early boot, not the code under test."""
        for role, line in self.console_lines(SPLATS, early=True):
            print(f"# note: {role} console, early boot (not counted): {line}")
        return self.console_lines(SPLATS)

    def ynl(self):
        """The kernel's own ynl CLI for the bmgnic family, as a command line
        for the VMs: its Python sources are copied from the kernel tree into
        the rack's shared directory (the VMs do not see the host's /root).
        The spec is not validated against the genetlink schema at every
        request: make check's modules stage does that once, with the
        kernel's ynl_gen_c (netlink_spec.sh), and in a TCG guest importing
        jsonschema made each request about 2 s slower, 11 s the first."""
        dst = os.path.join(self.shared, "ynl")
        if not os.path.isdir(dst):
            ksrc = os.path.realpath(os.path.join(kernel_build_dir(), "source"))
            shutil.copytree(os.path.join(ksrc, "tools/net/ynl/pyynl"),
                            os.path.join(dst, "pyynl"))
            shutil.copy(os.path.join(TOP, "tools/testing/vm/ynl_serve.py"), dst)
        return ("python3 /tmp/rack/ynl/pyynl/cli.py --no-schema "
                f"--spec {TOP}/Documentation/netlink/specs/bmgnic.yaml")

    def start_model(self, name="nic0", **kw):
        m = Model(self, name, **kw)
        self.models.append(m)
        return m

    def start_vm(self, role, **kw):
        vm = VM(self, role, **kw)
        self.vms.append(vm)
        return vm

    def serve_images(self, directory):
        """An HTTP server of `directory` on the host's loopback, stopped
        with the rack; returns its port (a VM's `image_server`)."""
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
            _QuietFiles, directory=directory))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.image_servers.append(server)
        return server.server_address[1]

    def close(self):
        for server in self.image_servers:
            server.shutdown()
        for vm in self.vms:
            vm.stop()
        for m in self.models:
            m.stop()
        shutil.rmtree(self.sockdir, ignore_errors=True)
        if self.failed:
            print(f"# logs kept in {self.logdir}", file=sys.stderr)
        elif not os.environ.get("BMGNIC_KEEP_LOGS"):
            shutil.rmtree(self.logdir, ignore_errors=True)


def standard_rack(rack, peer=True, rme=True, server=True, table_size=None):
    """Starts the rack of DESIGN.md section 4 and waits for every VM."""
    model = rack.start_model(table_size=table_size)
    vms = {}
    if server:
        vms["server"] = rack.start_vm("server", model=model)
    if rme:
        vms["rme"] = rack.start_vm("rme", nics=[(model.ncsi_remote, model.ncsi_local)])
    if peer:
        vms["peer"] = rack.start_vm("peer", nics=[(model.fabric_remote, model.fabric_local)])
    for vm in vms.values():
        vm.wait_ready()
    return model, vms


# The start of a Python script for the RME VM that uses the library behind
# ynl's CLI: `y` is the bmgnic family (format with spec=, the spec's path).
YNL_LIBRARY = ("import sys\n"
               "sys.path.insert(0, '/tmp/rack/ynl')\n"
               "from pyynl.lib import YnlFamily, NlError\n"
               "y = YnlFamily({spec!r}, '')\n")


class Ynl:
    """The kernel's ynl for the bmgnic family, run in the RME VM: JSON
    requests in, parsed replies out.

    Privileged requests go to ynl_serve.py, the same library behind the
    CLI kept running in the VM (started at the first request), which
    answers what the CLI would print at a twentieth of its cost under TCG;
    `serve=False` (the demo, which shows the commands) and requests as
    another user run the CLI itself."""

    # The server's FIFOs and pid in the VM.
    FIFOS = "/tmp/ynl-serve"
    # How long a client waits for the server; a request's NC-SI timeouts
    # take seconds, not this.
    SERVE_WAIT = 100

    def __init__(self, vm, cli, echo=False, serve=True):
        self.vm, self.cli, self.echo, self.serve = vm, cli, echo, serve

    @property
    def spec(self):
        """The family's spec, as the CLI is given it."""
        return self.cli.rsplit("--spec ", 1)[1]

    def _served(self, op, args, kind, check):
        """One request through ynl_serve.py, started first if it does not
        run: (rc, output) as the CLI's."""
        spec, d, wait = self.spec, self.FIFOS, self.SERVE_WAIT
        request = json.dumps({"op": op, "kind": kind, "args": args})
        _, out = self.vm.run(
            f"if ! kill -0 \"$(cat {d}/pid 2>/dev/null)\" 2>/dev/null; then\n"
            f"  rm -rf {d}; mkdir -p {d}; mkfifo {d}/req {d}/resp\n"
            f"  python3 /tmp/rack/ynl/ynl_serve.py {spec} {d} >/tmp/ynl-serve.log 2>&1 </dev/null &\n"
            f"  echo $! > {d}/pid\n"
            f"fi\n"
            f"timeout {wait} sh -c 'cat > \"$0\"' {d}/req <<'EOF'\n{request}\nEOF\n"
            f"timeout {wait} cat {d}/resp", timeout=wait + 20, check=False)
        try:
            answer = json.loads(out)
        except ValueError:
            _, log = self.vm.run("tail -5 /tmp/ynl-serve.log", check=False)
            raise RackError(f"ynl_serve: no answer to {request}: {out[-300:]!r}; log: {log}")
        if check and answer["rc"] != 0:
            raise RackError(f"{self.vm.role} VM: ynl --{kind} {op} exited {answer['rc']}: "
                            f"{answer['out'].strip()[-500:]}")
        return answer["rc"], answer["out"]

    def __call__(self, op, args=None, kind="do", check=True, user=None):
        """Runs `--kind op`; returns (rc, reply), the reply parsed when it
        succeeded (None for a `do` without reply), else ynl's message.
        `user` runs it as that uid, without privileges."""
        request = f"--{kind} {op}"
        if args is not None:
            request += " --json '" + json.dumps(args) + "'"
        if self.serve and user is None:
            rc, out = self._served(op, args, kind, check)
        else:
            cmd = f"{self.cli} --output-json {request}"
            if user is not None:
                cmd = f"setpriv --reuid={user} --regid={user} --clear-groups {cmd}"
            rc, out = self.vm.run(cmd, check=check, timeout=120)
        text = out.strip()
        if self.echo:
            print(f"\n--- {self.vm.role}: $ ynl {request}\n{text if text != 'None' else '(done)'}")
        if rc != 0:
            return rc, text
        return rc, json.loads(text) if text and text != "None" else None

    def multi(self, op, requests):
        """Runs `--do op` once per request (a list of JSON-able dicts) in one
        ynl process, as one netlink batch (`--multi`): the RME VM starts
        Python once, not once per request. Returns the replies in request
        order; fails the caller on any error."""
        batch = " ".join(f"--multi {op} '{json.dumps(args)}'" for args in requests)
        _, out = self.vm.run(f"{self.cli} --output-json {batch}", timeout=120 + 5 * len(requests))
        replies = json.loads(out.strip())
        if self.echo:
            print(f"\n--- {self.vm.role}: $ ynl --multi {op} (x{len(requests)})\n{out.strip()}")
        if len(replies) != len(requests):
            raise RackError(f"ynl --multi {op}: {len(replies)} replies to {len(requests)} requests")
        return replies

    # Runs requests one by one with the library behind the CLI: one Python
    # start for all of them, each answered on its own (a --multi batch
    # stops at the first error).
    EACH = YNL_LIBRARY + (
            "import json\n"
            "out = []\n"
            "for args in json.load(open('/tmp/ynl-each.json')):\n"
            "    try:\n"
            "        out.append({{'reply': y.do({op!r}, args)}})\n"
            "    except NlError as e:\n"
            "        out.append({{'error': e.error, 'message': str(e)}})\n"
            "print(json.dumps(out))\n")

    def each(self, op, requests):
        """Runs `--do op` for each request (a list of JSON-able dicts) in one
        Python process in the VM. Returns, in request order, (0, reply) or
        (errno, ynl's message): the errno itself, where __call__ with
        check=False gives the CLI's exit status."""
        script = self.EACH.format(spec=self.spec, op=op)
        _, out = self.vm.run(f"cat > /tmp/ynl-each.json <<'EOF'\n{json.dumps(requests)}\nEOF\n"
                             f"python3 - <<'EOF'\n{script}EOF", timeout=120 + 5 * len(requests))
        results = [(0, r["reply"]) if "reply" in r else (r["error"], r["message"])
                   for r in json.loads(out.strip().splitlines()[-1])]
        if self.echo:
            failed = sum(rc != 0 for rc, _ in results)
            print(f"\n--- {self.vm.role}: ynl --do {op} (x{len(requests)}): {failed} failed")
        if len(results) != len(requests):
            raise RackError(f"ynl {op}: {len(results)} answers to {len(requests)} requests")
        return results


# The tenant network of the VXLAN scenarios: the server's guest and its
# peer behind Linux's vxlan device, and the VTEPs on the fabric.
VNI = 5001
SERVER_IP, PEER_IP = "10.10.1.1", "10.10.1.2"
LOCAL_VTEP, PEER_VTEP = "192.168.0.1", "192.168.0.2"
LOCAL_VTEP_MAC = "02:00:00:00:00:01"
FACTORY_MAC = "52:54:00:b0:00:01"


def peer_vtep(peer, fabric="eth0", tenant_ip=PEER_IP):
    """Makes the peer VM the tenant's far VTEP: its fabric port `fabric` at
    PEER_VTEP (this server's VTEP known by address), Linux's vxlan device
    vxlan0 with the tenant's VNI at `tenant_ip`. Returns the fabric port's
    MAC."""
    _, mac = peer.run(f"cat /sys/class/net/{fabric}/address")
    peer.run(f"ip link set {fabric} mtu 1600 up; ip addr add {PEER_VTEP}/24 dev {fabric}; "
             f"ip neigh replace {LOCAL_VTEP} lladdr {LOCAL_VTEP_MAC} dev {fabric} nud permanent; "
             f"ip link add vxlan0 type vxlan id {VNI} local {PEER_VTEP} remote {LOCAL_VTEP} "
             f"dstport 4789 dev {fabric}; ip link set vxlan0 mtu 1500 up; "
             f"ip addr add {tenant_ip}/24 dev vxlan0")
    return mac.strip()


def rme_up(rme, mgmt=False):
    """Loads bmgnic_rme on the RME VM's sideband (eth0); with `mgmt`, also
    brings its management NIC (eth1) up at MGMT_GUEST_IP."""
    command = f"ip link set eth0 up; insmod {MODULES[1]} sideband=eth0"
    if mgmt:
        command += f"; ip addr add {MGMT_GUEST_IP}/24 dev eth1; ip link set eth1 up"
    rme.run(command)


def vxlan_tenant_rack(rack, table_size=None, flows=({"ethertype": 0x0806},
                                                    {"ethertype": 0x0800}),
                      echo=False):
    """The rack of the scenarios with an RME: a model, the server VM
    (driver loaded, interface up at SERVER_IP), the RME VM (bmgnic_rme on its
    sideband) and the peer VM, a VTEP with Linux's vxlan device (PEER_IP).
    The RME sets the guest identity, the tenant, VTEP 1 (the peer) and an
    encapsulating flow to it for each match of `flows`, with ynl. Returns
    (model, vms, ynl)."""
    model, vms = standard_rack(rack, table_size=table_size)
    server, rme, peer = vms["server"], vms["rme"], vms["peer"]
    ynl = Ynl(rme, rack.ynl(), echo=echo)
    peer_mac = peer_vtep(peer)
    rme_up(rme)
    ynl("identity-set", {"identity": {"mac": FACTORY_MAC, "mtu-cap": 1500, "ipv4": [SERVER_IP]}})
    ynl("tenant-set", {"tenant": {"vni": VNI, "local-mac": LOCAL_VTEP_MAC,
                                  "local-ip": LOCAL_VTEP}})
    ynl("vtep-set", {"index": 1, "mac": peer_mac, "ip": PEER_VTEP})
    for match in flows:
        ynl("flow-add", {"priority": 10, "action": "encap", "vtep": 1, "match": match})
    server.run(f"insmod {MODULES[0]}")
    dev = server_netdev(server)
    server.run(f"ip addr add {SERVER_IP}/24 dev {dev}; ip link set {dev} up")
    return model, vms, ynl


def server_netdev(server):
    """The interface bmgnic registered in the server VM."""
    _, dev = server.run("ls /sys/bus/pci/drivers/bmgnic/*/net/")
    return dev.split()[0]
