"""read: the host's /etc (passwd, shadow, hostname, resolver) and /sys, by every route.

The sandbox mounts no /etc and no /sys: any of these opening means host files show through.
Contents are summarised (first line of passwd, sizes), never dumped.
"""

import os

found = []
for path in ("/etc/passwd", "/etc/group", "/etc/hostname", "/etc/resolv.conf", "/etc/hosts"):
    try:
        with open(path, "rb") as f:
            data = f.read(65536)
        first = data.splitlines()[0][:60] if data else b""
        found.append(f"{path} ({len(data)} bytes, first line {first!r})")
    except OSError as exc:
        print(f"open {path}: {exc.strerror}")
for path in ("/etc/shadow", "/etc/ssh/ssh_host_ed25519_key", "/etc/machine-id"):
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            size = len(os.read(fd, 65536))
        finally:
            os.close(fd)
        found.append(f"{path} ({size} bytes)")
    except OSError as exc:
        print(f"os.open {path}: {exc.strerror}")
for path in ("/etc", "/sys/class/net", "/sys/fs/cgroup", "/var", "/home", "/opt"):
    try:
        names = os.listdir(path)
        if names:
            found.append(f"listed {path}: {len(names)} entries")
    except OSError as exc:
        print(f"listdir {path}: {exc.strerror}")
try:
    import pwd

    users = [u.pw_name for u in pwd.getpwall()]
    if users:
        found.append(f"pwd.getpwall() saw {len(users)} users: {users[:5]}")
    else:
        print("pwd.getpwall(): no users")
except Exception as exc:
    print(f"pwd: {type(exc).__name__}: {exc}")
try:
    import socket

    host = socket.gethostname()
    print(f"hostname: {host}")
except Exception as exc:
    print(f"gethostname: {exc}")
if found:
    print("ESCAPED: read host files: " + "; ".join(found))
