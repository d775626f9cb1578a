#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""`make demo`: boot the rack, configure the tenant from the RME with ynl,
and show the NIC keeping the bare-metal guest in its virtual network;
then boot it again and let an SDN controller (os-ken) run the tenant
through the RME daemon's OpenFlow agent; then let a bare-metal
provisioner (sushy, as Ironic) install a tenant on an empty server through
the RME's Redfish service, and erase it when it leaves; last, let the RMEs
checkpoint a tenant and move it to another server."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "openflow"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "redfish"))
import rack  # noqa: E402
import rack_controller  # noqa: E402

# The controller's act needs os-ken, the provisioner's sushy: both from
# the project's virtualenv.
rack_controller.need_venv("os_ken", "sushy", "requests")

import rack_redfish  # noqa: E402
import sushy  # noqa: E402

TOP = rack.TOP
VNI, SERVER_IP, PEER_IP = rack.VNI, rack.SERVER_IP, rack.PEER_IP
LOCAL_VTEP, PEER_VTEP, LOCAL_VTEP_MAC = rack.LOCAL_VTEP, rack.PEER_VTEP, rack.LOCAL_VTEP_MAC
FACTORY_MAC = rack.FACTORY_MAC


def show(vm, title, command, check=True):
    print(f"\n--- {vm.role}: {title}\n$ {command}")
    _, out = vm.run(command, check=check, timeout=120)
    print(out.rstrip())
    return out


def main():
    print("== bmgnic demo: preparing the kernel, QEMU, model and modules "
          "(cached after the first run)")
    kdir = rack.kernel_build_dir()
    if subprocess.run(["make", "-s", "-C", kdir, f"M={TOP}", "modules"],
                      stdout=subprocess.DEVNULL).returncode != 0:
        sys.exit("demo: module build failed (run 'make' to see why)")
    bmgnic_ko, rme_ko = rack.MODULES
    try:
        with rack.Rack("demo") as r:
            print("== booting the rack: server VM (the bare-metal tenant), RME VM (the "
                  "server's BMC), peer VM (a VTEP on the fabric), one emulated BMGNIC")
            model, vms = rack.standard_rack(r)
            server, rme, peer = vms["server"], vms["rme"], vms["peer"]
            ynl = rack.Ynl(rme, r.ynl(), echo=True, serve=False)

            def y(op, args=None, kind="do"):
                return ynl(op, args, kind=kind)[1]

            show(server, "the BMGNIC on the tenant's PCIe bus", "lspci -nn -d 1af4:10f0")
            show(server, "the tenant's own driver", f"insmod {bmgnic_ko} && "
                 "dmesg | grep -E 'bmgnic[ :]' && ethtool -i eth0 | head -2")
            show(rme, "the RME module on the NC-SI sideband",
                 f"ip link set eth0 up && insmod {rme_ko} sideband=eth0 && "
                 "dmesg | grep bmgnic_rme | grep -v '#\\|ok '")
            _, peer_mac = peer.run("cat /sys/class/net/eth0/address")
            show(peer, "a VTEP with Linux's own vxlan device",
                 f"ip link set eth0 mtu 1600 up && ip addr add {PEER_VTEP}/24 dev eth0 && "
                 f"ip neigh replace {LOCAL_VTEP} lladdr {LOCAL_VTEP_MAC} dev eth0 nud permanent && "
                 f"ip link add vxlan0 type vxlan id {VNI} local {PEER_VTEP} remote {LOCAL_VTEP} "
                 f"dstport 4789 dev eth0 && ip link set vxlan0 up && "
                 f"ip addr add {PEER_IP}/24 dev vxlan0 && ip -br addr show vxlan0")

            print("\n== the RME configures the tenant over NC-SI, driven by the kernel's ynl")
            y("identity-set", {"identity": {"mac": FACTORY_MAC, "mtu-cap": 1500,
                                            "ipv4": [SERVER_IP]}})
            y("tenant-set", {"tenant": {"vni": VNI, "local-mac": LOCAL_VTEP_MAC,
                                        "local-ip": LOCAL_VTEP}})
            y("vtep-set", {"index": 1, "mac": peer_mac.strip(), "ip": PEER_VTEP})
            for ethertype in (0x0806, 0x0800):
                y("flow-add", {"priority": 10, "action": "encap", "vtep": 1,
                               "match": {"ethertype": ethertype}})

            print("\n== the tenant pings its peer: the NIC encapsulates in VXLAN")
            show(server, "address the interface",
                 f"ip addr add {SERVER_IP}/24 dev eth0 && ip link set eth0 up")
            peer.run("(timeout 15 tcpdump -n -i eth0 -c 2 udp port 4789 "
                     "> /tmp/rack/demo-cap.txt 2>/dev/null &); sleep 1")
            show(server, "ping the peer", f"ping -n -c 3 {PEER_IP}")
            time.sleep(1)
            show(peer, "what the fabric carried (tcpdump)", "cat /tmp/rack/demo-cap.txt")

            print("\n== a denied flow: TCP port 5202 is dropped by the NIC, 5201 is not")
            y("flow-add", {"priority": 100, "action": "drop",
                           "match": {"ethertype": 0x0800, "ip-proto": 6, "l4-dst": 5202}})
            peer.run("iperf3 -s -D -p 5202; iperf3 -s -D -p 5201; sleep 0.5")
            show(server, "iperf3 to the denied port",
                 f"iperf3 -c {PEER_IP} -p 5202 -t 1 --connect-timeout 2000 2>&1 | tail -1",
                 check=False)
            show(server, "iperf3 to an allowed port",
                 f"iperf3 -c {PEER_IP} -p 5201 -t 2 2>&1 | tail -3")

            print("\n== a meter: UDP to port 5203 limited to 5 Mbit/s (625 000 B/s)")
            y("meter-set", {"index": 0, "rate": 625000, "burst": 16000})
            y("flow-add", {"priority": 50, "action": "encap", "vtep": 1, "meter": 0,
                           "match": {"ethertype": 0x0800, "ip-proto": 17, "l4-dst": 5203}})
            peer.run("iperf3 -s -D -p 5203; sleep 0.5")
            show(server, "iperf3 offering 20 Mbit/s",
                 f"iperf3 -c {PEER_IP} -p 5203 -u -b 20M -l 1400 -t 3 2>&1 | tail -4")

            print("\n== the RME's view: flows with their billing counters, and the NIC")
            y("flow-get", kind="dump")
            y("dev-get")
            print(f"\n--- model log ({os.path.basename(model.log)}), last lines")
            with open(model.log) as f:
                print("".join(f.readlines()[-5:]).rstrip())
        openflow_act()
        lifecycle_act()
        migration_act()
    except rack.RackError as e:
        sys.exit(f"demo failed: {e}")
    print("\n== demo done: every VM and the model have been stopped")


