# SPDX-License-Identifier: GPL-2.0
"""The Redfish rack: the server a board (bmgnic-platform) owns, with an
empty NVMe disk and the provider's erase medium; the RME VM with
bmgnic_rme, the board's channel and the RME daemon's Redfish service on its
management network, which the host's loopback reaches, and which reaches
the image server (on the host) that holds the install medium; the peer VM, the
tenant's VXLAN peer. Shared by the lifecycle scenario and the demo; sushy
drives it, as OpenStack Ironic's redfish driver does (the project's
virtualenv, see rack_controller.need_venv).
"""

import os
import shutil
import subprocess
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
# The install medium on the provisioning network's image server, which the
# RME downloads it from.
INSTALL_URL = f"http://{rack.IMAGE_SERVER_IP}/bmgnic/install.iso"


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


def start_rmed(r, rme, redfish_port, args=""):
    """Starts the RME daemon's Redfish service in `rme` (bmgnic_rme loaded,
    its management NIC up) on the board's channel, with the rack's
    accounts; returns (url, certificate) once it answers."""
    # The daemon and its accounts go through the rack's shared directory.
    daemon = os.path.join(r.shared, "bmgnic-rmed")
    if not os.path.exists(daemon):
        shutil.copy(rack_controller.RMED, daemon)
        with open(os.path.join(r.shared, "accounts"), "w") as f:
            f.write(f"{ADMIN[0]}:Administrator:{ADMIN[1]}\n"
                    f"{OPERATOR[0]}:Operator:{OPERATOR[1]}\n"
                    f"{READER[0]}:ReadOnly:{READER[1]}\n")
    name = "redfish" if rme.role == "rme" else f"redfish-{rme.role}"
    rme.run("(/tmp/rack/bmgnic-rmed "
            f"--redfish 0.0.0.0:{rack.REDFISH_GUEST_PORT} --redfish-accounts /tmp/rack/accounts "
            f"--redfish-state /tmp/rack/accounts-{rme.role}.json "
            f"--platform /dev/virtio-ports/{rack.PLATFORM_PORT_NAME} {args} "
            f"--tls-cert-out /tmp/rack/{name}.pem > /tmp/rack/rmed-{rme.role}.log 2>&1 &)")
    cert = os.path.join(r.shared, f"{name}.pem")
    url = f"https://localhost:{redfish_port}"

    def answers():
        try:
            return requests.get(url + "/redfish/v1/", verify=cert, timeout=5).status_code == 200
        except (requests.RequestException, OSError):
            return False
    if not wait_for(lambda: os.path.exists(cert) and answers(), timeout=60):
        _, log = rme.run(f"cat /tmp/rack/rmed-{rme.role}.log")
        raise rack.RackError(f"the Redfish service did not come up: {log[-800:]}")
    return url, cert


def restart_rmed(lc):
    """Stops the RME daemon and starts it again as redfish_rack did (its
    accounts from its store); returns the seconds until it answers."""
    t = time.time()
    lc.rme.run("pkill -x bmgnic-rmed; while pgrep -x bmgnic-rmed >/dev/null; do sleep 0.2; done")
    os.remove(lc.cert)
    start_rmed(lc.r, lc.rme, int(lc.url.rsplit(":", 1)[1]))
    return time.time() - t


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
    shutil.copyfile(erase, os.path.join(media, "erase.iso"))
    # The install medium is not the board's: the RME downloads it from the
    # image server when a client inserts it.
    images = os.path.join(r.logdir, "images")
    os.makedirs(os.path.join(images, "bmgnic"))
    os.symlink(install, os.path.join(images, "bmgnic", "install.iso"))
    # The provisioning network's boot server (Ironic's conductor, for the
    # PXE boots a client asks for) offers the erase system.
    board = rack.Platform(r, "server", disk=disk, media_dir=media, power_on=False,
                          netboot_dir=rack.provision_netboot("erase"))
    redfish_port = rack_controller.free_port()
    server = r.start_vm("server", model=model, platform=board)
    rme = r.start_vm("rme", nics=[(model.ncsi_remote, model.ncsi_local)],
                     redfish_port=redfish_port, platform_channel=board.channel,
                     image_server=r.serve_images(images))
    peer = r.start_vm("peer", nics=[(model.fabric_remote, model.fabric_local)])
    for vm in (rme, peer):
        vm.wait_ready()
    peer_mac = rack.peer_vtep(peer)
    rack.rme_up(rme, mgmt=True)
    ynl = rack.Ynl(rme, r.ynl())
    url, cert = start_rmed(r, rme, redfish_port)
    lc = Lifecycle(r, server, rme, peer, ynl, board, url, cert)
    lc.peer_mac, lc.disk, lc.model, lc.media = peer_mac, disk, model, media
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


