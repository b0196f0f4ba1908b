"""ctypes: clone() flag tricks a filter might miss: CLONE_PARENT, namespaces, CLONE_THREAD in
the high word, CLONE_THREAD without CLONE_SIGHAND, and clone3 with a struct.
"""

import os
import signal
import struct
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

CLONE_VM, CLONE_SIGHAND, CLONE_THREAD = 0x100, 0x800, 0x10000
CLONE_PARENT, CLONE_NEWUSER, CLONE_NEWPID = 0x8000, 0x10000000, 0x20000000
machine = os.uname().machine
CLONE = {"x86_64": 56, "aarch64": 220}.get(machine)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
wins = []


def settle(label, pid):
    if pid == 0:
        os._exit(7)
    if pid < 0:
        print(f"{label}: {os.strerror(ctypes.get_errno())}")
        return
    try:
        status = os.waitpid(pid, os.WNOHANG if "PARENT" in label else 0)[1]
        print(f"{label}: child {pid} status {status}")
    except ChildProcessError:
        print(f"{label}: child {pid} is someone else's")
    wins.append(f"{label} -> {pid}")


if CLONE is not None:
    for label, flags in (
        ("CLONE_PARENT", CLONE_PARENT | signal.SIGCHLD),
        ("CLONE_NEWUSER|CLONE_NEWPID", CLONE_NEWUSER | CLONE_NEWPID | signal.SIGCHLD),
        ("CLONE_THREAD << 32", (CLONE_THREAD << 32) | signal.SIGCHLD),
        ("CLONE_THREAD alone", CLONE_THREAD | signal.SIGCHLD),
        (
            "CLONE_THREAD|CLONE_SIGHAND without CLONE_VM",
            CLONE_THREAD | CLONE_SIGHAND | signal.SIGCHLD,
        ),
    ):
        sys.stdout.flush()
        settle(label, libc.syscall(CLONE, ctypes.c_ulong(flags), 0, 0, 0, 0))
for size, label in ((64, "clone3 v0"), (88, "clone3 v2")):
    args = bytearray(size)
    struct.pack_into("=QQQQQ", args, 0, 0, 0, 0, 0, signal.SIGCHLD)  # flags..exit_signal
    buf = (ctypes.c_char * size).from_buffer(args)
    sys.stdout.flush()
    settle(label, libc.syscall(435, buf, ctypes.c_size_t(size)))
if wins:
    print("ESCAPED: clone variants made processes: " + "; ".join(wins))