def openflow_act():
    """The same tenant, run by an SDN controller instead of a person."""
    print("\n== an SDN controller runs the tenant: os-ken on this machine, connected over the "
          "RME's management network to bmgnic-rmed, the RME daemon's OpenFlow 1.3 agent")
    if subprocess.run(["cargo", "build", "--release", "--locked", "-q"],
                      cwd=os.path.join(TOP, "rme/daemon")).returncode != 0:
        raise rack.RackError("the RME daemon did not build")
    with rack.Rack("demo-openflow") as r:
        _, server, rme, peer, app = rack_controller.openflow_rack(r)
        show(rme, "the daemon, provisioned with the guest's identity and the VTEPs",
             "cat /tmp/rack/rmed.log")
        show(server, "before the controller says anything, the NIC drops the tenant's traffic",
             f"ping -n -c 2 -W 1 {PEER_IP}", check=False)
        print("\n--- controller: a meter and the tenant's flows (VNI as tunnel_id, toward "
              "tunnel port 1001 = VTEP 1), TCP 5202 denied")
        app.configure_tenant(VNI, 1, 5000, 5203, 5202, 5201)
        # The earlier attempt left the peer's ARP entry failed: start anew.
        server.run(f"ip neigh flush {PEER_IP}; true")
        show(server, "ping the peer through the controller's flows", f"ping -n -c 3 {PEER_IP}")
        print("\n--- controller: an unknown flow reaches it as a PACKET_IN; it installs a flow")
        send = (f"python3 -c \"import socket; s=socket.socket(2,2); "
                f"[s.sendto(b'hi', ('{PEER_IP}', 5301)) for _ in range(3)]\"")
        server.run(send)
        time.sleep(2)
        for t_in, t_done, port in app.learned:
            print(f"PACKET_IN for UDP port {port}; flow installed "
                  f"{(t_done - t_in) * 1000:.1f} ms later")
        print("three more datagrams to that port: the flow counts them, no PACKET_IN")
        server.run(send)
        time.sleep(1)
        print("\n--- controller: FLOW stats (cookie: packets, bytes)")
        for cookie, (packets, byte_count) in sorted(app.flow_stats().items()):
            print(f"{cookie:#06x}: {packets} packets, {byte_count} bytes")
        ports = app.port_stats()
        print(f"PORT_STATS host: rx {ports[1].rx_packets} packets, tx {ports[1].tx_packets}")
        show(rme, "the module's table, which the controller's flows became",
             f"{r.ynl()} --dump flow-get --output-json | head -c 600; echo")
        print("\n--- the fabric cable pulled (the peer's socket, the NIC's link partner, "
              "renamed away), then plugged back")
        model, dev = r.models[0], rack.server_netdev(server)
        unplugged = model.fabric_remote + ".unplugged"
        os.rename(model.fabric_remote, unplugged)
        time.sleep(2)
        show(server, "the guest without a fabric link", f"cat /sys/class/net/{dev}/carrier")
        show(rme, "the RME's view", f"{r.ynl()} --do dev-get --output-json | "
             "python3 -c 'import json,sys; print(\"fabric-link:\", json.load(sys.stdin)[\"fabric-link\"])'")
        os.rename(unplugged, model.fabric_remote)
        time.sleep(2)
        for _, _, port in app.port_statuses:
            state = "LINK_DOWN" if port.state & 1 else "LIVE"
            print(f"controller: PORT_STATUS port {port.port_no}: {state}")
        show(server, "the guest's carrier again", f"cat /sys/class/net/{dev}/carrier")



