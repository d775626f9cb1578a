#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# PID 1 of every rack VM booted with -kernel. The root file system is the
# host's, read-only over virtio-9p, so the guests run the host's own ip,
# ethtool, iperf3 and tcpdump. This script makes the writable directories,
# then becomes the rack agent (agent.sh).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LC_ALL=C

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
for d in /tmp /run /var/tmp /var/log /root /dev/shm; do
	mount -t tmpfs tmpfs "$d"
done
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null

role=rack
top=
for arg in $(cat /proc/cmdline); do
	case $arg in
	bmgnic.role=*) role=${arg#bmgnic.role=} ;;
	bmgnic.top=*) top=${arg#bmgnic.top=} ;;
	esac
done
# The checkout may sit under a directory that is now a tmpfs (/tmp, /root):
# it has a share of its own, mounted back at its own path.
if [ -n "$top" ] && [ ! -e "$top/tools/testing/vm/init.sh" ]; then
	mkdir -p "$top"
	mount -t 9p -o trans=virtio,version=9p2000.L,ro top "$top"
fi
hostname "$role"
ip link set lo up

# The rack's shared, writable directory (logs, captures, results).
mkdir -p /tmp/rack
mount -t 9p -o trans=virtio,version=9p2000.L,cache=none rack /tmp/rack 2>/dev/null

exec sh "$(dirname "$0")/agent.sh" "$role"
