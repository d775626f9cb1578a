#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Checks that KDIR is a prepared, Rust-enabled kernel tree that out-of-tree
# Rust modules can build against.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BMGNIC_STAGE=modules
kdir=${1:?usage: check-kdir.sh KDIR}

[ -d "$kdir" ] || die "KDIR=$kdir: no such directory"
[ -e "$kdir/Makefile" ] || die "KDIR=$kdir is not a kernel tree (no Makefile)"
conf="$kdir/include/config/auto.conf"
[ -e "$conf" ] || die "KDIR=$kdir is not configured and prepared: run 'make olddefconfig modules_prepare' there"
grep -q '^CONFIG_RUST=y' "$conf" ||
	die "KDIR=$kdir has no CONFIG_RUST=y: enable Rust support (make rustavailable; CONFIG_RUST) and rebuild it"
grep -q '^CONFIG_KUNIT=y' "$conf" ||
	die "KDIR=$kdir has no CONFIG_KUNIT=y: the modules carry KUnit suites"
[ -e "$kdir/rust/libkernel.rmeta" ] || [ -e "$kdir/rust/kernel.o" ] ||
	die "KDIR=$kdir has no built Rust kernel crate: build the kernel (make vmlinux modules) first"
# Every file the kernel-crate series adds, in the source tree (O= builds)
# or the build tree itself.
src=$kdir/source
[ -d "$src" ] || src=$kdir
for f in $(awk '/^--- \/dev\/null$/ { getline; sub(/^\+\+\+ b\//, ""); print }' \
	"$BMGNIC_TOP"/rust/patches/*.patch); do
	[ -e "$src/$f" ] ||
		die "KDIR=$kdir lacks $f: git am rust/patches/*.patch (see Documentation/bmgnic/building.rst)"
done
