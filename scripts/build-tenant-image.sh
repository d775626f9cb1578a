#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The tenant OS image: a raw disk for the server's NVMe drive, booted by
# the firmware (SeaBIOS) with no host directory shared in:
#
#   sector 0    syslinux's MBR
#   p1 (32 MiB) FAT16, active: syslinux, the rack kernel, syslinux.cfg
#   p2 (rest)   ext4: Debian (mmdebstrap, minbase and a few tools), bmgnic.ko,
#               and the tenant's init (tools/testing/vm/tenant-init.sh)
#   p3 (128 MiB) swap, which the kernel also resumes from (resume=): the
#               tenant hibernates into it when the RME checkpoints it,
#               asked by qemu-ga (guest-suspend-disk) on the board's
#               virtio-serial port org.qemu.guest_agent.0
#
# Built without mounting anything (mkfs.fat/mke2fs write at offsets, mtools
# and syslinux work on the image file), so it needs no loop device. Cached
# by its inputs under $BMGNIC_CACHE/images; prints the image's path.
#
# Usage: build-tenant-image.sh KERNEL_BUILD_DIR BMGNIC_KO [ADDRESS/PREFIX]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BMGNIC_STAGE=image

[ $# -ge 2 ] || die "usage: build-tenant-image.sh KERNEL_BUILD_DIR BMGNIC_KO [ADDRESS/PREFIX]"
kernel="$1/arch/x86/boot/bzImage"
module=$2
address=${3:-10.10.1.1/24}
[ -f "$kernel" ] || die "no kernel at $kernel"
[ -f "$module" ] || die "no module at $module"

# The image's Debian: the host's release, from Debian's mirror.
. /etc/os-release
suite=${BMGNIC_TENANT_SUITE:-$VERSION_CODENAME}
mirror=${BMGNIC_TENANT_MIRROR:-http://deb.debian.org/debian}
packages=iproute2,iputils-ping,ethtool,iperf3,kmod,procps,pciutils,acpid,qemu-guest-agent
disk_mib=512
boot_start=2048
boot_sectors=65536
root_start=$((boot_start + boot_sectors))
swap_sectors=262144
swap_start=$((disk_mib * 2048 - swap_sectors))
root_sectors=$((swap_start - root_start))

vm="$BMGNIC_TOP/tools/testing/vm"
key=$({
	echo "$suite $mirror $packages $disk_mib $address"
	files_hash "$0" "$vm/tenant-init.sh" "$vm/tenant-poweroff.sh" "$vm/agent.sh"
	cat "$kernel" "$module"
} | input_hash)
out="$BMGNIC_CACHE/images/tenant-$key.img"
if [ -e "$out" ]; then
	echo "$out"
	exit 0
fi

for tool in mmdebstrap mkfs.fat syslinux mcopy mke2fs mkswap sfdisk; do
	command -v "$tool" >/dev/null || die "$tool not found: run scripts/setup.sh packages"
done
mbr=/usr/lib/syslinux/mbr/mbr.bin
[ -f "$mbr" ] || die "$mbr not found: run scripts/setup.sh packages"

log "building the tenant image ($suite, key $key)"
mkdir -p "$BMGNIC_CACHE/images"
tmp=$(mktemp -d "$BMGNIC_CACHE/images/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Documentation, manuals and locales are left out: the disk is small.
mmdebstrap --quiet --variant=minbase --include="$packages" \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	"$suite" "$tmp/root.tar" "$mirror" >"$tmp/mmdebstrap.log" 2>&1 ||
	{ tail -20 "$tmp/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
root="$tmp/root"
mkdir "$root"
tar -C "$root" --numeric-owner -xf "$tmp/root.tar"
rm -f "$tmp/root.tar"
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/*

install -D -m 755 "$vm/tenant-init.sh" "$root/usr/local/sbin/bmgnic-init"
install -D -m 755 "$vm/tenant-poweroff.sh" "$root/usr/local/sbin/bmgnic-poweroff"
install -D -m 644 "$vm/agent.sh" "$root/usr/local/lib/bmgnic/agent.sh"
install -D -m 644 "$module" "$root/lib/modules/bmgnic/bmgnic.ko"
mkdir -p "$root/etc/bmgnic" "$root/etc/acpi/events"
echo "$address" >"$root/etc/bmgnic/address"
echo "tenant-$key" >"$root/etc/bmgnic/build-id"
echo tenant >"$root/etc/hostname"
printf '/dev/nvme0n1p2 / ext4 defaults 0 1\n/dev/nvme0n1p3 none swap sw 0 0\n' \
	>"$root/etc/fstab"
printf 'event=button/power.*\naction=/usr/local/sbin/bmgnic-poweroff\n' \
	>"$root/etc/acpi/events/powerbtn"

img="$tmp/disk.img"
truncate -s "${disk_mib}M" "$img"
sfdisk --quiet "$img" <<EOF
label: dos
start=$boot_start, size=$boot_sectors, type=e, bootable
start=$root_start, size=$root_sectors, type=83
start=$swap_start, size=$swap_sectors, type=82
EOF
dd if="$mbr" of="$img" bs=440 count=1 conv=notrunc status=none
mkfs.fat -F 16 -n BMGNICBOOT -h "$boot_start" --offset "$boot_start" "$img" \
	$((boot_sectors / 2)) >"$tmp/mkfs.fat.log" 2>&1 ||
	{ cat "$tmp/mkfs.fat.log" >&2; die "mkfs.fat failed"; }
syslinux --offset $((boot_start * 512)) --install "$img"
cat >"$tmp/syslinux.cfg" <<EOF
DEFAULT tenant
PROMPT 0
TIMEOUT 0
LABEL tenant
  LINUX /bzImage
  APPEND root=/dev/nvme0n1p2 rootfstype=ext4 rootwait rw resume=/dev/nvme0n1p3 resumewait console=ttyS0 panic=-1 init=/usr/local/sbin/bmgnic-init
EOF
mcopy -i "$img@@$((boot_start * 512))" "$kernel" ::/bzImage
mcopy -i "$img@@$((boot_start * 512))" "$tmp/syslinux.cfg" ::/syslinux.cfg
mke2fs -q -F -t ext4 -L tenant-root -d "$root" -E offset=$((root_start * 512)) \
	"$img" $((root_sectors / 2))k
truncate -s $((swap_sectors * 512)) "$tmp/swap"
mkswap -q -L tenant-swap "$tmp/swap"
dd if="$tmp/swap" of="$img" bs=512 seek="$swap_start" conv=notrunc,sparse status=none
mv "$img" "$out"
# Keep this image and the most recent other one.
ls -1t "$BMGNIC_CACHE"/images/tenant-*.img 2>/dev/null | tail -n +3 | xargs -r rm -f
log "tenant image ready: $out"
echo "$out"
