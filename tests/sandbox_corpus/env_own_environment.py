"""env: the server's API key in this program's own environment: os.environ, os.environb,
getenv through libc, the C environ array, /proc/self/environ; names only, plus the key.
"""

import ctypes
import os

NAME = "__SECRET_ENV__"
found = []
print("os.environ names:", sorted(os.environ))
if NAME in os.environ:
    found.append(f"os.environ: {NAME}={os.environ[NAME]}")
if NAME.encode() in os.environb:
    found.append("os.environb has it")
try:
    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_char_p
    value = libc.getenv(NAME.encode())
    if value is not None:
        found.append(f"libc getenv: {value.decode()}")
    environ = ctypes.POINTER(ctypes.c_char_p).in_dll(libc, "environ")
    names = []
    for i in range(4096):
        if not environ[i]:
            break
        names.append(environ[i].split(b"=")[0].decode(errors="replace"))
        if environ[i].startswith(NAME.encode() + b"="):
            found.append(f"C environ: {environ[i].decode()}")
    print("C environ names:", names)
except Exception as exc:
    print(f"libc: {type(exc).__name__}: {exc}")
try:
    with open("/proc/self/environ", "rb") as f:
        for entry in f.read().split(b"\0"):
            if entry.startswith(NAME.encode() + b"="):
                found.append(f"/proc/self/environ: {entry.decode()}")
except OSError as exc:
    print(f"/proc/self/environ: {exc.strerror}")
if found:
    print("ESCAPED: found the server's key: " + "; ".join(dict.fromkeys(found)))
