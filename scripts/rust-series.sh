#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The kernel-crate abstractions the drivers need (rust/kernel/net/*, the
# PCI sleep callbacks, SpinLockBh, ...) are a patch series against the
# kernel tree, kept as `git format-patch` output in rust/patches/. This
# script applies it and helps change it.
#
#   rust-series.sh apply SRC GITDIR  git am the series onto SRC, a pristine
#                                    kernel tree, with GITDIR as its
#                                    repository (build-kernel.sh)
#   rust-series.sh edit DIR          a repository at DIR: the files the series
#                                    touches, pristine at tag `base`, then
#                                    one commit per patch. Change the
#                                    commits (rebase -i, --fixup), then:
#   rust-series.sh export DIR        rewrite rust/patches/ from base..HEAD
#   rust-series.sh check             git am onto a whole pristine tree made a
#                                    git repository (as a clone of the
#                                    release would be), then compile the
#                                    kernel crate with the rack config
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BMGNIC_STAGE=rust-series

series=("$BMGNIC_TOP"/rust/patches/*.patch)
need_series() { [ -e "${series[0]}" ] || die "no patches in rust/patches"; }

# git with a committer for `am`; the authors come from the patches.
git_as() {
	git -c user.name="bmgnic build" -c user.email="build@bmgnic.invalid" \
		-c init.defaultBranch=main -c advice.detachedHead=false "$@"
}

# The files the series changes that the kernel tree already has.
touched_files() {
	local root=$1 f
	sed -n 's@^diff --git a/\([^[:space:]]*\) b/.*@\1@p' "${series[@]}" | LC_ALL=C sort -u |
		while IFS= read -r f; do
			[ -e "$root/$f" ] && printf '%s\n' "$f"
		done
}

# am_series REPO-ARGS...: git am the series; on failure, show why and stop.
am_series() {
	if ! git_as "$@" am -q --whitespace=error-all "${series[@]}"; then
		git_as "$@" am --show-current-patch=diff | head -20 >&2 || true
		git_as "$@" am --abort || true
		die "the series does not apply (see above)"
	fi
}

cmd_apply() {
	local src=$1 gitdir=$2 files
	need_series
	rm -rf "$gitdir"
	local g=(--git-dir="$gitdir" --work-tree="$src")
	git_as "${g[@]}" init -q
	mapfile -t files < <(touched_files "$src")
	# The repository lives outside the tree: a .git inside it would make
	# scripts/setlocalversion add a "+" to the kernel release.
	git_as "${g[@]}" add -f -- "${files[@]}"
	git_as "${g[@]}" commit -q -m "$(basename "$src") (the files the series changes)"
	git_as "${g[@]}" tag base
	am_series "${g[@]}"
}

cmd_edit() {
	local dir=$1 pristine files f
	need_series
	[ ! -e "$dir" ] || die "$dir exists"
	. "$BMGNIC_TOP/scripts/setup.sh"
	BMGNIC_STAGE=rust-series
	pristine=$(setup_kernel_source)
	mkdir -p "$dir"
	mapfile -t files < <(touched_files "$pristine")
	for f in "${files[@]}"; do
		mkdir -p "$dir/$(dirname "$f")"
		cp "$pristine/$f" "$dir/$f"
	done
	git_as -C "$dir" init -q
	git_as -C "$dir" add -A
	git_as -C "$dir" commit -q -m "$(basename "$pristine") (the files the series changes)"
	git_as -C "$dir" tag base
	am_series -C "$dir"
	log "series applied in $dir; change it there, then: $0 export $dir"
}

cmd_export() {
	local dir=$1
	git -C "$dir" rev-parse -q --verify base >/dev/null || die "$dir has no tag base"
	rm -f "$BMGNIC_TOP"/rust/patches/*.patch
	# Stable output: no commit ids or git version that change on every export.
	git -C "$dir" format-patch -q --zero-commit --no-signature \
		-o "$BMGNIC_TOP/rust/patches" base..HEAD
	ls -1 "$BMGNIC_TOP/rust/patches"
}

check_tmp=
cmd_check() {
	local pristine tmp kdir
	need_series
	. "$BMGNIC_TOP/scripts/setup.sh"
	BMGNIC_STAGE=rust-series
	pristine=$(setup_kernel_source)
	kdir=$("$BMGNIC_TOP/scripts/build-kernel.sh")
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/bmgnic-series.XXXXXX")
	check_tmp=$tmp
	trap 'rm -rf "$check_tmp"' EXIT
	log "copying $(basename "$pristine") into a git repository"
	cp -a "$pristine" "$tmp/linux"
	rm -f "$tmp/linux/.unpacked"
	git_as -C "$tmp/linux" init -q
	# -f: Debian's linux-source adds "/*" to the kernel's .gitignore (its
	# packaging ignores the top level); a clone of the release has no such line.
	git_as -C "$tmp/linux" add -A -f
	git_as -C "$tmp/linux" commit -q -m "$(basename "$pristine")"
	log "git am rust/patches/*.patch"
	git_as -C "$tmp/linux" am --whitespace=error-all "${series[@]}" ||
		die "the series does not apply to $(basename "$pristine")"
	git -C "$tmp/linux" log --oneline HEAD~${#series[@]}..HEAD
	log "compiling the kernel crate (make prepare) with the rack kernel's config"
	mkdir -p "$tmp/build"
	cp "$kdir/.config" "$tmp/build/.config"
	make -s -C "$tmp/linux" O="$tmp/build" olddefconfig >/dev/null
	if ! make -s -C "$tmp/linux" O="$tmp/build" -j"$(nproc)" prepare >"$tmp/build.log" 2>&1; then
		grep -E -A3 'error(\[E[0-9]+\])?:|Error [0-9]' "$tmp/build.log" | head -40 >&2
		die "the series applies but the kernel crate does not build"
	fi
	[ -e "$tmp/build/rust/kernel.o" ] || die "make prepare did not build rust/kernel.o"
	log "the series applies with git am and builds: ${#series[@]} patches"
}

case ${1:-} in
apply) [ $# -eq 3 ] || die "usage: $0 apply SRC GITDIR"; cmd_apply "$2" "$3" ;;
edit) [ $# -eq 2 ] || die "usage: $0 edit DIR"; cmd_edit "$2" ;;
export) [ $# -eq 2 ] || die "usage: $0 export DIR"; cmd_export "$2" ;;
check) cmd_check ;;
*) die "usage: $0 {apply SRC GITDIR|edit DIR|export DIR|check}" ;;
esac
