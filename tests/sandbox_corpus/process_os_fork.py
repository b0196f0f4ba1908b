"""process: os.fork and os.forkpty; the child reports through a pipe and by its exit status."""

import os
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

wins = []
r, w = os.pipe()
for label, call in (("os.fork", os.fork), ("os.forkpty", lambda: os.forkpty()[0])):
    sys.stdout.flush()
    try:
        pid = call()
    except OSError as exc:
        print(f"{label}: {exc.strerror}")
        continue
    if pid == 0:
        os.write(w, b"child ran\n")
        os._exit(7)
    status = os.waitpid(pid, 0)[1]
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 7:
        wins.append(f"{label} child {pid}")
if wins:
    print("ESCAPED: forked: " + ", ".join(wins))
