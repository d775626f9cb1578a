#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The RME daemon's OpenFlow agent, over an in-memory module, driven by a
real controller: os-ken with live_app.py, on a loopback port. Checks the
handshake, PACKET_IN, flows, meters, stats, errors, timeouts and the
agent's reconnection (live_app.py says what). Then os-ken goes and a
hostile controller takes the port: garbage, truncated and oversized
messages get OpenFlow errors and the connection stays; a stream that
cannot be framed is dropped and the agent comes back. Prints KTAP.

Usage: agent_live.py VENV_PYTHON MEMORY_AGENT
"""

import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recv_msg(conn):
    """One OpenFlow message from `conn` (header and body)."""
    head = b""
    while len(head) < 8:
        chunk = conn.recv(8 - len(head))
        if not chunk:
            return None
        head += chunk
    length = struct.unpack("!H", head[2:4])[0]
    body = b""
    while len(body) < length - 8:
        chunk = conn.recv(length - 8 - len(body))
        if not chunk:
            return None
        body += chunk
    return head + body


def until_type(conn, kind, xid=None):
    """Messages until one of `kind` (and `xid`), which it returns."""
    while True:
        m = recv_msg(conn)
        if m is None or (m[1] == kind and (xid is None or struct.unpack("!I", m[4:8])[0] == xid)):
            return m


def hostile(port, cases):
    """A controller that misbehaves on the agent's next connection."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    srv.settimeout(20)
    conn, _ = srv.accept()
    conn.settimeout(10)
    until_type(conn, 0)  # the agent's HELLO
    conn.sendall(struct.pack("!BBHI", 4, 0, 8, 1))
    rng = random.Random(7)
    errors = 0
    for i in range(200):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120)))
        kind = rng.choice([13, 14, 15, 18, 29, 99, rng.randrange(256)])
        conn.sendall(struct.pack("!BBHI", 4, kind, 8 + len(body), 1000 + i) + body)
    # A barrier after the garbage: everything before it was answered.
    conn.sendall(struct.pack("!BBHI", 4, 20, 8, 4242))
    seen = []
    while True:
        m = recv_msg(conn)
        if m is None or (m[1] == 21 and struct.unpack("!I", m[4:8])[0] == 4242):
            break
        seen.append(m[1])
    errors = seen.count(1)
    cases.append(("200 random messages: errors, no crash, the barrier still answered",
                  m is not None, f"{errors} errors, {len(seen) - errors} other replies"))
    conn.sendall(struct.pack("!BBHI", 4, 2, 12, 77) + b"ping")
    echo = until_type(conn, 3, 77)
    cases.append(("echo after the garbage", echo is not None and echo[8:] == b"ping"))
    # A length below the header's: the stream cannot be framed; the agent
    # drops it and connects again.
    conn.sendall(struct.pack("!BBHI", 4, 2, 4, 78))
    t0 = time.time()
    dropped = recv_msg(conn) is None
    conn.close()
    srv.settimeout(15)
    try:
        again, _ = srv.accept()
        back = until_type(again, 0) is not None
        again.close()
    except OSError:
        back = False
    cases.append(("an unframeable stream is dropped and the agent reconnects", dropped and back,
                  f"back after {time.time() - t0:.1f} s"))
    srv.close()


def main():
    python, agent = sys.argv[1], sys.argv[2]
    port = free_port()
    work = tempfile.mkdtemp(prefix="bmgnic-of-")
    results = os.path.join(work, "results.tap")
    env = dict(os.environ, BMGNIC_OF_RESULTS=results)
    logs = {name: open(os.path.join(work, f"{name}.log"), "w") for name in ("osken", "agent")}
    procs = []
    try:
        procs.append(subprocess.Popen([python, os.path.join(HERE, "osken_run.py"), str(port),
                                       os.path.join(HERE, "live_app.py")], env=env,
                                      stdout=logs["osken"], stderr=subprocess.STDOUT,
                                      start_new_session=True))
        time.sleep(2)
        procs.append(subprocess.Popen([agent, f"tcp:127.0.0.1:{port}"], stdout=logs["agent"],
                                      stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.time() + 120
        while not os.path.exists(results) and time.time() < deadline:
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.5)
        extra = []
        if os.path.exists(results):
            os.killpg(procs[0].pid, signal.SIGTERM)
            procs[0].wait()
            try:
                hostile(port, extra)
            except OSError as e:
                extra.append(("the hostile controller's session", False, repr(e)))
            extra.append(("the agent survived it all", procs[1].poll() is None))
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            p.wait()
    if not os.path.exists(results):
        print("TAP version 13\n1..1")
        for name in logs:
            for line in open(os.path.join(work, f"{name}.log")).read().splitlines()[-20:]:
                print(f"# {name}: {line}")
        print("not ok 1 the controller's checks finished")
        sys.exit(1)
    lines = [l for l in open(results).read().splitlines() if not re.match(r"(TAP version|1\.\.)", l)]
    n = sum(1 for l in lines if re.match(r"(not )?ok ", l))
    print("TAP version 13")
    print(f"1..{n + len(extra)}")
    print("\n".join(lines))
    for i, (name, ok, *detail) in enumerate(extra, n + 1):
        if detail and detail[0]:
            print(f"# {detail[0]}")
        print(f"{'ok' if ok else 'not ok'} {i} {name}")
    print(f"# logs in {work}")
    failed = any(l.startswith("not ok") for l in lines) or not all(ok for _, ok, *_ in extra)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
