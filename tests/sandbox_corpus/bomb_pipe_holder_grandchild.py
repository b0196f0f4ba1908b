"""bomb: a grandchild in its own session that keeps the output pipes open and sleeps past the
wall limit, so that a server waiting for end-of-file waits on it. Gives up after 8 s.
"""

import os
import sys
import time

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

libc = ctypes.CDLL(None, use_errno=True)
sys.stdout.flush()
for label, fork in (("os.fork", os.fork), ("libc fork", libc.fork)):
    try:
        pid = fork()
    except OSError as exc:
        print(f"{label}: {exc.strerror}")
        continue
    if pid == 0:
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        for _ in range(16):
            time.sleep(0.5)
            os.write(1, b".")
        os.write(1, b"\nESCAPED: still holding the pipe 8 s later\n")
        os._exit(0)
    if pid > 0:
        print(f"{label}: grandchild on its way; parent leaving")
        sys.exit(0)
    print(f"{label}: {os.strerror(ctypes.get_errno())}")
try:
    pid = os.posix_spawn(
        sys.executable, [sys.executable, "-c", "import time; time.sleep(8)"], {}, setsid=True
    )
    print(f"posix_spawn holder {pid}; leaving")
except OSError as exc:
    print(f"posix_spawn: {exc.strerror}")