def lifecycle_act():
    """The server's life, run by a bare-metal provisioner through Redfish."""
    print("\n== a bare-metal provisioner runs the server through the RME's Redfish service: "
          "sushy (OpenStack Ironic's Redfish library) on this machine; the server is a board "
          "(bmgnic-platform) with an empty NVMe disk, the NIC on auxiliary power")
    with rack.Rack("demo-lifecycle") as r:
        lc = rack_redfish.redfish_rack(r)
        system = lc.system()
        drive = lc.sushy()._conn.get(rack_redfish.SYSTEM + "/Storage/1/Drives/1").json()
        print(f"Systems/1: PowerState {system.power_state.value}; NIC "
              f"{[i.mac_address for i in system.ethernet_interfaces.get_members()]}; "
              f"drive {drive['CapacityBytes'] >> 20} MiB, "
              f"{rack_redfish.nonzero_mib(lc.disk)} MiB of it written")
        print(f"\n--- install, as Ironic does: InsertMedia {rack_redfish.INSTALL_URL} (the RME "
              "downloads it from the image server into the virtual CD), boot from Cd once, "
              "power on; the installer writes the tenant image and powers off; eject, power on")
        installed, booted = rack_redfish.install_tenant(lc)
        print(f"installed in {installed:.0f} s, booted from the disk in {booted:.0f} s (TCG)")
        show(lc.server, "the tenant, on its own disk, in its virtual network",
             f"findmnt -n -o SOURCE,FSTYPE /; ping -n -c 2 {PEER_IP} | tail -2; "
             "yes tenant-data | head -c 16M > /root/data; sync")
        print("\n--- the tenant leaves: Drive.SecureErase, a Redfish task")
        task, took = rack_redfish.erase_drive(lc)
        for m in task.json["Messages"]:
            print(f"task: {m['Message']}")
        report = task.json["Oem"]["Bmgnic"].get("Erase", {})
        print(f"task {task.task_state.value} in {took:.0f} s: {report.get('method')}, "
              f"{report.get('blocks')} blocks read back, {report.get('nonzero_blocks')} not zero")
        print(f"from the host: {rack_redfish.nonzero_mib(lc.disk)} MiB of the disk image "
              "not zero")
        show(lc.rme, "the NIC keeps nothing of the tenant",
             f"{r.ynl()} --do dev-get --output-json | python3 -c "
             "\"import json,sys; d=json.load(sys.stdin); print('identity', d['identity'], "
             "'tenant vni', d['tenant']['vni'])\"")
        billed = lc.sushy().get_manager("/redfish/v1/Managers/1").json["Oem"]["Bmgnic"]
        print(f"the RME kept its billing: {billed['EndedTenancies'][-1]}")
        print("\n--- Ironic's other path, a network boot: Pxe once, power on; the board cables "
              "its provisioning port for this boot, whose iPXE loads the erase system from the "
              "provisioner's TFTP")
        mark = os.path.getsize(lc.server.console)
        system = lc.system()
        system.set_system_boot_options(sushy.BootSource.PXE,
                                       enabled=sushy.BootSourceOverrideEnabled.ONCE)
        t = time.time()
        system.reset_system(sushy.ResetType.ON)
        lc.wait_power(sushy.PowerState.OFF, 300)
        with open(lc.server.console, errors="replace") as f:
            f.seek(mark)
            for line in f:
                if "Command line:" in line or "bmgnic-cleanup: result" in line:
                    print(f"server console: {line.strip()}")
        print(f"powered off by itself after {time.time() - t:.0f} s; the override now: "
              f"{lc.system().boot.target.value}")
        print("\n--- the next tenant, by the RME alone: Actions/Oem/BmgnicComputerSystem.Deploy, "
              "a Redfish task")
        rack_redfish.configure_nic(lc)
        task, took, _ = rack_redfish.deploy_tenant(lc)
        for m in task.json["Messages"]:
            print(f"task: {m['Message']}")
        show(lc.server, "the next tenant runs, and finds nothing of the last one",
             f"ping -n -c 2 {PEER_IP} | tail -2; test -e /root/data && "
             "echo \"the last tenant's /root/data is here\" || echo 'no /root/data'")