def run_task(root, target, body, timeout=900):
    """POSTs an action that answers with a task and waits for it, through
    sushy's connector and task monitor as sushy runs its own actions.
    Returns (task, seconds)."""
    t = time.time()
    resp = root._conn.post(target, data=body)
    if resp.status_code != 202 or "Location" not in resp.headers:
        raise rack.RackError(f"{target} is not a task: {resp.status_code}")
    monitor = root.get_task_monitor(resp.headers["Location"])
    monitor.wait(timeout)
    return monitor.get_task(), time.time() - t


def deploy_tenant(lc, timeout=900):
    """The RME's own deploy task (BmgnicComputerSystem.Deploy) on the off
    server, through sushy's connector and task monitor: the install medium
    booted once, the image written and read back, the disk booted until
    the guest agent answers. Returns (task, seconds to the task's end,
    seconds to the tenant's rack agent)."""
    system = lc.system()
    if system.power_state != sushy.PowerState.OFF:
        system.reset_system(sushy.ResetType.FORCE_OFF)
    task, done = run_task(lc.sushy(), DEPLOY, {"Image": INSTALL_URL}, timeout)
    if task.task_state != sushy.TaskState.COMPLETED:
        raise rack.RackError(f"the deploy task ended {task.task_state}: {task.json.get('Messages')}")
    return task, done, lc.tenant_back()


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


# Server B's VTEP on the fabric, which the peer reaches on its second port.
VTEP_B, VTEP_B_MAC = "192.168.0.3", "02:00:00:00:00:03"
CHECKPOINT = SYSTEM + "/Actions/Oem/BmgnicComputerSystem.Checkpoint"
DEPLOY = SYSTEM + "/Actions/Oem/BmgnicComputerSystem.Deploy"
RESTORE = SYSTEM + "/Actions/Oem/BmgnicComputerSystem.Restore"
METER = {"index": 1, "rate": 50_000_000, "burst": 200_000}


class Server:
    """One server of the rack: its VM, board, model, RME and Redfish."""

    def __init__(self, vm, board, model, rme, ynl, url, cert):
        self.vm, self.board, self.model, self.rme, self.ynl = vm, board, model, rme, ynl
        self.url, self.cert = url, cert

    def sushy(self):
        user, password = ADMIN
        return sushy.Sushy(self.url + "/redfish/v1", username=user, password=password,
                           verify=self.cert)

    def power(self):
        return self.board.request("status")["state"]["power"]

    def action(self, target, name, timeout=900):
        """Runs an OEM action as a task, as sushy runs its own; returns
        (task, seconds)."""
        return run_task(self.sushy(), target, {"CheckpointName": name}, timeout)

    def task_json(self, task):
        """The task resource as JSON (its Oem and messages)."""
        return self.sushy()._conn.get(task.path).json()

    def current_tenancy(self):
        return self.sushy()._conn.get("/redfish/v1/Managers/1").json()["Oem"]["Bmgnic"][
            "CurrentTenancy"]

    def identity(self):
        _, dev = self.ynl("dev-get")
        return dev.get("identity", {})


def start_server(r, role, rme_role, model, disk, storage, power_on, vtep):
    """Starts one server of the migration rack: its board and VM, and its
    RME VM with a forwarded Redfish port."""
    board = rack.Platform(r, role, disk=disk, power_on=power_on, checkpoint_dir=storage)
    vm = r.start_vm(role, model=model, platform=board)
    port = rack_controller.free_port()
    rme = r.start_vm(rme_role, nics=[(model.ncsi_remote, model.ncsi_local)],
                     redfish_port=port, platform_channel=board.channel)
    return vm, board, rme, port, vtep


