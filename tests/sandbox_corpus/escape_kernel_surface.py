"""escape: the kernel's large attack surfaces, each a source of privilege escalations: bpf,
perf_event_open, userfaultfd, io_uring (which also bypasses syscall filters), add_key,
kcmp, fanotify. Makes one harmless object with each and closes it.
"""

import os
import struct
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402

NR = {
    "x86_64": {
        "bpf": 321,
        "perf_event_open": 298,
        "userfaultfd": 323,
        "io_uring_setup": 425,
        "add_key": 248,
        "kcmp": 312,
        "fanotify_init": 300,
    },
    "aarch64": {
        "bpf": 280,
        "perf_event_open": 241,
        "userfaultfd": 282,
        "io_uring_setup": 425,
        "add_key": 217,
        "kcmp": 272,
        "fanotify_init": 262,
    },
}.get(os.uname().machine, {})
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
opened = []


def try_call(label, *args):
    if label not in NR:
        return
    result = libc.syscall(NR[label], *args)
    if result < 0:
        print(f"{label}: {os.strerror(ctypes.get_errno())}")
        return
    opened.append(label)
    if label not in ("add_key", "kcmp"):
        os.close(result)


attr = ctypes.create_string_buffer(struct.pack("=IIIIII", 2, 4, 4, 1, 0, 0) + bytes(96))
try_call("bpf", 0, attr, 120)  # BPF_MAP_CREATE: a one-entry array map
perf = ctypes.create_string_buffer(struct.pack("=IIQ", 1, 128, 0) + bytes(112))
try_call("perf_event_open", perf, 0, -1, -1, 0)  # PERF_TYPE_SOFTWARE, cpu-clock, this process
try_call("userfaultfd", os.O_CLOEXEC)
params = ctypes.create_string_buffer(120)
try_call("io_uring_setup", 1, params)
try_call("add_key", b"user", b"ponder-corpus", b"x", 1, -2)  # into the process keyring
try_call("kcmp", os.getpid(), os.getpid(), 0, 0, 1)  # KCMP_FILE on our own stdout
try_call("fanotify_init", 0, 0)
if opened:
    print("ESCAPED: the kernel handed out " + ", ".join(opened))
