"""proc: the server's command line through /proc/<pid>/cmdline, where servers put API keys,
and a scan of every visible process for an --api-key argument.
"""

import os

SERVER_PID = int("__SERVER_PID__")
found = []
try:
    with open(f"/proc/{SERVER_PID}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    found.append(
        f"pid {SERVER_PID} argv tail: {[a.decode(errors='replace')[:80] for a in argv[-4:]]}"
    )
except OSError as exc:
    print(f"/proc/{SERVER_PID}/cmdline: {exc.strerror}")
try:
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    print(f"{len(pids)} processes visible")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        for i, arg in enumerate(argv[:-1]):
            if arg == b"--api-key":
                found.append(f"pid {pid} --api-key {argv[i + 1].decode(errors='replace')}")
except OSError as exc:
    print(f"/proc: {exc.strerror}")
if found:
    print("ESCAPED: " + "; ".join(found))
