"""hook: monkeypatch os.path.abspath (which a path guard calls at run time), then act.

Every path the guard checks is made to look as if it were inside the work directory.
"""

import os
import posixpath
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


here = os.getcwd()
real_abspath = posixpath.abspath


def inside(path):
    return os.path.join(here, "harmless")


os.path.abspath = inside
posixpath.abspath = inside
print("patched abspath; it now says", os.path.abspath("/etc/passwd"))
wins = forbidden()
os.path.abspath = posixpath.abspath = real_abspath
if wins:
    print("ESCAPED: " + "; ".join(wins))
