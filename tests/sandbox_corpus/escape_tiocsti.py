"""escape: TIOCSTI/TIOCLINUX: push keystrokes into a controlling terminal (the operator's
shell would run them), on stdin/stdout/stderr and /dev/tty.

Only those descriptors: it never opens another user's terminal. A pty it makes itself is
used as a probe of whether the ioctl is filtered, not counted as an escape.
"""

import fcntl
import os
import sys
import termios

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

wins = []
targets = [(str(fd), fd) for fd in (0, 1, 2)]
try:
    targets.append(("/dev/tty", os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)))
except OSError as exc:
    print(f"/dev/tty: {exc.strerror}")
for label, fd in targets:
    try:
        for ch in b"id\n":
            fcntl.ioctl(fd, termios.TIOCSTI, bytes([ch]))
        wins.append(f"TIOCSTI into {label}")
    except OSError as exc:
        print(f"TIOCSTI {label}: {exc.strerror}")
    try:
        fcntl.ioctl(fd, 0x541C, bytes([12]))  # TIOCLINUX, TIOCL_GETSHIFTSTATE-ish probe
        wins.append(f"TIOCLINUX on {label}")
    except OSError as exc:
        print(f"TIOCLINUX {label}: {exc.strerror}")
try:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSTI, b"x")
    print("TIOCSTI works on a pty of my own (not an escape by itself)")
except OSError as exc:
    print(f"TIOCSTI on my own pty: {exc.strerror}")
if wins:
    print("ESCAPED: " + "; ".join(wins))
