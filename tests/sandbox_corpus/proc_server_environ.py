"""proc: the server's environment through /proc/<pid>/environ (its own pid, the parent's, and
the sandbox's pid 1).

Prints only the API key variable (and how many others there were).
"""

import os

SERVER_PID = int("__SERVER_PID__")
NAME = "__SECRET_ENV__"
found = []
for pid in dict.fromkeys((SERVER_PID, os.getppid(), 1)):
    path = f"/proc/{pid}/environ"
    try:
        with open(path, "rb") as f:
            entries = f.read().split(b"\0")
    except OSError as exc:
        print(f"{path}: {exc.strerror}")
        continue
    print(f"{path}: {len(entries)} variables")
    found += [
        f"{path}: {e.decode(errors='replace')}"
        for e in entries
        if e.startswith(NAME.encode() + b"=")
    ]
if found:
    print("ESCAPED: " + "; ".join(found))
