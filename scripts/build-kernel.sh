#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds the rack kernel (bzImage plus a tree ready for out-of-tree modules)
# into the cache and prints the build directory.
#
#   build-kernel.sh           the rack kernel (gcc)
#   build-kernel.sh --debug   the debug rack kernel: kernel.config plus
#                             kernel-debug.config (KASAN, lockdep, ...),
#                             built with clang (LLVM=-19)
#
# Cache layout: $BMGNIC_CACHE/kernel/<flavour>-<base>/{src,build}, where
# <base> hashes the kernel source version, the config fragments, this
# script and the toolchain. The series of kernel-crate patches
# (rust/patches/*.patch) is applied to src with git am (rust-series.sh); its
# hash is stamped in .overlay-key. A different series restores the files the
# old one touched, applies the new one and rebuilds incrementally, so a
# stale tree is never used and an unchanged one is reused as is.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$BMGNIC_TOP/scripts/setup.sh"
BMGNIC_STAGE=kernel

flavour=rack
fragments=("$BMGNIC_TOP/tools/testing/vm/kernel.config")
llvm=()
case ${1:-} in
"") ;;
--debug)
	flavour=debug
	fragments+=("$BMGNIC_TOP/tools/testing/vm/kernel-debug.config")
	llvm=(LLVM=-19)
	;;
*) die "usage: build-kernel.sh [--debug]" ;;
esac
pristine=$(setup_kernel_source)
command -v bindgen >/dev/null || die "bindgen not found: run scripts/setup.sh rust"

series=("$BMGNIC_TOP"/rust/patches/*.patch)
[ -e "${series[0]}" ] || die "no kernel-crate patches in rust/patches"

base=$({
	basename "$pristine"
	files_hash "${fragments[@]}" "$0"
	rustc --version; bindgen --version; gcc --version | head -1
	[ ${#llvm[@]} -eq 0 ] || clang-19 --version | head -1
} | input_hash)
overlay_key=$(files_hash "${series[@]}" "$BMGNIC_TOP/scripts/rust-series.sh")
out="$BMGNIC_CACHE/kernel/$flavour-$base"
src="$out/src"
b="$out/build"

if [ -e "$out/.built" ] && [ "$(cat "$out/.overlay-key" 2>/dev/null)" = "$overlay_key" ]; then
	echo "$b"
	exit 0
fi

kmake() { make -s -C "$src" O="$b" "${llvm[@]}" "$@"; }

if [ ! -e "$out/.configured" ]; then
	log "configuring kernel $(basename "$pristine") (cache $base)"
	rm -rf "$out"
	mkdir -p "$out"
	# A hard-linked copy of the pristine tree takes the series; git am
	# replaces files rather than write through the links.
	cp -al "$pristine" "$src"
	: >"$out/.overlay-files"
	mkdir -p "$b"
	kmake rustavailable >"$out/rustavailable.log" 2>&1 ||
		{ cat "$out/rustavailable.log" >&2; die "the Rust toolchain is not usable for this kernel (see above)"; }
	kmake tinyconfig >/dev/null
	(cd "$b" && "$src/scripts/kconfig/merge_config.sh" -m -O "$b" .config \
		"$src/kernel/configs/kvm_guest.config" "${fragments[@]}" >"$out/merge.log" 2>&1) ||
		die "merge_config failed (log: $out/merge.log)"
	kmake olddefconfig >/dev/null
	# Every option the fragments ask for must survive olddefconfig.
	missing=$(cat "${fragments[@]}" | grep -E '^CONFIG_[A-Z0-9_]+=' | while IFS= read -r line; do
		grep -qxF "$line" "$b/.config" || printf ' %s' "$line"
	done)
	[ -z "$missing" ] || die "kernel config options not satisfied:$missing"
	touch "$out/.configured"
fi

# Undo the previous series: pristine copies get a fresh mtime, so make
# rebuilds what depended on the patched versions.
rm -f "$out/.built"
while IFS= read -r rel; do
	[ -n "$rel" ] || continue
	if [ -e "$pristine/$rel" ]; then
		cp --remove-destination "$pristine/$rel" "$src/$rel"
	else
		rm -f "$src/$rel"
	fi
done <"$out/.overlay-files"
: >"$out/.overlay-files"
sed -n 's@^+++ b/\([^[:space:]]*\).*@\1@p' "${series[@]}" >>"$out/.overlay-files"
"$BMGNIC_TOP/scripts/rust-series.sh" apply "$src" "$out/series.git"

log "building $flavour kernel $(basename "$pristine") (series $overlay_key; a first build takes about 10 minutes on 2 cores)"
if ! kmake -j"$(nproc)" bzImage modules >"$out/build.log" 2>&1; then
	grep -E -A3 'error(\[E[0-9]+\])?:|Error [0-9]' "$out/build.log" | head -40 >&2
	die "kernel build failed (log: $out/build.log)"
fi
echo "$overlay_key" >"$out/.overlay-key"
touch "$out/.built"
# Keep this configuration and the most recent other one of its flavour.
ls -1dt "$BMGNIC_CACHE/kernel/$flavour"-*/ 2>/dev/null | tail -n +3 | xargs -r rm -rf
log "kernel ready: $b"
echo "$b"
