#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Prints the path of a qemu-system-x86_64 that has vfio-user-pci: the
# system's if it has the device, otherwise Debian's qemu source package
# built once into the cache (x86_64-softmmu, KVM + TCG, virtfs), keyed by
# the source version and this script.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BMGNIC_STAGE=qemu

has_vfio_user() {
	"$1" -machine none -nodefaults -device help 2>/dev/null | grep -q '"vfio-user-pci"'
}

if [ -z "${BMGNIC_QEMU_BUILD:-}" ] && command -v qemu-system-x86_64 >/dev/null &&
   has_vfio_user "$(command -v qemu-system-x86_64)"; then
	command -v qemu-system-x86_64
	exit 0
fi

script_hash=$(files_hash "$0")
for ver in $BMGNIC_QEMU_VERSIONS; do
	prefix="$BMGNIC_CACHE/qemu/${ver//[:+~]/_}-$script_hash"
	if [ -x "$prefix/bin/qemu-system-x86_64" ] && has_vfio_user "$prefix/bin/qemu-system-x86_64"; then
		echo "$prefix/bin/qemu-system-x86_64"
		exit 0
	fi
done

for tool in dpkg-source ninja pkg-config python3; do
	command -v "$tool" >/dev/null || die "$tool not found: run scripts/setup.sh packages"
done

for ver in $BMGNIC_QEMU_VERSIONS; do
	prefix="$BMGNIC_CACHE/qemu/${ver//[:+~]/_}-$script_hash"
	work="$BMGNIC_CACHE/qemu/build-${ver//[:+~]/_}"
	rm -rf "$work"
	mkdir -p "$work/dl"
	log "downloading qemu source $ver"
	if ! (cd "$work/dl" && apt-get source -q --download-only "qemu=$ver" >/dev/null 2>&1); then
		log "qemu $ver is not served, trying the next known version"
		continue
	fi
	(cd "$work/dl" && dpkg-source -q -x ./*.dsc "$work/src" >/dev/null 2>&1) ||
		die "dpkg-source -x failed for qemu $ver"
	cd "$work/src"
	# configure installs the meson that pythondeps.toml names from
	# python/wheels when offline; the +ds source does not ship it.
	meson_ver=$(sed -n 's/^meson *=.*installed *= *"\([0-9.]*\)".*/\1/p' pythondeps.toml | head -n 1)
	[ -n "$meson_ver" ] || die "cannot find the meson version in pythondeps.toml"
	mkdir -p python/wheels
	python3 -m pip download -q "meson==$meson_ver" --no-deps -d python/wheels ||
		die "pip download meson==$meson_ver failed"
	log "configuring qemu $ver"
	mkdir build && cd build
	../configure --prefix="$prefix" --target-list=x86_64-softmmu \
		--without-default-features --enable-kvm --enable-tcg \
		--enable-slirp --enable-virtfs --enable-attr \
		--disable-docs --disable-tools --disable-install-blobs \
		>"$work/configure.log" 2>&1 ||
		{ tail -20 "$work/configure.log" >&2; die "qemu configure failed (log: $work/configure.log)"; }
	log "building qemu-system-x86_64 (about 5 minutes)"
	ninja -j"$(nproc)" qemu-system-x86_64 >"$work/build.log" 2>&1 ||
		{ tail -20 "$work/build.log" >&2; die "qemu build failed (log: $work/build.log)"; }

	# The +ds source carries no firmware: take the BIOS, option ROMs and
	# NIC ROMs from bookworm's binary packages (their interfaces to QEMU,
	# fw_cfg and the option-ROM entry points, are stable).
	mkdir -p "$work/fw" && cd "$work/fw"
	apt-get download -q seabios ipxe-qemu qemu-system-data >/dev/null 2>&1 ||
		die "apt-get download of seabios/ipxe-qemu/qemu-system-data failed"
	for deb in ./*.deb; do dpkg-deb -x "$deb" root; done
	rm -rf "$prefix.tmp"
	mkdir -p "$prefix.tmp/bin" "$prefix.tmp/share/qemu"
	cp "$work/src/build/qemu-system-x86_64" "$prefix.tmp/bin/"
	for f in root/usr/share/qemu/* root/usr/share/seabios/* root/usr/lib/ipxe/qemu/*; do
		[ -e "$f" ] || continue
		case $f in *.bin|*.rom) ;; *) continue ;; esac
		# qemu-system-data links into seabios/ipxe: copy the targets.
		cp -L "$f" "$prefix.tmp/share/qemu/$(basename "$f")" 2>/dev/null || true
	done
	cp -r "$work/src/pc-bios/keymaps" "$prefix.tmp/share/qemu/" 2>/dev/null || true
	for f in bios-256k.bin linuxboot_dma.bin; do
		[ -e "$prefix.tmp/share/qemu/$f" ] || die "firmware $f missing from the downloaded packages"
	done
	rm -rf "$prefix"
	mv "$prefix.tmp" "$prefix"
	rm -rf "$work"
	has_vfio_user "$prefix/bin/qemu-system-x86_64" ||
		die "built qemu $ver has no vfio-user-pci"
	log "qemu $ver installed in $prefix"
	echo "$prefix/bin/qemu-system-x86_64"
	exit 0
done
die "no known qemu source version could be downloaded (tried: $BMGNIC_QEMU_VERSIONS)"
