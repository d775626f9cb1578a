# SPDX-License-Identifier: GPL-2.0
"""The OpenFlow rack: the VXLAN tenant's rack with the RME daemon in the RME
VM, provisioned from its command line, and os-ken (rack_app.py) in this
process as the tenant's controller, connected to it over the RME's
management network. Shared by the openflow scenario and the install
benchmark; runs in the project's virtualenv (see need_os_ken).
"""

import os
import shutil
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "vm"))

import rack  # noqa: E402

RMED = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(rack._cache(), "cargo-target"),
                    "release/bmgnic-rmed")


def need_venv(*modules):
    """Re-runs this process in the project's virtualenv unless every one
    of `modules` is importable here."""
    import importlib.util
    if all(importlib.util.find_spec(m) is not None for m in modules):
        return
    venv = rack._script("setup.sh", "python")
    python = os.path.join(venv, "bin/python")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        raise SystemExit(f"{python} lacks {', '.join(modules)}: scripts/setup.sh python")
    os.execv(python, [python] + sys.argv)


def need_os_ken():
    """Re-runs this process in the project's virtualenv unless os-ken is
    importable here."""
    need_venv("os_ken")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_controller(switch_port, reconnect_after=8):
    """os-ken with the rack app, connecting to the agent through the
    forwarded management port, in a thread of this process; returns the
    app once it is up."""
    sys.path.insert(0, HERE)
    from os_ken import cfg
    from os_ken.base import app_manager

    cfg.CONF(args=[], project="os_ken")
    cfg.CONF.set_override("ofp_listen_host", "127.0.0.1")
    cfg.CONF.set_override("ofp_tcp_listen_port", free_port())
    cfg.CONF.set_override("ofp_switch_address_list", [f"127.0.0.1:{switch_port}"])
    # After the controller drops the connection it is away this long.
    cfg.CONF.set_override("ofp_switch_connect_interval", reconnect_after)
    threading.Thread(target=app_manager.AppManager.run_apps, args=(["rack_app"],),
                     daemon=True).start()
    deadline = time.time() + 30
    while time.time() < deadline:
        app = app_manager.lookup_service_brick("TenantController")
        if app is not None:
            return app
        time.sleep(0.2)
    raise rack.RackError("os-ken did not start the controller app")


def openflow_rack(r, table_size=None):
    """Boots the rack, starts the daemon (provisioned: guest identity,
    local VTEP, the peer as VTEP 1) and the controller; returns (model,
    server, rme, peer, app) once the controller reached the agent. The
    server's interface is up; the tenant has no flow yet."""
    if not os.path.exists(RMED):
        raise rack.RackError(f"{RMED} is not built: cargo build --release in rme/daemon")
    model = r.start_model(table_size=table_size)
    switch_port = free_port()
    server = r.start_vm("server", model=model)
    rme = r.start_vm("rme", nics=[(model.ncsi_remote, model.ncsi_local)], mgmt_port=switch_port)
    peer = r.start_vm("peer", nics=[(model.fabric_remote, model.fabric_local)])
    for vm in (server, rme, peer):
        vm.wait_ready()
    peer_mac = rack.peer_vtep(peer)
    rack.rme_up(rme, mgmt=True)
    # The VMs see the host's root, but not its /root: the daemon goes
    # through the rack's shared directory.
    shutil.copy(RMED, os.path.join(r.shared, "bmgnic-rmed"))
    rme.run(f"(/tmp/rack/bmgnic-rmed --controller ptcp:{rack.MGMT_GUEST_PORT} "
            f"--guest-mac {rack.FACTORY_MAC} --guest-ip {rack.SERVER_IP} --mtu-cap 1500 "
            f"--local-vtep {rack.LOCAL_VTEP_MAC},{rack.LOCAL_VTEP} "
            f"--vtep 1={peer_mac},{rack.PEER_VTEP} > /tmp/rack/rmed.log 2>&1 &)")
    server.run(f"insmod {rack.MODULES[0]}")
    dev = rack.server_netdev(server)
    server.run(f"ip addr add {rack.SERVER_IP}/24 dev {dev}; ip link set {dev} up")
    app = start_controller(switch_port)
    if not app.connected.wait(60):
        _, log = rme.run("cat /tmp/rack/rmed.log")
        raise rack.RackError(f"the controller never reached the agent: {log[-500:]}")
    return model, server, rme, peer, app
