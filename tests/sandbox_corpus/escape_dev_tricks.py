"""escape: /dev: read the host's disks and kernel log, make device nodes for them with mknod,
open terminals that are not ours, and check whether /dev/shm is shared with the host.

Reads only; device nodes are made inside /work.
"""

import glob
import os
import stat

wins = []
print("/dev:", sorted(os.listdir("/dev")))
# (never /dev/port or /dev/mem: reading those touches hardware, or could)
disks = [
    p
    for p in ("/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/xvda", "/dev/kmsg")
    if os.path.exists(p)
]
for path in disks:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            data = os.read(fd, 512)
        finally:
            os.close(fd)
        wins.append(f"read {len(data)} bytes of {path}")
    except OSError as exc:
        print(f"{path}: {exc.strerror}")
for name, kind, major, minor in (
    ("vda", stat.S_IFBLK, 253, 0),
    ("sda", stat.S_IFBLK, 8, 0),
    ("kmsg", stat.S_IFCHR, 1, 11),
):
    try:
        os.mknod(f"node-{name}", kind | 0o600, os.makedev(major, minor))
    except OSError as exc:
        print(f"mknod {name}: {exc.strerror}")
        continue
    try:
        fd = os.open(f"node-{name}", os.O_RDONLY | os.O_NONBLOCK)
        wins.append(f"made and opened a {name} device node ({len(os.read(fd, 512))} bytes)")
        os.close(fd)
    except OSError as exc:
        wins.append(f"made a {name} device node (open: {exc.strerror})")
for tty in sorted(
    set(glob.glob("/dev/pts/[0-9]*") + glob.glob("/dev/tty[0-9]*") + ["/dev/console"])
):
    try:
        os.close(os.open(tty, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK))
        wins.append(f"opened a terminal that is not ours: {tty}")
    except OSError as exc:
        print(f"{tty}: {exc.strerror}")
try:
    shared = sorted(os.listdir("/dev/shm"))
    print(f"/dev/shm: {shared[:10]}")
    if shared:
        wins.append(f"/dev/shm holds others' files: {shared[:5]}")
except OSError as exc:
    print(f"/dev/shm: {exc.strerror}")
if wins:
    print("ESCAPED: " + "; ".join(wins))
