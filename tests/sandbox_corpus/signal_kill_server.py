"""signal: kill the server process (SIGTERM, then SIGKILL) by pid, by process group, via libc."""

import os
import signal
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

SERVER_PID = int("__SERVER_PID__")
wins = []
try:
    os.kill(SERVER_PID, 0)
    print(f"pid {SERVER_PID} is visible")
except OSError as exc:
    print(f"probe pid {SERVER_PID}: {exc.strerror}")
for label, call in (
    ("os.kill SIGTERM", lambda: os.kill(SERVER_PID, signal.SIGTERM)),
    ("os.killpg SIGKILL", lambda: os.killpg(os.getpgid(SERVER_PID), signal.SIGKILL)),
    ("os.kill SIGKILL", lambda: os.kill(SERVER_PID, signal.SIGKILL)),
):
    try:
        call()
    except OSError as exc:
        print(f"{label}: {exc.strerror}")
    else:
        wins.append(label)
try:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.kill(SERVER_PID, signal.SIGKILL) == 0:
        wins.append("libc kill")
    else:
        print(f"libc kill: {os.strerror(ctypes.get_errno())}")
except Exception as exc:
    print(f"libc: {type(exc).__name__}: {exc}")
if wins:
    print(f"ESCAPED: signalled pid {SERVER_PID}: " + ", ".join(wins))
