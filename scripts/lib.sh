# SPDX-License-Identifier: GPL-2.0
# Common variables and helpers for the bmgnic build and test scripts.
# Sourced, never run.

BMGNIC_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Build outputs live outside the checkout, keyed by their inputs.
BMGNIC_CACHE=${BMGNIC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bmgnic}
export BMGNIC_TOP BMGNIC_CACHE
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
export PATH="$HOME/.cargo/bin:$PATH"

# Kernel and QEMU versions known to work, newest first: set-up takes the
# first one that downloads and records it in the cache key.
BMGNIC_KERNEL_PKGS=${BMGNIC_KERNEL_PKGS:-"linux-source-7.3"}
BMGNIC_QEMU_VERSIONS=${BMGNIC_QEMU_VERSIONS:-"1:10.2.2+ds-1"}
BMGNIC_BINDGEN_VERSION=0.72.1
BMGNIC_CARGO_FUZZ_VERSION=0.13.2

log() { printf '[%s] %s\n' "${BMGNIC_STAGE:-bmgnic}" "$*" >&2; }
die() { printf '[%s] error: %s\n' "${BMGNIC_STAGE:-bmgnic}" "$*" >&2; exit 1; }

# Stable hash of files and strings given on stdin.
input_hash() { sha256sum | cut -c1-16; }

# Hash of a list of files (content and name relative to the checkout, so
# that ./scripts/x.sh and $BMGNIC_TOP/scripts/x.sh share a cache entry).
files_hash() {
	local f
	for f in "$@"; do
		f=$(realpath "$f")
		printf '%s\n' "${f#"$BMGNIC_TOP"/}"
		cat "$f"
	done | input_hash
}