def migration_rack(r):
    """Boots the migration rack (Documentation/bmgnic/migration.rst): two
    servers, each a board with an NVMe disk, a BMGNIC model on auxiliary
    power and an RME VM serving Redfish (bmgnic-rmed --local-vtep), the
    boards sharing provider storage; server A runs the tenant image, its
    NIC configured with ynl (identity, VNI, VTEP, a meter, ARP and IPv4
    rules); server B is off with an empty disk; the peer is cabled to both.
    Returns (server A, server B, peer, provider storage)."""
    storage = os.path.join(r.logdir, "provider-storage")
    os.makedirs(storage)
    model_a = r.start_model("nic0", aux_power=True)
    model_b = r.start_model("nic1", aux_power=True)
    disk_a = os.path.join(r.logdir, "server-disk.img")
    subprocess.run(["cp", "--sparse=always", rack.tenant_image(), disk_a], check=True)
    disk_b = os.path.join(r.logdir, "server2-disk.img")
    with open(disk_b, "wb") as f:
        f.truncate(DISK_BYTES)
    parts = []
    for role, rme_role, model, disk, on, vtep in (
            ("server", "rme", model_a, disk_a, True, (rack.LOCAL_VTEP_MAC, rack.LOCAL_VTEP)),
            ("server2", "rme2", model_b, disk_b, False, (VTEP_B_MAC, VTEP_B))):
        parts.append(start_server(r, role, rme_role, model, disk, storage, on, vtep))
    peer = r.start_vm("peer", nics=[(model_a.fabric_remote, model_a.fabric_local),
                                    (model_b.fabric_remote, model_b.fabric_local)])
    for vm in [p[2] for p in parts] + [peer]:
        vm.wait_ready()
    peer_mac = rack.peer_vtep(peer)
    # The second port: the same MAC (both servers see one next hop), a
    # route and a neighbour for server B's VTEP.
    peer.run(f"ip link set eth1 address {peer_mac}; ip link set eth1 mtu 1600 up; "
             f"ip route add {VTEP_B}/32 dev eth1; "
             f"ip neigh replace {VTEP_B} lladdr {VTEP_B_MAC} dev eth1 nud permanent")
    servers = []
    for (vm, board, rme, port, (vtep_mac, vtep_ip)), model in zip(parts, (model_a, model_b)):
        rack.rme_up(rme, mgmt=True)
        ynl = rack.Ynl(rme, r.ynl())
        url, cert = start_rmed(r, rme, port, f"--local-vtep {vtep_mac},{vtep_ip}")
        servers.append(Server(vm, board, model, rme, ynl, url, cert))
    a, b = servers
    # The tenant's NIC configuration on A, as the cloud gave it.
    a.ynl("identity-set", {"identity": {"mac": rack.FACTORY_MAC, "mtu-cap": 1500,
                                        "ipv4": [rack.SERVER_IP]}})
    a.ynl("tenant-set", {"tenant": {"vni": rack.VNI, "local-mac": rack.LOCAL_VTEP_MAC,
                                    "local-ip": rack.LOCAL_VTEP}})
    a.ynl("vtep-set", {"index": 1, "mac": peer_mac, "ip": rack.PEER_VTEP})
    a.ynl("meter-set", METER)
    a.ynl("flow-add", {"priority": 10, "action": "encap", "vtep": 1,
                       "match": {"ethertype": 0x0806}})
    a.ynl("flow-add", {"priority": 10, "action": "encap", "vtep": 1, "meter": METER["index"],
                       "match": {"ethertype": 0x0800}})
    a.vm.wait_ready(300)
    if not wait_for(lambda: a.vm.run(f"ip -br addr | grep -q {rack.SERVER_IP}",
                                     check=False)[0] == 0, timeout=60):
        raise rack.RackError("the tenant's init did not bring bmgnic up")
    return a, b, peer, storage
