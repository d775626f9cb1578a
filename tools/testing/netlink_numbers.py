#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Checks that the numbers of the bmgnic family in wire/src/genl.rs, which
the RME module serves and the daemon uses, are the ones of the uAPI header
ynl_gen_c generates from the spec.

Usage: netlink_numbers.py UAPI_HEADER RUST_SOURCE
"""

import re
import sys


def c_enums(text):
    """Every enumerator of the header with its value."""
    values = {}
    for body in re.findall(r"enum\s*\w*\s*\{(.*?)\}", text, re.S):
        nxt = 0
        for item in body.split(","):
            item = re.sub(r"/\*.*?\*/", "", item, flags=re.S).strip()
            if not item:
                continue
            m = re.match(r"(\w+)\s*(?:=\s*(.+))?$", item, re.S)
            if not m:
                continue
            name, expr = m.group(1), m.group(2)
            if expr is not None:
                try:
                    nxt = int(expr, 0)
                except ValueError:
                    continue  # __X_MAX - 1 and the like
            values[name] = nxt
            nxt += 1
    return values


def rust_consts(text):
    """`NAME -> value` of wire/src/genl.rs, named as the header names them."""
    out = {}
    stack = []
    for line in text.splitlines():
        m = re.match(r"\s*pub(?:\(crate\))? mod (\w+) \{", line)
        if m:
            stack.append(m.group(1))
            continue
        if re.match(r"\s*\}\s*$", line) and stack:
            stack.pop()
            continue
        m = re.match(r"\s*pub(?:\(crate\))? const (\w+): u\d+ = (\w+);", line)
        if not m or not stack:
            continue
        name, value = m.group(1), int(m.group(2), 0)
        if stack[0] == "cmd":
            out[f"BMGNIC_CMD_{name}"] = value
        elif stack[0] == "attr" and len(stack) == 2:
            space = {"matches": "match"}.get(stack[1], stack[1]).upper()
            out[f"BMGNIC_A_{space}_{name}"] = value
        elif stack[0] in ("event_kind", "meter_unit"):
            out[f"BMGNIC_{stack[0].upper()}_{name}"] = value
    return out


def main():
    header, source = sys.argv[1], sys.argv[2]
    c = c_enums(open(header).read())
    rust = rust_consts(open(source).read())
    bad = [f"{k}: module {v}, spec {c.get(k)}" for k, v in sorted(rust.items()) if c.get(k) != v]
    wanted = [k for k in c if k.startswith(("BMGNIC_CMD_", "BMGNIC_A_"))
              and not k.startswith("__") and not k.endswith("_MAX")]
    missing = [k for k in wanted if k not in rust]
    for line in bad:
        print(f"mismatch: {line}", file=sys.stderr)
    for k in missing:
        print(f"not in the module: {k}", file=sys.stderr)
    if bad or missing or not rust:
        sys.exit(1)
    print(f"ok: {len(rust)} commands, attributes and enum values match the spec")


if __name__ == "__main__":
    main()
