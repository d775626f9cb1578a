#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The RME runs the bare-metal server through Redfish, driven by sushy
(OpenStack Ironic's Redfish library) as Ironic's redfish driver calls it:
a tenant is installed from virtual media on an empty server, runs, leaves
(its disk erased and verified, the NIC's tenant state cleared, its billing
kept), a one-time network boot runs the provisioner's cleanup system, and
the next tenant is installed by the RME's own deploy task.

Rack: the model on auxiliary power; the server VM owned by its board
(bmgnic-platform) with an empty NVMe disk and a media directory holding
the install and erase media (scripts/build-provision-image.sh) and a
provisioning network whose TFTP serves the erase system; the
tenant OS (scripts/build-tenant-image.sh) is booted by SeaBIOS from that
disk once installed: no host directory, no -kernel. The RME VM has
bmgnic_rme, the board's channel as a virtio-serial port and the RME
daemon's Redfish service on its management network, which the host's
loopback reaches; the peer VM is the tenant's VXLAN peer. The RME sets the
NIC up with ynl (identity, VNI, VTEP, flows); sushy in this process does
everything else.
"""

import os
import socket
import subprocess
import sys
import time

import bmgnic_env
from bmgnic_env import pings, rack, TOP, wire

sys.path.insert(0, os.path.join(TOP, "tools/testing/openflow"))
sys.path.insert(0, os.path.join(TOP, "tools/testing/redfish"))
import rack_controller  # noqa: E402

rack_controller.need_venv("sushy", "requests")

import requests  # noqa: E402
import sushy  # noqa: E402
from sushy import exceptions as sushy_errors  # noqa: E402

from lib.py import ksft_eq, ksft_ge, ksft_in, ksft_pr, ksft_true  # noqa: E402

from rack_redfish import (  # noqa: E402
    ADMIN, DISK_BYTES, INSTALL_URL, OPERATOR, READER, SYSTEM, configure_nic, deploy_tenant,
    erase_drive, install_tenant, nonzero_mib, redfish_rack, restart_rmed)


def start(r):
    return (redfish_rack(r),)


def test_tenant_installed_from_virtual_media(lc):
    installed, booted = install_tenant(lc)
    ksft_pr(f"install from virtual media (boot, write 512 MiB, read back, power off; TCG): "
            f"{installed:.1f} s")
    ksft_pr(f"boot from the installed disk to the tenant up (TCG): {booted:.1f} s")
    ksft_eq(lc.board.request("status")["state"]["media"]["inserted"], False,
            "the install medium stayed in")
    ksft_eq(sorted(os.listdir(lc.media)), ["erase.iso"],
            "the board kept the downloaded medium after its eject")


def test_server_boots_from_its_own_disk(lc):
    _, root = lc.server.run("findmnt -n -o SOURCE,FSTYPE /")
    ksft_eq(root.split(), ["/dev/nvme0n1p2", "ext4"], "the tenant's root is not its NVMe disk")
    _, mounts = lc.server.run("cat /proc/mounts")
    ksft_true(" 9p " not in mounts, "a host directory is shared into the tenant")
    _, cmdline = lc.server.run("cat /proc/cmdline")
    ksft_in("root=/dev/nvme0n1p2", cmdline, "the kernel was not started by the disk's bootloader")
    ksft_ge(pings(lc.server, 3), 2, "the tenant does not reach its peer")


def test_redfish_shows_the_server_and_its_nic(lc):
    system = lc.system()
    ksft_eq(system.power_state, sushy.PowerState.ON, "PowerState of a running server")
    macs = [i.mac_address.lower() for i in system.ethernet_interfaces.get_members()]
    ksft_eq(macs, [rack.FACTORY_MAC], "EthernetInterfaces: not the NIC's guest MAC")
    allowed = system.get_allowed_reset_system_values()
    for reset in (sushy.ResetType.ON, sushy.ResetType.FORCE_OFF, sushy.ResetType.PAUSE,
                  sushy.ResetType.RESUME, sushy.ResetType.GRACEFUL_SHUTDOWN):
        ksft_in(reset, allowed, "a reset type is not offered")


def test_pause_holds_the_tenant_and_resume_releases_it(lc):
    system = lc.system(OPERATOR)
    system.reset_system(sushy.ResetType.PAUSE)
    ksft_eq(lc.power(), sushy.PowerState.PAUSED, "PowerState after Pause")
    ksft_eq(pings(lc.peer, 3, peer=rack.SERVER_IP), 0, "a paused server answered its peer")
    system.reset_system(sushy.ResetType.RESUME)
    ksft_eq(lc.power(), sushy.PowerState.ON, "PowerState after Resume")
    ksft_ge(pings(lc.peer, 3, peer=rack.SERVER_IP), 2, "the resumed server does not answer")


def test_force_off_then_on_keeps_the_nic_configured(lc):
    system = lc.system()
    _, before = lc.ynl("dev-get")
    system.reset_system(sushy.ResetType.FORCE_OFF)
    ksft_eq(lc.power(), sushy.PowerState.OFF, "PowerState after ForceOff")
    ksft_eq(lc.board.request("status")["state"]["power"], "off", "the board still powers the server")
    ksft_eq(pings(lc.peer, 2, peer=rack.SERVER_IP), 0, "an off server answered")
    # The NIC is on auxiliary power: the RME still reaches it.
    _, off = lc.ynl("dev-get")
    ksft_eq(off["identity"], before["identity"], "the NIC lost its identity with the host's power")
    system.reset_system(sushy.ResetType.ON)
    took = lc.tenant_back()
    ksft_pr(f"power-on to tenant up (firmware, syslinux, kernel, init; TCG): {took:.1f} s")
    ksft_ge(pings(lc.server, 3), 2, "the tenant does not reach its peer after power-on")


def test_server_qemu_killed_under_the_board(lc):
    # The server's QEMU dies (SIGKILL: no QMP, no vfio-user goodbye).
    _, before = lc.ynl("dev-get")
    # Only QEMU's own command line has "-qmp unix:PATH,..."; the board's
    # has "--qmp PATH".
    rc = subprocess.run(["pkill", "-KILL", "-f", f"unix:{lc.board.qmp},"]).returncode
    ksft_eq(rc, 0, "no QEMU of the server's board to kill")
    ksft_true(lc.wait_power(sushy.PowerState.OFF, 30), "Redfish does not see the server off")
    ksft_true(lc.board.request("status")["ok"], "the board went with its server")
    ksft_true(lc.model.proc.poll() is None, "the NIC model died with the server's QEMU")
    _, after = lc.ynl("dev-get")
    ksft_eq(after["identity"], before["identity"], "the NIC lost its identity")
    lc.system().reset_system(sushy.ResetType.ON)
    lc.tenant_back()
    ksft_ge(pings(lc.server, 3), 2, "the tenant does not reach its peer after the crash")


def test_graceful_shutdown_reaches_the_guest(lc):
    mark = os.path.getsize(lc.server.console)
    lc.system().reset_system(sushy.ResetType.GRACEFUL_SHUTDOWN)
    ksft_true(lc.wait_power(sushy.PowerState.OFF, 90), "the server did not power off")
    with open(lc.server.console, errors="replace") as f:
        f.seek(mark)
        ksft_in("power button: shutting down", f.read(), "the guest did not shut down in order")
    lc.system().reset_system(sushy.ResetType.ON)
    lc.tenant_back()


def test_boot_source_override(lc):
    system = lc.system()
    system.set_system_boot_options(sushy.BootSource.HDD, enabled=sushy.BootSourceOverrideEnabled.ONCE)
    state = lc.board.request("status")["state"]
    ksft_eq(state["boot"], {"target": "hdd", "once": True}, "the board's boot source")
    system = lc.system()
    ksft_eq(system.boot.target, sushy.BootSource.HDD, "Boot.BootSourceOverrideTarget")
    ksft_eq(system.boot.enabled, sushy.BootSourceOverrideEnabled.ONCE,
            "Boot.BootSourceOverrideEnabled")
    system.reset_system(sushy.ResetType.FORCE_RESTART)
    lc.tenant_back()
    ksft_eq(lc.board.request("status")["state"]["boot"], {"target": "none", "once": False},
            "a boot-once override outlived its boot")


def test_accounts_and_roles(lc):
    try:
        lc.sushy(("admin", "wrong-password")).get_system(SYSTEM)
        ksft_true(False, "a wrong password was accepted")
    except sushy_errors.AccessError as e:
        ksft_eq(e.status_code, 401, "wrong password")
    try:
        lc.system(READER).reset_system(sushy.ResetType.FORCE_OFF)
        ksft_true(False, "a ReadOnly account reset the server")
    except sushy_errors.AccessError as e:
        ksft_eq(e.status_code, 403, "ReadOnly Reset")
    ksft_eq(lc.power(), sushy.PowerState.ON, "the refused reset changed the power")


def test_accounts_survive_an_rme_restart(lc):
    """The RME keeps the accounts the AccountService manages
    (--redfish-state): one made before a restart of the daemon logs in
    after it, with its role."""
    accounts = f"{lc.url}/redfish/v1/AccountService/Accounts"
    made = requests.post(accounts, json={"UserName": "metal3", "Password": "metal3-pw-1",
                                         "RoleId": "ReadOnly"}, auth=ADMIN, verify=lc.cert, timeout=10)
    ksft_eq(made.status_code, 201, f"account not made: {made.text[:200]}")
    took = restart_rmed(lc)
    ksft_pr(f"RME daemon restarted and answering in {took:.1f} s")
    system = requests.get(f"{lc.url}{SYSTEM}", auth=("metal3", "metal3-pw-1"), verify=lc.cert, timeout=10)
    ksft_eq(system.status_code, 200, "the account made before the restart does not log in")
    reset = requests.post(f"{lc.url}{SYSTEM}/Actions/ComputerSystem.Reset", json={"ResetType": "ForceOff"},
                          auth=("metal3", "metal3-pw-1"), verify=lc.cert, timeout=10)
    ksft_eq(reset.status_code, 403, "the account lost its ReadOnly role in the restart")
    gone = requests.delete(f"{lc.url}{made.headers.get('Location', '/none')}", auth=ADMIN,
                           verify=lc.cert, timeout=10)
    ksft_eq(gone.status_code, 204, "the account could not be deleted after the restart")


def test_bad_requests_get_redfish_errors(lc):
    action = lc.url + SYSTEM + "/Actions/ComputerSystem.Reset"
    auth = ADMIN
    for body, status in ((b"{not json", 400), (b'{"ResetType": "Explode"}', 400), (b"{}", 400)):
        resp = requests.post(action, data=body, auth=auth, verify=lc.cert, timeout=10,
                             headers={"Content-Type": "application/json"})
        ksft_eq(resp.status_code, status, f"POST {body!r}")
        ksft_true("@Message.ExtendedInfo" in resp.json().get("error", {}),
                  f"no Redfish error body for {body!r}")
    resp = requests.get(lc.url + "/redfish/v1/Systems/2", auth=auth, verify=lc.cert, timeout=10)
    ksft_eq(resp.status_code, 404, "unknown system")
    # Raw garbage on the TLS port, then the service still answers.
    host, port = lc.url.rsplit(":", 1)
    with socket.create_connection(("127.0.0.1", int(port)), timeout=5) as s:
        s.sendall(os.urandom(4096))
    ksft_eq(lc.power(), sushy.PowerState.ON, "the service stopped answering after garbage")


def test_the_tenant_cannot_reach_the_rme(lc):
    rc, _ = lc.server.run(f"ping -c 1 -W 2 {rack.MGMT_GUEST_IP}", check=False)
    ksft_true(rc != 0, "the tenant reached the RME's management address")
    rc, out = lc.server.run("ls /dev/virtio-ports/ 2>&1; ls /sys/class/virtio-ports/ 2>&1",
                            check=False)
    ksft_true(rack.PLATFORM_PORT_NAME not in out, "the tenant sees the platform channel")
    rc, _ = lc.server.run(f"timeout 5 bash -c 'echo > /dev/tcp/{rack.MGMT_GUEST_IP}/"
                          f"{rack.REDFISH_GUEST_PORT}'", check=False)
    ksft_true(rc != 0, "the tenant opened a connection to the Redfish service")
    # The board's provisioning port is cabled only for a Pxe boot: the
    # tenant's one NIC is the BMGNIC.
    _, drivers = lc.server.run("for d in /sys/class/net/*/device/driver; do "
                               "basename \"$(readlink \"$d\")\"; done")
    ksft_eq(drivers.split(), ["bmgnic"], "the tenant has a NIC besides the BMGNIC")


def test_tenant_leaves_disk_erased_nic_cleared_billing_kept(lc):
    # The tenant writes to its disk; the host sees it in the image.
    pattern = "bmgnic-tenant-data-" * 4
    lc.server.run(f"yes {pattern} | head -c 64M > /root/data; sync")
    with open(lc.disk, "rb") as f:
        ksft_true(pattern.encode() in f.read(), "the tenant's data is not on its disk")
    ksft_ge(pings(lc.server, 5), 4, "the tenant does not reach its peer")
    _, flows = lc.ynl("flow-get", kind="dump")
    billed_before = sum(f["bytes"] for f in flows)
    ksft_true(billed_before > 0, "the tenant's traffic was not billed")

    # It leaves: the RME erases the drive (a Redfish task), which owns
    # the server's power and CD until it is done.
    refused = []

    def power_on_meanwhile():
        try:
            lc.system().reset_system(sushy.ResetType.ON)
        except sushy_errors.HTTPError as e:
            refused.append(e.status_code)

    task, took = erase_drive(lc, meanwhile=power_on_meanwhile)
    ksft_eq(refused, [409], "a Reset during the erase was not refused")
    ksft_eq(task.task_state, sushy.TaskState.COMPLETED, f"erase task: {task.messages}")
    report = task.json["Oem"]["Bmgnic"]["Erase"]
    ksft_pr(f"erase task (tenancy ended, cleanup boot, {report['method']}, verify; TCG): "
            f"{took:.1f} s; in the cleanup system: erase {report['erase_seconds']} s, "
            f"verify {report['verify_seconds']} s of {report['blocks']} blocks")
    ksft_eq(report["nonzero_blocks"], 0, "the cleanup system found blocks left")
    ksft_eq(lc.power(), sushy.PowerState.OFF, "the server is on after the erase")
    # The console, through the Redfish log service: its last lines are
    # the cleanup system's report.
    entries = f"{lc.url}{SYSTEM}/LogServices/HostLogger/Entries"
    members = requests.get(entries, auth=OPERATOR, verify=lc.cert).json()["Members"]
    last = [requests.get(lc.url + m["@odata.id"], auth=OPERATOR, verify=lc.cert).json()["Message"]
            for m in members[-20:]]
    ksft_true(any('bmgnic-cleanup: result {"job":"erase","ok":true' in line for line in last),
              f"the HostLogger's last lines have no erase report: {last[-5:]}")

    # Every block of the disk, read from the host side.
    t = time.time()
    ksft_eq(nonzero_mib(lc.disk), 0, "MiB of the disk image not zero after the erase")
    ksft_pr(f"host-side check: {DISK_BYTES >> 20} MiB all zero ({time.time() - t:.1f} s)")

    # The NIC forgot the tenant; the RME kept its billing.
    _, dev = lc.ynl("dev-get")
    ksft_eq(dev["identity"]["mac"], "00:00:00:00:00:00", "the NIC kept the tenant's MAC")
    ksft_eq(dev["tenant"]["vni"], 0, "the NIC kept the tenant's VNI")
    _, flows = lc.ynl("flow-get", kind="dump")
    ksft_eq(flows, [], "the NIC kept the tenant's rules")
    tenancy = task.json["Oem"]["Bmgnic"]["Tenancy"]
    ksft_ge(tenancy["BilledBytes"], billed_before, "the final billing lost traffic")
    kept = lc.sushy().get_manager("/redfish/v1/Managers/1").json["Oem"]["Bmgnic"]
    ksft_eq(kept["EndedTenancies"][-1], tenancy, "the Manager does not keep the tenancy's billing")


def test_pxe_boots_the_provisioners_cleanup_system(lc):
    """Ironic's network boot: a one-time Pxe override and a power-on. The
    board cables its provisioning port for that boot, whose iPXE ROM
    loads the erase system from the provisioner's TFTP directory; it
    erases what was left on the disk and powers off. The next boot is the
    firmware's own order again."""
    system = lc.system()
    ksft_in(sushy.BootSource.PXE, system.get_allowed_system_boot_source_values(),
            "Pxe is not offered")
    # Data for the erase to find, planted from the host with the power off.
    left = b"bmgnic-left-behind-" * 64
    with open(lc.disk, "r+b") as f:
        for offset in (0, DISK_BYTES // 2, DISK_BYTES - len(left)):
            f.seek(offset)
            f.write(left)
    ksft_eq(nonzero_mib(lc.disk), 3, "MiB of planted data on the disk")
    system.set_system_boot_options(sushy.BootSource.PXE,
                                   enabled=sushy.BootSourceOverrideEnabled.ONCE)
    ksft_eq(lc.board.request("status")["state"]["boot"], {"target": "pxe", "once": True},
            "the board's boot source")
    mark = os.path.getsize(lc.server.console)
    t = time.time()
    system.reset_system(sushy.ResetType.ON)
    ksft_true(lc.wait_power(sushy.PowerState.OFF, 300), "the network-booted system did not finish")
    took = time.time() - t
    with open(lc.server.console, errors="replace") as f:
        f.seek(mark)
        console = f.read()
    # iPXE names the port it booted from, as Ironic's scripts do.
    bootif = "BOOTIF=01-" + wire.platform.NETBOOT_MAC.replace(":", "-")
    ksft_in(bootif, console, "the kernel did not come through the port's iPXE")
    ksft_in('bmgnic-cleanup: result {"job":"erase","ok":true', console,
            "no erase report from the network-booted system")
    ksft_eq(nonzero_mib(lc.disk), 0, "MiB of the disk image not zero after the network boot")
    ksft_pr(f"Pxe boot (firmware, iPXE, DHCP, TFTP of the erase system, its erase and verify "
            f"of {DISK_BYTES >> 20} MiB, power off; TCG): {took:.1f} s")
    ksft_eq(lc.board.request("status")["state"]["boot"], {"target": "none", "once": False},
            "a one-time Pxe boot outlived its boot")


def test_next_tenant_deployed_by_the_rme(lc):
    """The next tenant through the RME's own deploy task: the RME boots the
    install medium, reads the installer's report and boots the disk."""
    configure_nic(lc)
    task, done, agent = deploy_tenant(lc)
    install = task.json["Oem"]["Bmgnic"]["Install"]
    ksft_pr(f"deploy task: install {install['InstallSeconds']} s (image written and read back in "
            f"{install['WriteSeconds']} s), disk boot to guest agent {install['BootSeconds']} s, "
            f"task {done:.1f} s; rack agent {agent:.1f} s later (TCG)")
    ksft_eq(install["Image"], INSTALL_URL, "the task does not name the image it deployed")
    ksft_true(install["Bytes"] > 0 and len(install["Sha256"]) == 64,
              f"the installer's report is not in the task: {install}")
    system = lc.system()
    ksft_eq(system.power_state, sushy.PowerState.ON, "the deployed server is not on")
    cd = lc.sushy().get_manager("/redfish/v1/Managers/1").virtual_media.get_member(
        "/redfish/v1/Managers/1/VirtualMedia/Cd")
    ksft_true(not cd.inserted, "the install medium stayed in")
    ksft_eq(sorted(os.listdir(lc.media)), ["erase.iso"],
            "the board kept the downloaded medium after the deploy")
    ksft_ge(pings(lc.server, 3), 2, "the next tenant does not reach its peer")
    rc, _ = lc.server.run("test -e /root/data", check=False)
    ksft_true(rc != 0, "the last tenant's data is on the next tenant's disk")


def main():
    bmgnic_env.run_in_rack("lifecycle", start, [
        test_tenant_installed_from_virtual_media,
        test_server_boots_from_its_own_disk,
        test_redfish_shows_the_server_and_its_nic,
        test_pause_holds_the_tenant_and_resume_releases_it,
        test_force_off_then_on_keeps_the_nic_configured,
        test_server_qemu_killed_under_the_board,
        test_graceful_shutdown_reaches_the_guest,
        test_boot_source_override,
        test_accounts_and_roles,
        test_accounts_survive_an_rme_restart,
        test_bad_requests_get_redfish_errors,
        test_the_tenant_cannot_reach_the_rme,
        test_tenant_leaves_disk_erased_nic_cleared_billing_kept,
        test_pxe_boots_the_provisioners_cleanup_system,
        test_next_tenant_deployed_by_the_rme,
    ])


if __name__ == "__main__":
    main()
