"""write: into a host directory through a directory descriptor (openat, mkdirat, symlinkat).

Opens the directory itself, then creates names relative to it, so no path names the target.
"""

import os

CANARY_DIR = "__CANARY_DIR__"
wins = []
try:
    dfd = os.open(CANARY_DIR, os.O_RDONLY | os.O_DIRECTORY)
except OSError as exc:
    print(f"open the directory: {exc.strerror}")
    dfd = None
try:
    pfd = os.open(CANARY_DIR, os.O_PATH | os.O_DIRECTORY)
except OSError as exc:
    print(f"O_PATH open: {exc.strerror}")
    pfd = None
for label, fd in (("O_RDONLY", dfd), ("O_PATH", pfd)):
    if fd is None:
        continue
    try:
        out = os.open(f"openat-{label}.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, b"pwned")
        os.close(out)
        wins.append(f"openat via {label}")
    except OSError as exc:
        print(f"openat via {label}: {exc.strerror}")
    try:
        os.mkdir(f"mkdirat-{label}", dir_fd=fd)
        wins.append(f"mkdirat via {label}")
    except OSError as exc:
        print(f"mkdirat via {label}: {exc.strerror}")
    try:
        os.symlink("/", f"symlinkat-{label}", dir_fd=fd)
        wins.append(f"symlinkat via {label}")
    except OSError as exc:
        print(f"symlinkat via {label}: {exc.strerror}")
    try:
        with open("payload", "w") as f:
            f.write("pwned")
        os.rename("payload", f"renameat-{label}", dst_dir_fd=fd)
        wins.append(f"renameat via {label}")
    except OSError as exc:
        print(f"renameat via {label}: {exc.strerror}")
if dfd is not None:
    try:
        os.fchdir(dfd)
        with open("fchdir.txt", "w") as f:
            f.write("pwned")
        wins.append("fchdir then a relative open")
    except OSError as exc:
        print(f"fchdir: {exc.strerror}")
if wins:
    print("ESCAPED: wrote into the host directory: " + ", ".join(wins))
