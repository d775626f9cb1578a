#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Idempotent set-up of everything bmgnic builds and tests with, on Debian 12:
# bookworm packages, rust-src, bindgen-cli, libclang-19, a trixie-backports
# source list pinned low (downloads only, never installs), Debian's kernel
# source, a QEMU that has vfio-user-pci and a Python virtualenv with the
# rack's Python peers (os-ken).
#
# Usage: scripts/setup.sh [packages|rust|kernel-source|python|qemu|all]...
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BMGNIC_STAGE=setup

APT_PACKAGES=(
	# kernel build
	build-essential bc bison flex cpio kmod libelf-dev libssl-dev rsync
	libclang-19-dev libclang1-19 llvm-19
	# the debug kernel: KASAN with Rust needs the C side built by clang
	clang-19 lld-19
	# QEMU build
	dpkg-dev ninja-build pkg-config libglib2.0-dev libpixman-1-dev
	libslirp-dev zlib1g-dev libfdt-dev libattr1-dev libcap-ng-dev
	python3-venv
	# tools used inside the VMs (their root is the host's, over 9p)
	iproute2 iputils-ping ethtool iperf3 tcpdump procps pciutils
	python3-yaml python3-jsonschema
	# the tenant OS image (scripts/build-tenant-image.sh)
	mmdebstrap fdisk dosfstools mtools syslinux syslinux-common e2fsprogs
	# the provisioning and cleanup media (scripts/build-provision-image.sh)
	isolinux xorriso
	# the rack's relay from the RME VM to the image server (QEMU guestfwd)
	socat
)

need_root() {
	[ "$(id -u)" = 0 ] || die "set-up installs packages: run it as root (or install: $*)"
}

setup_apt_sources() {
	local list=/etc/apt/sources.list.d/bmgnic-newer.sources
	local pref=/etc/apt/preferences.d/bmgnic-newer
	local want_list want_pref
	want_list='Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'
	# Pinned low: only "apt-get download"/"apt-get source" take from
	# these suites; an install can never pull in trixie's libc.
	want_pref='Package: *
Pin: release n=trixie-backports
Pin-Priority: 50

Package: *
Pin: release n=sid
Pin-Priority: 50'
	if [ "$(cat "$list" 2>/dev/null)" != "$want_list" ] ||
	   [ "$(cat "$pref" 2>/dev/null)" != "$want_pref" ]; then
		need_root "$list"
		printf '%s\n' "$want_list" >"$list"
		printf '%s\n' "$want_pref" >"$pref"
		rm -f "$BMGNIC_CACHE/.apt-updated"
	fi
	mkdir -p "$BMGNIC_CACHE"
	if [ ! -e "$BMGNIC_CACHE/.apt-updated" ] ||
	   [ -n "$(find "$BMGNIC_CACHE/.apt-updated" -mmin +1440)" ]; then
		log "apt-get update"
		apt-get update -qq || die "apt-get update failed"
		touch "$BMGNIC_CACHE/.apt-updated"
	fi
}

