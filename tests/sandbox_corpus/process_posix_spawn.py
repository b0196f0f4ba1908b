"""process: os.posix_spawn, posix_spawnp and os.spawnv (vfork-style clone under the hood)."""

import os
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

ARGV = [sys.executable, "-c", "print('ESCAPED: a spawned child ran')"]
for label, call in (
    ("posix_spawn", lambda: os.posix_spawn(sys.executable, ARGV, {})),
    ("posix_spawnp", lambda: os.posix_spawnp("python3", ["python3", *ARGV[1:]], {})),
    ("posix_spawn setsid", lambda: os.posix_spawn(sys.executable, ARGV, {}, setsid=True)),
    ("spawnv", lambda: os.spawnv(os.P_NOWAIT, sys.executable, ARGV)),
):
    sys.stdout.flush()
    try:
        pid = call()
    except Exception as exc:
        print(f"{label}: {type(exc).__name__}: {exc}")
        continue
    try:
        print(f"{label}: pid {pid}, status {os.waitpid(pid, 0)[1]}")
    except OSError as exc:
        print(f"{label}: wait: {exc.strerror}")
