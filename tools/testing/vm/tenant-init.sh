#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# PID 1 of the tenant OS image (scripts/build-tenant-image.sh): a Debian
# root on the server's own NVMe disk, booted by SeaBIOS through syslinux.
# It mounts the kernel's file systems, loads bmgnic, brings the tenant's
# interface up with the address in /etc/bmgnic/address, turns on swap
# (where it also hibernates to), starts the guest agent, lets acpid turn the power button into a
# clean power-off (Redfish GracefulShutdown), and becomes the rack agent
# (agent.sh), as every rack VM does.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LC_ALL=C

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
for d in /tmp /run /dev/shm; do
	mount -t tmpfs tmpfs "$d"
done
mount -o remount,rw /
swapon -a
hostname tenant
ip link set lo up
echo "bmgnic-tenant: root on $(findmnt -n -o SOURCE /), booted $(cat /etc/bmgnic/build-id)"

if insmod /lib/modules/bmgnic/bmgnic.ko; then
	dev=$(ls /sys/bus/pci/drivers/bmgnic/*/net/ 2>/dev/null | head -1)
	if [ -n "$dev" ]; then
		ip addr add "$(cat /etc/bmgnic/address)" dev "$dev"
		ip link set "$dev" up
		echo "bmgnic-tenant: $dev up"
	fi
fi
acpid

# The guest-side hook of a checkpoint (Documentation/bmgnic/migration.rst):
# QEMU's guest agent on the board's virtio-serial port, which the RME asks
# to hibernate (guest-suspend-disk). There is no systemd here: qemu-ga
# writes "disk" to /sys/power/state itself, and the image is written,
# then the power is cut, as the board expects.
echo shutdown >/sys/power/disk
for port in /sys/class/virtio-ports/*; do
	if [ "$(cat "$port/name" 2>/dev/null)" = org.qemu.guest_agent.0 ]; then
		qemu-ga --daemonize --method=virtio-serial --path="/dev/${port##*/}" \
			--logfile=/var/log/qemu-ga.log &&
			echo "bmgnic-tenant: guest agent on /dev/${port##*/}"
	fi
done

# The agent's tty is the second UART (the rack gives a platform's server
# no virtio console), which the serial driver reprograms when a
# hibernation image is restored on a new QEMU.
exec sh /usr/local/lib/bmgnic/agent.sh server /dev/ttyS1
