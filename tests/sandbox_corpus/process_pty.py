"""process: a child on a pseudo-terminal with pty.fork and pty.spawn.

os.openpty itself is harmless inside a private /dev/pts; the fork is what must fail.
"""

import os
import pty
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

try:
    master, slave = os.openpty()
    print(f"openpty: {os.ttyname(slave)}")
except OSError as exc:
    print(f"openpty: {exc.strerror}")
sys.stdout.flush()
try:
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-c", "print('pty child ran')"])
    out = b""
    try:
        while chunk := os.read(fd, 1024):
            out += chunk
    except OSError:
        pass
    os.waitpid(pid, 0)
    if b"pty child ran" in out:
        print("ESCAPED: pty.fork started a child")
except Exception as exc:
    print(f"pty.fork: {type(exc).__name__}: {exc}")
sys.stdout.flush()
try:
    status = pty.spawn([sys.executable, "-c", "print('ESCAPED: pty.spawn child ran')"])
    print(f"pty.spawn status {status}")
except Exception as exc:
    print(f"pty.spawn: {type(exc).__name__}: {exc}")
