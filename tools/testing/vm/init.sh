#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# PID 1 of every rack VM. The root file system is the host's, read-only
# over virtio-9p, so the guests run the host's own ip, ethtool, iperf3 and
# tcpdump. This script makes the writable directories, then serves the
# host's commands on the agent console (/dev/hvc0): one line
# "<id> <base64 script>" in, "@@BEGIN <id>", output, "@@END <id> <rc>" out;
# the line "poweroff" powers the VM off.
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

# Settings of a tty that nobody holds open do not last: open it, then make
# it a clean byte pipe (no echo, no CR/LF translation).
exec 3<>/dev/hvc0
stty raw -echo <&3
printf '@@READY %s\n' "$role" >&3
while IFS=' ' read -r id script <&3; do
	[ "$id" = poweroff ] && break
	printf '%s' "$script" | base64 -d >/tmp/.agent-cmd 2>/dev/null
	( cd /root && sh /tmp/.agent-cmd ) </dev/null >/tmp/.agent-out 2>&1
	rc=$?
	{
		printf '@@BEGIN %s\n' "$id"
		cat /tmp/.agent-out
		printf '\n@@END %s %s\n' "$id" "$rc"
	} >&3
done
# The host asked for it: power off.
sync
echo o >/proc/sysrq-trigger
# PID 1 must not exit before the power-off completes, and must not exec
# anything meanwhile: the root file system's transport may already be
# shut down, and a failed exec would end PID 1 ("Attempted to kill init").
while :; do read -r _ <&3 2>/dev/null; done
