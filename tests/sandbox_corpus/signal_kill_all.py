"""signal: kill(-1, SIGKILL): every process the sandbox can signal, which outside a PID
namespace means every process of the server's user.

Never run this unconfined (the bench skips it in the weak mode).
"""

import os
import signal
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

try:
    os.kill(-1, 0)
    print("ESCAPED: kill(-1, 0) found processes outside this program to signal")
except OSError as exc:
    print(f"kill(-1, 0): {exc.strerror}")
for sig in (signal.SIGKILL,):
    try:
        os.kill(-1, sig)
        print(f"kill(-1, {sig.name}) succeeded")
    except OSError as exc:
        print(f"kill(-1, {sig.name}): {exc.strerror}")
libc = ctypes.CDLL(None, use_errno=True)
if libc.kill(-1, signal.SIGKILL) == 0:
    print("libc kill(-1, SIGKILL) succeeded")
else:
    print(f"libc kill(-1): {os.strerror(ctypes.get_errno())}")
