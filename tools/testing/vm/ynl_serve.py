#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The kernel's ynl library serving requests in a rack VM, so that a
scenario's requests cost one Python start, not one each: under TCG a
`cli.py` call spends about 2.3 s starting Python, importing the library
and parsing the spec, and the request itself about 0.1 s.

Each request is what one `cli.py --output-json --do OP --json ARGS` (or
`--dump`) call does, and its answer is what that call would print and
its exit status: the reply as the CLI's JSON, or the NlError's text
(extack message included) and 1.

Usage: ynl_serve.py SPEC DIR. DIR holds two FIFOs, `req` and `resp`.
A client writes one JSON request {"op", "kind": "do"|"dump", "args"}
to `req` and closes it, then reads the JSON answer {"rc", "out"} from
`resp`. One client at a time (the rack's agent runs one command at a
time).
"""

import errno
import json
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pyynl.lib import NlError, YnlFamily  # noqa: E402
from pyynl.lib.ynl import GenlProtocol  # noqa: E402

# How long an answer waits for its client to open `resp`: one that gave
# up meanwhile must not leave the server blocked for every later one.
ANSWER_WAIT = 30


def encode(o):
    """The CLI's JSON of what the library returns (its YnlEncoder)."""
    if isinstance(o, bytes):
        return o.hex()
    if isinstance(o, set):
        return sorted(o)
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


class Server:
    def __init__(self, spec):
        self.spec = spec
        self.family = None

    def connect(self):
        """The family, found again: the library caches the ids of every
        generic netlink family once per process, and a module loaded again
        registers its family under a new id."""
        GenlProtocol.genl_family_name_to_id = {}
        self.family = YnlFamily(self.spec, "")

    def request(self, op, kind, args):
        if self.family is None:
            self.connect()
        if kind == "dump":
            return self.family.dump(op, args)
        return self.family.do(op, args, None)

    def answer(self, req):
        op, kind, args = req["op"], req.get("kind", "do"), req.get("args") or {}
        try:
            try:
                reply = self.request(op, kind, args)
            except NlError as e:
                # Genetlink's own ENOENT (no extack) for a family id that
                # went with an unloaded module: look it up and try again.
                if e.error != errno.ENOENT or e.nl_msg.extack:
                    raise
                self.connect()
                reply = self.request(op, kind, args)
            return {"rc": 0, "out": json.dumps(reply, default=encode)}
        except NlError as e:
            return {"rc": 1, "out": str(e)}
        except Exception:
            # What the CLI would print on its way out; the next request
            # starts from a new lookup.
            self.family = None
            return {"rc": 1, "out": traceback.format_exc()}


def send(path, text):
    """Writes `text` to FIFO `path` once a reader has it open."""
    deadline = time.time() + ANSWER_WAIT
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            if e.errno != errno.ENXIO or time.time() > deadline:
                print(f"ynl_serve: no reader for the answer: {e}", file=sys.stderr, flush=True)
                return
            time.sleep(0.01)
    try:
        os.set_blocking(fd, True)
        data = text.encode()
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


def main():
    spec, fifo_dir = sys.argv[1], sys.argv[2]
    server = Server(spec)
    req_path, resp_path = os.path.join(fifo_dir, "req"), os.path.join(fifo_dir, "resp")
    print("ynl_serve: ready", flush=True)
    while True:
        with open(req_path) as f:
            text = f.read()
        try:
            answer = server.answer(json.loads(text))
        except (ValueError, KeyError, TypeError) as e:
            answer = {"rc": 2, "out": f"ynl_serve: bad request {text!r}: {e}"}
        send(resp_path, json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
