"""signal: kill the parent (in a plain subprocess, the server itself) and pid 1.

Never run this unconfined: its parent would be the caller (the bench skips it in the weak mode).
"""

import os
import signal
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

parent = os.getppid()
print(f"my pid {os.getpid()}, parent {parent}, process group {os.getpgrp()}")
for target in dict.fromkeys((parent, 1)):
    try:
        os.kill(target, 0)
    except OSError as exc:
        print(f"probe {target}: {exc.strerror}")
        continue
    try:
        os.kill(target, signal.SIGKILL)
    except OSError as exc:
        print(f"SIGKILL {target}: {exc.strerror}")
        continue
    if target > 2:  # pid 1 or 2 here is the sandbox's own init, not the server
        print(f"ESCAPED: sent SIGKILL to my parent, pid {target}")
    else:
        print(f"sent SIGKILL to pid {target}")
