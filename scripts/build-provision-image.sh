#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The RME's provisioning and cleanup media: bootable ISO 9660 images the
# RME inserts as the server's virtual CD (Documentation/bmgnic/platform.rst).
# Each holds isolinux, the rack kernel and an initramfs whose PID 1 is
# bmgnic-cleanup (rme/cleanup/), which does one job and powers off:
#
#   install   writes the tenant image on the medium (tenant.img.gz, with
#             its SHA-256) to the server's NVMe disk and reads it back
#   erase     NVMe Format with secure erase, zero-fill as the fallback,
#             then reads every block back
#
# Beside each ISO, JOB-KEY.netboot/ holds the same kernel and initramfs
# with an iPXE script (boot.ipxe, wire::platform::NETBOOT_FILE), for a
# network boot from a provisioning network (bmgnic-platform
# --netboot-dir).
#
# Cached by their inputs under $BMGNIC_CACHE/images; prints the ISO's path.
#
# Usage: build-provision-image.sh install|erase KERNEL_BUILD_DIR [TENANT_IMAGE]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BMGNIC_STAGE=image

job=${1:-}
kdir=${2:-}
tenant=${3:-}
case $job in
install) [ -f "$tenant" ] || die "install media need a tenant image" ;;
erase) tenant= ;;
*) die "usage: build-provision-image.sh install|erase KERNEL_BUILD_DIR [TENANT_IMAGE]" ;;
esac
kernel="$kdir/arch/x86/boot/bzImage"
gen_init_cpio="$kdir/usr/gen_init_cpio"
[ -f "$kernel" ] && [ -x "$gen_init_cpio" ] || die "no kernel (with usr/gen_init_cpio) in $kdir"
for tool in xorriso gzip; do
	command -v "$tool" >/dev/null || die "$tool not found: run scripts/setup.sh packages"
done
isolinux=/usr/lib/ISOLINUX/isolinux.bin
ldlinux=/usr/lib/syslinux/modules/bios/ldlinux.c32
[ -f "$isolinux" ] && [ -f "$ldlinux" ] || die "isolinux not found: run scripts/setup.sh packages"

# Keyed by the agent's inputs (its crate and the toolchain), not its
# bytes: a build in another checkout directory differs in its debug info
# and in LLVM's names for local symbols, and would miss the cache.
cleanup="$BMGNIC_TOP/rme/cleanup"
# The boot file's name, which the board's DHCP hands out: wire::platform.
wire_platform="$BMGNIC_TOP/wire/src/platform.rs"
netboot_file=$(sed -n 's/^pub const NETBOOT_FILE: &str = "\(.*\)";$/\1/p' "$wire_platform")
[ -n "$netboot_file" ] || die "no NETBOOT_FILE in $wire_platform"
key=$({
	echo "$job"
	files_hash "$0" "$wire_platform" "$cleanup/Cargo.toml" "$cleanup/Cargo.lock" "$cleanup"/src/*.rs
	rustc --version --verbose
	cat "$kernel" "$isolinux" "$ldlinux"
	[ -z "$tenant" ] || cat "$tenant"
} | input_hash)
out="$BMGNIC_CACHE/images/$job-$key.iso"
netboot="$BMGNIC_CACHE/images/$job-$key.netboot"
if [ -e "$out" ] && [ -e "$netboot" ]; then
	echo "$out"
	exit 0
fi

target=${CARGO_TARGET_DIR:-$BMGNIC_CACHE/cargo-target}
CARGO_TARGET_DIR=$target cargo build --quiet --release --locked \
	--manifest-path "$cleanup/Cargo.toml" || die "bmgnic-cleanup build failed"
# The initramfs carries the agent without its debug info (4.7 MB less).
stripped=$(mktemp)
trap 'rm -f "$stripped"' EXIT
objcopy --strip-debug "$target/release/bmgnic-cleanup" "$stripped"
agent=$stripped

log "building the $job medium (key $key)"
mkdir -p "$BMGNIC_CACHE/images"
tmp=$(mktemp -d "$BMGNIC_CACHE/images/.build-XXXXXX")
trap 'rm -rf "$tmp" "$stripped"' EXIT
tree="$tmp/iso"
mkdir -p "$tree/isolinux"

# The initramfs (gen_init_cpio's list: no root, no mknod needed): the agent
# as /init and the C library it links; the console node gives PID 1 its
# stdout.
{
	echo "dir /dev 0755 0 0"
	echo "nod /dev/console 0600 0 0 c 5 1"
	echo "dir /proc 0755 0 0"
	echo "dir /sys 0755 0 0"
	echo "dir /media 0755 0 0"
	echo "file /init $agent 0755 0 0"
	ldd "$agent" | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }' | sort -u |
		while read -r lib; do
			[ -f "$lib" ] || continue
			d=$(dirname "$lib")
			while [ "$d" != / ]; do
				echo "dir $d 0755 0 0"
				d=$(dirname "$d")
			done | tac
			echo "file $lib $(readlink -f "$lib") 0755 0 0"
		done
} | awk '!seen[$0]++' >"$tmp/initramfs.list"
"$gen_init_cpio" "$tmp/initramfs.list" | gzip -9 >"$tree/initrd.gz"

cp "$kernel" "$tree/bzImage"
cp "$isolinux" "$ldlinux" "$tree/isolinux/"
cat >"$tree/isolinux/isolinux.cfg" <<CFG
DEFAULT $job
PROMPT 0
TIMEOUT 0
LABEL $job
  LINUX /bzImage
  INITRD /initrd.gz
  APPEND console=ttyS0 panic=-1 bmgnic.job=$job
CFG
if [ -n "$tenant" ]; then
	gzip -1 -c "$tenant" >"$tree/tenant.img.gz"
	sha256sum "$tenant" | cut -d' ' -f1 >"$tree/tenant.sha256"
fi
# The same system for a network boot, as a provisioner serves it over
# TFTP: the kernel, the initramfs and the iPXE script the provisioning
# network's DHCP names (bmgnic-platform --netboot-dir). The install job's
# tenant image is on the CD only.
mkdir "$tmp/netboot"
cp "$tree/bzImage" "$tree/initrd.gz" "$tmp/netboot/"
cat >"$tmp/netboot/$netboot_file" <<IPXE
#!ipxe
kernel bzImage console=ttyS0 panic=-1 bmgnic.job=$job BOOTIF=01-\${netX/mac:hexhyp}
initrd initrd.gz
boot
IPXE
xorriso -as mkisofs -quiet -o "$tmp/medium.iso" -V "BMGNIC_${job^^}" \
	-b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot \
	-boot-load-size 4 -boot-info-table "$tree" >"$tmp/xorriso.log" 2>&1 ||
	{ cat "$tmp/xorriso.log" >&2; die "xorriso failed"; }
rm -rf "$netboot"
mv "$tmp/netboot" "$netboot"
mv "$tmp/medium.iso" "$out"
# Keep this medium and the most recent other one of its job.
ls -1t "$BMGNIC_CACHE/images/$job"-*.iso 2>/dev/null | tail -n +3 | sed 's/\.iso$//' |
	while read -r old; do rm -rf "$old.iso" "$old.netboot"; done
log "$job medium ready: $out"
echo "$out"