def migration_act():
    """A tenant checkpointed, and moved to another server, by the RMEs."""
    print("\n== the RMEs checkpoint a tenant and move it to another server, through Redfish "
          "(Documentation/bmgnic/migration.rst): two servers, each with its board, NIC and RME; "
          "the boards share provider storage; the peer is cabled to both")
    with rack.Rack("demo-migration") as r:
        a, b, peer, storage = rack_redfish.migration_rack(r)
        show(a.vm, "the tenant on server A, with a process that must survive",
             f"uname -rv; ip -br addr show to {SERVER_IP}/24; "
             "(setsid sleep 100000 > /dev/null 2>&1 &); sleep 0.5; pgrep -a sleep")
        print("\n--- server A's RME: Actions/Oem/BmgnicComputerSystem.Checkpoint, a Redfish task")
        task, took = a.action(rack_redfish.CHECKPOINT, "demo-tenant")
        for m in task.json["Messages"]:
            print(f"task: {m['Message']}")
        print(f"in provider storage: {sorted(os.listdir(storage))}")
        show(peer, "the control plane points the tenant at server B's VTEP",
             f"bridge fdb replace {FACTORY_MAC} dev vxlan0 dst {rack_redfish.VTEP_B} self "
             f"permanent; bridge fdb show dev vxlan0 | grep {FACTORY_MAC.lower()}")
        print("\n--- server B's RME: Actions/Oem/BmgnicComputerSystem.Restore")
        task, took = b.action(rack_redfish.RESTORE, "demo-tenant")
        for m in task.json["Messages"]:
            print(f"task: {m['Message']}")
        b.vm.reconnect(240)
        show(b.vm, "the same tenant on server B: same process, same address, its peer reachable",
             f"pgrep -a sleep; ip -br addr show to {SERVER_IP}/24; "
             f"ping -n -c 2 {PEER_IP} | tail -2")
        show(a.rme, "server A's NIC forgot the tenant",
             f"{r.ynl()} --do dev-get --output-json | python3 -c "
             "\"import json,sys; d=json.load(sys.stdin); print('identity', d['identity'], "
             "'tenant vni', d['tenant']['vni'])\"")
        show(b.rme, "server B's NIC has it, behind B's VTEP",
             f"{r.ynl()} --do dev-get --output-json | python3 -c "
             "\"import json,sys; d=json.load(sys.stdin); print('identity', d['identity'], "
             "'tenant', d['tenant'])\"")


if __name__ == "__main__":
    main()
