"""ctypes: fork through libc: the fork() wrapper, and raw syscall() for fork and clone(SIGCHLD).

Bypasses os.fork and everything Python wraps around it; the child exits 7 at once.
"""

import os
import signal
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

NUMBERS = {"x86_64": {"fork": 57, "clone": 56}, "aarch64": {"clone": 220}}
libc = ctypes.CDLL(None, use_errno=True)
nr = NUMBERS.get(os.uname().machine, {})
calls = [("libc fork()", libc.fork)]
if "fork" in nr:
    calls.append(("syscall(fork)", lambda: libc.syscall(nr["fork"])))
if "clone" in nr:
    calls.append(
        ("syscall(clone, SIGCHLD)", lambda: libc.syscall(nr["clone"], signal.SIGCHLD, 0, 0, 0, 0))
    )
wins = []
for label, call in calls:
    sys.stdout.flush()
    pid = call()
    if pid == 0:
        os._exit(7)
    if pid < 0:
        print(f"{label}: {os.strerror(ctypes.get_errno())}")
        continue
    status = os.waitpid(pid, 0)[1]
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 7:
        wins.append(f"{label} -> child {pid}")
if wins:
    print("ESCAPED: started processes via ctypes: " + "; ".join(wins))
