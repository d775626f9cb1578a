#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds bmgnic.ko and bmgnic_rme.ko against the debug rack kernel
# (scripts/build-kernel.sh --debug) and prints the directory that holds
# drivers/bmgnic/bmgnic.ko and rme/bmgnic_rme.ko.
#
# The sources are mirrored into $BMGNIC_CACHE/debug-modules/<kernel>/
# (modification times kept, so make rebuilds only what changed) and built
# there with clang, as the kernel was: the checkout keeps the modules of
# the normal kernel.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BMGNIC_STAGE=debug-modules

kdir=$("$BMGNIC_TOP/scripts/build-kernel.sh" --debug | tail -n 1)
out="$BMGNIC_CACHE/debug-modules/$(basename "$(dirname "$kdir")")"
mkdir -p "$out"
# Old kernels' module trees go with their kernels.
for d in "$BMGNIC_CACHE"/debug-modules/*/; do
	[ "$d" = "$out/" ] || rm -rf "$d"
done
# The modules compile wire/src/*.rs too (see wire/src/lib.rs); the RME
# daemon is userspace and stays out. Sources are compared by content and a
# changed one gets the time of the copy, not its own: a checkout older than
# the objects here (another clone built since) must still rebuild them.
rsync -rlpD --checksum --delete --exclude='*.o' --exclude='*.ko' --exclude='*.cmd' --exclude='*.mod*' \
	--exclude='.*' --exclude='/rme/daemon' --exclude='/wire/target' \
	"$BMGNIC_TOP/drivers" "$BMGNIC_TOP/rme" "$BMGNIC_TOP/wire" "$out/"
rm -rf "$out/rme/daemon"
cp -p "$BMGNIC_TOP/Kbuild" "$out/Kbuild"
"$BMGNIC_TOP/scripts/check-kdir.sh" "$kdir"
log "building the modules against the debug kernel"
if ! make -s -C "$kdir" M="$out" LLVM=-19 modules >"$out/build.log" 2>&1; then
	tail -40 "$out/build.log" >&2
	die "module build against the debug kernel failed (log: $out/build.log)"
fi
echo "$out"
