# SPDX-License-Identifier: GPL-2.0
"""The BMGNIC wire constants for the Python tests, read from their one
source, the Rust files of `wire/src/` (register map, NC-SI framing, OEM
layouts), so that a test cannot disagree with the driver, the RME module
and the model.

    import wire
    wire.regs.guest.RX_TAIL        # 0x1c, in a queue pair's block
    wire.regs.guest.STAT_NAMES     # ("tx_packets", ...)
    wire.ncsi.AEN_PACKET_TYPE      # 0xff
    wire.ncsi_oem.RECORD_LEN["FlowRecord"]   # 124

Reads `pub const NAME: TYPE = EXPR;` items, module by module (`pub mod`
nests); EXPR may be an integer literal, a string array, or an arithmetic
expression of literals and constants of the same file (`1 << 3`,
`MTU_MAX as usize + 18`). A constant this reader cannot evaluate (a
function call, a struct) is left out: referring to it fails loudly.
"""

import ast
import os
import re
import types

WIRE_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "wire", "src")

_CONST = re.compile(r"pub const (\w+): ([^=]+?) = (.+?);", re.S)
_MOD = re.compile(r"pub mod (\w+) \{")
_OPS = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Load, ast.Add, ast.Sub,
        ast.Mult, ast.FloorDiv, ast.Mod, ast.LShift, ast.RShift, ast.BitOr, ast.BitAnd, ast.BitXor,
        ast.USub, ast.Invert, ast.List, ast.Tuple)


def _evaluate(expr, scope):
    """The value of a Rust constant expression, or None."""
    expr = re.sub(r"\bas (usize|u8|u16|u32|u64|i32)\b", "", expr)
    expr = re.sub(r"(?<=[0-9a-fA-F])_(?=[0-9a-fA-F])", "", expr)
    expr = re.sub(r"(\b0x[0-9a-fA-F]+|\b\d+)(u8|u16|u32|u64|usize)\b", r"\1", expr)
    expr = re.sub(r"([^\w])/([^\w])", r"\1//\2", expr)
    expr = re.sub(r"\s+", " ", expr).strip().rstrip(",")
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return None
    if not all(isinstance(node, _OPS) for node in ast.walk(tree)):
        return None
    try:
        value = eval(compile(tree, "<wire>", "eval"), {"__builtins__": {}}, dict(scope))
    except (NameError, TypeError, ZeroDivisionError):
        return None
    return tuple(value) if isinstance(value, list) else value


def _strip_comments(text):
    return re.sub(r"//[^\n]*", "", text)


def _flat(namespace):
    """Every constant of `namespace` and its modules, by its last name."""
    out = {}
    for name, value in vars(namespace).items():
        out.update(_flat(value) if isinstance(value, types.SimpleNamespace) else {name: value})
    return out


def _read(path, extra=()):
    """The constants of one file, as nested namespaces; `extra` holds those
    of the files it refers to with `crate::` paths."""
    extra = dict(extra)
    text = _strip_comments(open(path).read())
    root = types.SimpleNamespace()
    stack = [(root, 0)]
    scopes = {}
    depth = 0
    pos = 0
    events = sorted([(m.start(), "mod", m) for m in _MOD.finditer(text)]
                    + [(m.start(), "const", m) for m in _CONST.finditer(text)]
                    + [(m.start(), c, None) for m in re.finditer(r"[{}]", text) for c in m.group()])
    for at, kind, m in events:
        if at < pos:
            continue
        if kind == "mod":
            module = types.SimpleNamespace()
            setattr(stack[-1][0], m.group(1), module)
            depth += 1
            stack.append((module, depth))
            pos = m.end()
        elif kind == "const":
            scope = scopes.setdefault(id(stack[-1][0]), {})
            # Constants of enclosing modules and other files are reached
            # through `super::` and `crate::` paths: resolved by last name.
            visible = dict(extra)
            for module, _ in stack:
                visible.update(scopes.get(id(module), {}))
            expr = re.sub(r"\b(?:crate|super|self)(?:::\w+)*::(\w+)", r"\1", m.group(3))
            value = _evaluate(expr, visible)
            if value is not None:
                scope[m.group(1)] = value
                setattr(stack[-1][0], m.group(1), value)
            pos = m.end()
        elif kind == "{":
            depth += 1
        elif kind == "}":
            if stack[-1][1] == depth and len(stack) > 1:
                stack.pop()
            depth -= 1
    return root


def _record_lengths(path, scope):
    """`Record::LEN` of each OEM record type, by type name."""
    text = _strip_comments(open(path).read())
    found = re.findall(r"impl Record for (\w+) \{\s*const LEN: usize = (.+?);", text, re.S)
    return {name: _evaluate(expr, scope) for name, expr in found}


ncsi = _read(os.path.join(WIRE_SRC, "ncsi.rs"))
ncsi_oem = _read(os.path.join(WIRE_SRC, "ncsi_oem.rs"), _flat(ncsi))
ncsi_oem.RECORD_LEN = _record_lengths(os.path.join(WIRE_SRC, "ncsi_oem.rs"), _flat(ncsi_oem))
regs = _read(os.path.join(WIRE_SRC, "regs.rs"))
platform = _read(os.path.join(WIRE_SRC, "platform.rs"))


def _selftest():
    """Spot checks against values the documentation states."""
    assert regs.guest.ID_MAGIC == 0x424D474E, regs.guest.ID_MAGIC
    assert regs.PCI_VENDOR_ID == 0x1AF4 and regs.PCI_DEVICE_ID == 0x10F0
    assert regs.guest.STAT_NAMES[0] == "tx_packets"
    assert len(regs.guest.STAT_NAMES) == regs.guest.STAT_COUNT
    assert ncsi.ETHERTYPE == 0x88F8 and ncsi.AEN_PACKET_TYPE == 0xFF
    assert ncsi.cmd.OEM == 0x50 and ncsi_oem.CMD_OEM == 0x50
    assert ncsi.MAX_FRAME_LEN == 14 + 16 + 1480 + 4
    assert ncsi_oem.RECORD_LEN["OemHeader"] == 4 and ncsi_oem.RECORD_LEN["FlowRecord"] == 124
    assert None not in ncsi_oem.RECORD_LEN.values(), ncsi_oem.RECORD_LEN


if __name__ == "__main__":
    _selftest()
    for name in ("ncsi", "ncsi_oem", "regs"):
        print(name, vars(globals()[name]))
