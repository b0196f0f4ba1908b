"""process: run shell commands with os.system and os.popen.

Both need /bin/sh and a fork; the command echoes a token back if it ran.
"""

import os
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

wins = []
try:
    status = os.system("echo shell ran > os-system.out")
    print(f"os.system returned {status}")
    if status == 0 and os.path.exists("os-system.out"):
        wins.append("os.system ran /bin/sh")
except Exception as exc:
    print(f"os.system: {type(exc).__name__}: {exc}")
try:
    with os.popen("echo popen ran; id") as pipe:
        out = pipe.read()
    print(f"os.popen said {out!r}")
    if "popen ran" in out:
        wins.append(f"os.popen: {out.strip()}")
except Exception as exc:
    print(f"os.popen: {type(exc).__name__}: {exc}")
try:
    status = os.system(f"{sys.executable} -c \"print('python via os.system')\"")
    if status == 0:
        wins.append("os.system ran the interpreter")
except Exception as exc:
    print(f"os.system python: {type(exc).__name__}: {exc}")
if wins:
    print("ESCAPED: " + "; ".join(wins))
