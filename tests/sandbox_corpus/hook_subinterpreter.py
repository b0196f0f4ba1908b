"""hook: run the forbidden code in a fresh subinterpreter, which has no Python audit hooks.

sys.addaudithook hooks are per interpreter; _xxsubinterpreters starts one without them.
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


SUB = f"""
import os, socket, subprocess, sys
out = []
try:
    fd = os.open({os.path.join(CANARY_DIR, "sub-pwned.txt")!r}, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"pwned")
    os.close(fd)
    with open({os.path.join(CANARY_DIR, "sub-open.txt")!r}, "w") as f:
        f.write("pwned")
    out.append("wrote into a host directory")
except Exception as exc:
    print("sub write:", exc)
try:
    s = socket.create_connection(("127.0.0.1", {TCP_PORT}), timeout=1)
    s.sendall(b"from a subinterpreter")
    s.close()
    out.append("connected to a TCP listener")
except Exception as exc:
    print("sub socket:", exc)
try:
    r = subprocess.run([sys.executable, "-c", "print(7*6)"], capture_output=True, timeout=2)
    if b"42" in r.stdout:
        out.append("started a process")
except Exception as exc:
    print("sub subprocess:", exc)
if out:
    print("ESCAPED: from a subinterpreter: " + "; ".join(out))
"""
try:
    import _xxsubinterpreters as interpreters

    interp = interpreters.create()
    interpreters.run_string(interp, SUB)
    interpreters.destroy(interp)
except Exception as exc:
    print(f"subinterpreter: {type(exc).__name__}: {exc}")
    wins = forbidden()
    if wins:
        print("ESCAPED: " + "; ".join(wins))
