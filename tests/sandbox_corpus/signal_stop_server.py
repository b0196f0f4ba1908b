"""signal: freeze the server with SIGSTOP (and SIGTSTP), a quieter denial of service than a kill."""

import os
import signal
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

SERVER_PID = int("__SERVER_PID__")
wins = []
for sig in (signal.SIGSTOP, signal.SIGTSTP):
    try:
        os.kill(SERVER_PID, sig)
    except OSError as exc:
        print(f"{sig.name}: {exc.strerror}")
    else:
        wins.append(sig.name)
try:
    os.killpg(SERVER_PID, signal.SIGSTOP)
    wins.append("SIGSTOP to its process group")
except OSError as exc:
    print(f"killpg SIGSTOP: {exc.strerror}")
if wins:
    print(f"ESCAPED: stopped pid {SERVER_PID} with " + ", ".join(wins))
