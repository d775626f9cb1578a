# SPDX-License-Identifier: GPL-2.0
"""The Redfish rack: the server a board (bmgnic-platform) owns, with an
empty NVMe disk and the RME's install and erase media; the RME VM with
bmgnic_rme, the board's channel and the RME daemon's Redfish service on its
management network, which the host's loopback reaches; the peer VM, the
tenant's VXLAN peer. Shared by the lifecycle scenario and the demo; sushy
drives it, as OpenStack Ironic's redfish driver does (the project's
virtualenv, see rack_controller.need_venv).
"""

import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "vm"))
sys.path.insert(0, os.path.join(HERE, "..", "openflow"))

import rack  # noqa: E402
import rack_controller  # noqa: E402

import requests  # noqa: E402
import sushy  # noqa: E402


def wait_for(cond, timeout=10, interval=0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return cond()


ADMIN, OPERATOR, READER = ("admin", "rack-admin-pw"), ("ops", "rack-ops-pw"), ("viewer", "rack-viewer-pw")
SYSTEM = "/redfish/v1/Systems/1"


class Lifecycle:
    """What the cases share: the rack's parts and the Redfish endpoint."""

    def __init__(self, r, server, rme, peer, ynl, board, url, cert):
        self.r, self.server, self.rme, self.peer, self.ynl = r, server, rme, peer, ynl
        self.board, self.url, self.cert = board, url, cert

    def sushy(self, account=ADMIN):
        user, password = account
        return sushy.Sushy(self.url + "/redfish/v1", username=user, password=password,
                           verify=self.cert)

    def system(self, account=ADMIN):
        return self.sushy(account).get_system(SYSTEM)

    def power(self):
        return self.system().power_state

    def wait_power(self, state, timeout=90):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.power() == state:
                return True
            time.sleep(1)
        return False

    def tenant_back(self, timeout=240):
        """After a power-on: the new QEMU's agent answers, the tenant's
        init has brought bmgnic up; returns the seconds it took."""
        t = time.time()
        self.server.reconnect(timeout)
        if not wait_for(lambda: self.server.run(f"ip -br addr | grep -q {rack.SERVER_IP}",
                                                check=False)[0] == 0, timeout=30):
            raise rack.RackError("the tenant's init did not bring bmgnic up")
        return time.time() - t


DISK_BYTES = 512 << 20
INSTALL_URL = "http://images.cloud.example/bmgnic/install.iso"


def configure_nic(lc):
    """The RME gives the NIC its tenant: identity, VNI, the peer's VTEP and
    encapsulating flows for ARP and IPv4."""
    lc.ynl("identity-set", {"identity": {"mac": rack.FACTORY_MAC, "mtu-cap": 1500,
                                         "ipv4": [rack.SERVER_IP]}})
    lc.ynl("tenant-set", {"tenant": {"vni": rack.VNI, "local-mac": rack.LOCAL_VTEP_MAC,
                                     "local-ip": rack.LOCAL_VTEP}})
    lc.ynl("vtep-set", {"index": 1, "mac": lc.peer_mac, "ip": rack.PEER_VTEP})
    for match in ({"ethertype": 0x0806}, {"ethertype": 0x0800}):
        lc.ynl("flow-add", {"priority": 10, "action": "encap", "vtep": 1, "match": match})


def redfish_rack(r):
    """Boots the Redfish rack with the server off and its disk empty; starts
    the RME daemon's Redfish service; gives the NIC its tenant. Returns the
    Lifecycle."""
    install = rack.provision_media("install")
    erase = rack.provision_media("erase")
    model = r.start_model(aux_power=True)
    # An empty server: a disk of zeros, the RME's media beside it.
    disk = os.path.join(r.logdir, "tenant-disk.img")
    with open(disk, "wb") as f:
        f.truncate(DISK_BYTES)
    media = os.path.join(r.logdir, "media")
    os.makedirs(media)
    shutil.copyfile(install, os.path.join(media, "install.iso"))
    shutil.copyfile(erase, os.path.join(media, "erase.iso"))
    board = rack.Platform(r, "server", disk=disk, media_dir=media, power_on=False)
    redfish_port = rack_controller.free_port()
    server = r.start_vm("server", model=model, platform=board)
    rme = r.start_vm("rme", nics=[(model.ncsi_remote, model.ncsi_local)],
                     redfish_port=redfish_port, platform_channel=board.channel)
    peer = r.start_vm("peer", nics=[(model.fabric_remote, model.fabric_local)])
    for vm in (rme, peer):
        vm.wait_ready()
    peer_mac = rack.peer_vtep(peer)
    rack.rme_up(rme, mgmt=True)
    ynl = rack.Ynl(rme, r.ynl())
    # The daemon and its accounts go through the rack's shared directory.
    shutil.copy(rack_controller.RMED, os.path.join(r.shared, "bmgnic-rmed"))
    with open(os.path.join(r.shared, "accounts"), "w") as f:
        f.write(f"{ADMIN[0]}:Administrator:{ADMIN[1]}\n{OPERATOR[0]}:Operator:{OPERATOR[1]}\n"
                f"{READER[0]}:ReadOnly:{READER[1]}\n")
    rme.run("(/tmp/rack/bmgnic-rmed "
            f"--redfish 0.0.0.0:{rack.REDFISH_GUEST_PORT} --redfish-accounts /tmp/rack/accounts "
            f"--platform /dev/virtio-ports/{rack.PLATFORM_PORT_NAME} "
            "--tls-cert-out /tmp/rack/redfish.pem > /tmp/rack/rmed.log 2>&1 &)")
    cert = os.path.join(r.shared, "redfish.pem")
    url = f"https://localhost:{redfish_port}"

    def answers():
        try:
            return requests.get(url + "/redfish/v1/", verify=cert, timeout=5).status_code == 200
        except (requests.RequestException, OSError):
            return False
    if not wait_for(lambda: os.path.exists(cert) and answers(), timeout=60):
        _, log = rme.run("cat /tmp/rack/rmed.log")
        raise rack.RackError(f"the Redfish service did not come up: {log[-800:]}")
    lc = Lifecycle(r, server, rme, peer, ynl, board, url, cert)
    lc.peer_mac, lc.disk, lc.model = peer_mac, disk, model
    configure_nic(lc)
    return lc


def install_tenant(lc):
    """Ironic's virtual-media deploy, through sushy: the install medium in
    the virtual CD, boot from it once, power on; the installer writes the
    tenant image and powers off; the medium out, the server boots its
    disk. Returns (install seconds, boot seconds)."""
    system = lc.system()
    if system.power_state != sushy.PowerState.OFF:
        system.reset_system(sushy.ResetType.FORCE_OFF)
    cd = lc.sushy().get_manager("/redfish/v1/Managers/1").virtual_media.get_member(
        "/redfish/v1/Managers/1/VirtualMedia/Cd")
    cd.insert_media(INSTALL_URL, inserted=True, write_protected=True)
    system.set_system_boot_options(sushy.BootSource.CD,
                                   enabled=sushy.BootSourceOverrideEnabled.ONCE)
    mark = os.path.getsize(lc.server.console)
    t = time.time()
    system.reset_system(sushy.ResetType.ON)
    if not lc.wait_power(sushy.PowerState.OFF, 600):
        raise rack.RackError("the installer did not power the server off")
    installed = time.time() - t
    with open(lc.server.console, errors="replace") as f:
        f.seek(mark)
        console = f.read()
    if '"job":"install","ok":true' not in console:
        raise rack.RackError(f"the installer failed: {console[-600:]}")
    cd.refresh()
    cd.eject_media()
    t = time.time()
    lc.system().reset_system(sushy.ResetType.ON)
    booted = lc.tenant_back()
    return installed, booted


def erase_drive(lc, timeout=900, meanwhile=None):
    """Drive.SecureErase through sushy's connector and task monitor, as
    sushy runs its own storage actions; `meanwhile()` runs while the task
    does. Returns (task, seconds)."""
    root = lc.sushy()
    t = time.time()
    resp = root._conn.post(SYSTEM + "/Storage/1/Drives/1/Actions/Drive.SecureErase", data={})
    if resp.status_code != 202 or "Location" not in resp.headers:
        raise rack.RackError(f"SecureErase is not a task: {resp.status_code}")
    monitor = root.get_task_monitor(resp.headers["Location"])
    if meanwhile is not None:
        meanwhile()
    monitor.wait(timeout)
    return monitor.get_task(), time.time() - t


def nonzero_mib(path):
    """MiB of the file at `path` that hold a byte other than zero."""
    count = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            if chunk.count(0) != len(chunk):
                count += 1
    return count
