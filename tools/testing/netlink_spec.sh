#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Checks Documentation/netlink/specs/bmgnic.yaml with the kernel's own ynl
# code generator: the spec must validate against the genetlink schema and
# generate the kernel policy source, its header and the uAPI header.
#
# Usage: tools/testing/netlink_spec.sh KSRC
set -euo pipefail
ksrc=${1:?usage: netlink_spec.sh KSRC}
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# ynl_gen_c finds the schema next to the spec's directory and the tree root
# by its MAINTAINERS file: give it a tree of that shape.
mkdir -p "$work/Documentation/netlink/specs"
touch "$work/MAINTAINERS"
cp "$ksrc"/Documentation/netlink/genetlink*.yaml "$work/Documentation/netlink/"
cp "$top/Documentation/netlink/specs/bmgnic.yaml" "$work/Documentation/netlink/specs/"
gen="$ksrc/tools/net/ynl/pyynl/ynl_gen_c.py"
spec="$work/Documentation/netlink/specs/bmgnic.yaml"
for mode in "kernel --source" "kernel --header" "uapi --header"; do
	out="$work/$(echo "$mode" | tr -d ' -')"
	# shellcheck disable=SC2086 # mode holds two words on purpose
	timeout 120 python3 "$gen" --spec "$spec" --mode $mode -o "$out"
	[ -s "$out" ] || { echo "ynl_gen_c --mode $mode produced nothing" >&2; exit 1; }
	echo "ok: ynl_gen_c --mode $mode: $(wc -l <"$out") lines"
done
grep -q 'BMGNIC_CMD_FLOW_ADD' "$work/uapiheader"
grep -q 'GENL_ADMIN_PERM' "$work/kernelsource"
python3 "$top/tools/testing/netlink_numbers.py" "$work/uapiheader" "$top/wire/src/genl.rs"