setup_packages() {
	local missing=() p
	for p in "${APT_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
			missing+=("$p")
	done
	setup_apt_sources
	[ ${#missing[@]} -eq 0 ] && return 0
	need_root "${missing[*]}"
	log "installing: ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install failed for: ${missing[*]}"
}

setup_rust() {
	command -v rustup >/dev/null || die "rustup not found: install Rust with rustup (https://rustup.rs)"
	local rustc_ver
	rustc_ver=$(rustc --version 2>/dev/null | awk '{print $2}')
	[ -n "$rustc_ver" ] || die "rustc not found: rustup toolchain install stable"
	# Linux 7.3 needs rustc >= 1.85.
	printf '1.85.0\n%s\n' "${rustc_ver%%-*}" | sort -V -C ||
		die "rustc $rustc_ver is too old (Linux 7.3 needs >= 1.85): rustup update stable"
	rustup component list --installed 2>/dev/null | grep -q '^rust-src' ||
		{ log "rustup component add rust-src"; rustup component add rust-src; }
	rustup component list --installed 2>/dev/null | grep -q '^clippy' ||
		rustup component add clippy rustfmt
	if ! bindgen --version 2>/dev/null | grep -q "$BMGNIC_BINDGEN_VERSION"; then
		log "cargo install bindgen-cli $BMGNIC_BINDGEN_VERSION (about 3 minutes)"
		cargo install --quiet --locked bindgen-cli --version "$BMGNIC_BINDGEN_VERSION" ||
			die "cargo install bindgen-cli failed"
	fi
	# Coverage-guided fuzzing of the device model's input parsers.
	if ! cargo fuzz --version 2>/dev/null | grep -q "$BMGNIC_CARGO_FUZZ_VERSION"; then
		log "cargo install cargo-fuzz $BMGNIC_CARGO_FUZZ_VERSION (about 1 minute)"
		cargo install --quiet --locked cargo-fuzz --version "$BMGNIC_CARGO_FUZZ_VERSION" ||
			die "cargo install cargo-fuzz failed"
	fi
	[ -e "$LIBCLANG_PATH/libclang.so" ] || [ -e "$LIBCLANG_PATH/libclang-19.so" ] ||
		die "libclang not found in $LIBCLANG_PATH: install libclang-19-dev"
}

# A virtualenv with the Python peers of tools/testing/requirements.txt
# (os-ken), keyed by that file. Prints its path.
setup_python() {
	local req="$BMGNIC_TOP/tools/testing/requirements.txt" key venv
	# The venv sees the packages of the python3 that makes it (the rack
	# scenarios run in it with their own imports).
	key=$( (cat "$req"; echo system-site-packages) | sha256sum | cut -c1-16)
	venv="$BMGNIC_CACHE/venv/$key"
	if [ ! -e "$venv/.complete" ]; then
		log "python venv: $(grep -v '^#' "$req" | tr '\n' ' ')"
		rm -rf "$venv"
		mkdir -p "$BMGNIC_CACHE/venv"
		python3 -m venv --system-site-packages "$venv" || die "python3 -m venv failed"
		"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" ||
			die "pip install -r $req failed"
		touch "$venv/.complete"
	fi
	echo "$venv"
}

# Downloads (never installs) Debian's kernel source and unpacks it once.
# Prints the source tree path.
setup_kernel_source() {
	local pkg deb dir ver
	mkdir -p "$BMGNIC_CACHE/src"
	for pkg in $BMGNIC_KERNEL_PKGS; do
		dir=$(find "$BMGNIC_CACHE/src" -maxdepth 1 -name "$pkg-*" -type d -print -quit)
		if [ -n "$dir" ] && [ -e "$dir/.unpacked" ]; then
			echo "$dir"; return 0
		fi
		ver=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
		[ -n "$ver" ] && [ "$ver" != "(none)" ] || continue
		dir="$BMGNIC_CACHE/src/$pkg-$ver"
		log "downloading $pkg $ver"
		rm -rf "$dir" "$BMGNIC_CACHE/src/dl"
		mkdir -p "$dir" "$BMGNIC_CACHE/src/dl"
		(cd "$BMGNIC_CACHE/src/dl" && apt-get download -q "$pkg=$ver" >/dev/null 2>&1) || continue
		deb=$(ls "$BMGNIC_CACHE"/src/dl/*.deb)
		log "unpacking $pkg"
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$BMGNIC_CACHE/src/dl" --wildcards './usr/src/*.tar.*'
		tar -x -C "$dir" --strip-components=1 -f "$(ls "$BMGNIC_CACHE"/src/dl/usr/src/linux-source-*.tar.*)"
		rm -rf "$BMGNIC_CACHE/src/dl"
		[ -e "$dir/Makefile" ] || die "unpacked $pkg has no Makefile"
		touch "$dir/.unpacked"
		echo "$dir"; return 0
	done
	die "no kernel source could be downloaded (tried: $BMGNIC_KERNEL_PKGS); check the trixie-backports list"
}

main() {
	local stages=("$@")
	[ ${#stages[@]} -gt 0 ] || stages=(all)
	for s in "${stages[@]}"; do
		case $s in
		packages) setup_packages ;;
		rust) setup_rust ;;
		kernel-source) setup_kernel_source >/dev/null ;;
		python) setup_python ;;
		qemu) "$BMGNIC_TOP/scripts/build-qemu.sh" >/dev/null ;;
		all)
			setup_packages
			setup_rust
			setup_kernel_source >/dev/null
			setup_python >/dev/null
			"$BMGNIC_TOP/scripts/build-qemu.sh" >/dev/null ;;
		*) die "unknown stage '$s' (packages, rust, kernel-source, python, qemu, all)" ;;
		esac
	done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
fi
