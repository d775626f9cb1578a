#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The rack agent, PID 1's last part in every rack VM (init.sh, and the
# tenant image's init): it serves the host's commands on the agent console
# (/dev/hvc0, or the tenant image's second UART): one line
# "<id> <base64 script>" in, "@@BEGIN <id>", output, "@@END <id> <rc>" out;
# the line "poweroff" powers the VM off.
# Usage: agent.sh ROLE [TTY]
role=${1:-rack}
tty=${2:-/dev/hvc0}

# Settings of a tty that nobody holds open do not last: open it, then make
# it a clean byte pipe (no echo, no CR/LF translation).
exec 3<>"$tty"
stty raw -echo 115200 <&3
printf '@@READY %s\n' "$role" >&3
while IFS=' ' read -r id script <&3; do
	[ "$id" = poweroff ] && break
	printf '%s' "$script" | base64 -d >/tmp/.agent-cmd 2>/dev/null
	# Without fd 3: a command (or what it leaves running) must not write
	# into the agent's channel.
	( cd /root && sh /tmp/.agent-cmd ) </dev/null >/tmp/.agent-out 2>&1 3>&-
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
