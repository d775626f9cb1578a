#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds the rack kernel (bzImage plus a tree ready for out-of-tree modules)
# into the cache and prints the build directory. The cache key covers the
# kernel source version, the config fragment, the rust/ overlay, this script
# and the toolchain, so a changed input rebuilds and an unchanged one is
# reused.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BMGNIC_STAGE=kernel

fragment="$BMGNIC_TOP/tools/testing/vm/kernel.config"
. "$BMGNIC_TOP/scripts/setup.sh"
BMGNIC_STAGE=kernel
src=$(setup_kernel_source)

command -v bindgen >/dev/null || die "bindgen not found: run scripts/setup.sh rust"

overlay_files=()
if [ -d "$BMGNIC_TOP/rust" ]; then
	while IFS= read -r f; do overlay_files+=("$f"); done < <(find "$BMGNIC_TOP/rust" -type f | LC_ALL=C sort)
fi

key=$({
	basename "$src"
	files_hash "$fragment" "$0" "${overlay_files[@]}"
	rustc --version; bindgen --version; gcc --version | head -1
} | input_hash)
out="$BMGNIC_CACHE/kernel/$key"

if [ -e "$out/.built" ]; then
	echo "$out/build"
	exit 0
fi

log "building kernel $(basename "$src") (key $key; about 10 minutes on 2 cores)"
rm -rf "$out"
mkdir -p "$out"
# A hard-linked copy of the pristine tree takes the overlay; cp and patch
# replace files rather than write through the links.
cp -al "$src" "$out/src"
for f in "${overlay_files[@]}"; do
	rel=${f#"$BMGNIC_TOP"/}
	case $rel in
	*.patch) ;;
	*) mkdir -p "$out/src/$(dirname "$rel")"
	   cp --remove-destination "$f" "$out/src/$rel" ;;
	esac
done
for f in "${overlay_files[@]}"; do
	case $f in
	*.patch) patch -s -p1 -d "$out/src" <"$f" || die "overlay patch ${f#"$BMGNIC_TOP"/} does not apply to $(basename "$src")" ;;
	esac
done

b="$out/build"
mkdir -p "$b"
kmake() { make -s -C "$out/src" O="$b" "$@"; }
kmake rustavailable >"$out/rustavailable.log" 2>&1 ||
	{ cat "$out/rustavailable.log" >&2; die "the Rust toolchain is not usable for this kernel (see above)"; }
kmake tinyconfig >/dev/null
(cd "$b" && "$out/src/scripts/kconfig/merge_config.sh" -m -O "$b" .config \
	"$out/src/kernel/configs/kvm_guest.config" "$fragment" >"$out/merge.log" 2>&1) ||
	die "merge_config failed (log: $out/merge.log)"
kmake olddefconfig >/dev/null
# Every option the fragment asks for must survive olddefconfig.
missing=$(grep -E '^CONFIG_[A-Z0-9_]+=' "$fragment" | while IFS= read -r line; do
	grep -qxF "$line" "$b/.config" || printf ' %s' "$line"
done)
[ -z "$missing" ] || die "kernel config options not satisfied:$missing"

if ! kmake -j"$(nproc)" bzImage modules >"$out/build.log" 2>&1; then
	grep -E 'error|Error' "$out/build.log" | head -20 >&2
	die "kernel build failed (log: $out/build.log)"
fi
touch "$out/.built"
# Keep only this build and the previous one.
ls -1dt "$BMGNIC_CACHE"/kernel/*/ 2>/dev/null | tail -n +3 | xargs -r rm -rf
log "kernel ready: $b"
echo "$b"
