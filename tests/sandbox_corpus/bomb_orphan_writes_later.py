"""bomb: an orphan that outlives the run: fork, setsid, fork again, detach from the output
pipes, and a second and a half later write into a host directory and call a listener.

settle: 2.0
"""

import os
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

CANARY_DIR = "__CANARY_DIR__"
PORT = int("__TCP_PORT__")
LATER = f"""
import os, socket, time
time.sleep(1.5)
try:
    fd = os.open({os.path.join(CANARY_DIR, "orphan-was-here.txt")!r}, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"written after the run ended")
    os.close(fd)
except OSError:
    pass
try:
    socket.create_connection(("127.0.0.1", {PORT}), timeout=1).sendall(b"orphan says hi")
except OSError:
    pass
"""


def daemonize():
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    exec(LATER)
    os._exit(0)


libc = ctypes.CDLL(None, use_errno=True)
sys.stdout.flush()
for label, fork in (("os.fork", os.fork), ("libc fork", libc.fork)):
    try:
        pid = fork()
    except OSError as exc:
        print(f"{label}: {exc.strerror}")
        continue
    if pid == 0:
        daemonize()
    if pid > 0:
        print(f"{label}: orphan parent {pid}; leaving")
        sys.exit(0)
    print(f"{label}: {os.strerror(ctypes.get_errno())}")
try:
    null = os.open(os.devnull, os.O_RDWR)
    pid = os.posix_spawn(
        sys.executable,
        [sys.executable, "-c", LATER],
        {},
        setsid=True,
        file_actions=[(os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, null, 2)],
    )
    print(f"posix_spawn: orphan {pid}; leaving")
except OSError as exc:
    print(f"posix_spawn: {exc.strerror}")
