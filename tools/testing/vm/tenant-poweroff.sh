#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# acpid's action for the power button in the tenant image: the OS shuts
# down in order (file systems synced and read-only), then powers off.
echo "bmgnic-tenant: power button: shutting down" >/dev/console
sync
mount -o remount,ro / 2>/dev/null
echo o >/proc/sysrq-trigger
