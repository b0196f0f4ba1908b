"""escape: ../ traversal out of /work, relative to the cwd and to a directory descriptor,
for reading a host file and for creating one in a host directory.
"""

import os

CANARY_DIR = "__CANARY_DIR__"
SECRET_FILE = "__SECRET_FILE__"
UP = "../" * 24
wins = []
for path in (
    UP + SECRET_FILE.lstrip("/"),
    "./" + UP + "." + SECRET_FILE,
    "/work/" + UP + SECRET_FILE.lstrip("/"),
):
    try:
        with open(path, "rb") as f:
            wins.append(f"read {path[:40]}...: {f.read()[-200:]!r}")
            break
    except OSError as exc:
        print(f"read {path[:50]}: {exc.strerror}")
target = UP + os.path.join(CANARY_DIR, "via-dotdot.txt").lstrip("/")
try:
    with open(target, "w") as f:
        f.write("pwned")
    wins.append("wrote via ../ with open()")
except OSError as exc:
    print(f"open(w) via ../: {exc.strerror}")
try:
    here = os.open(".", os.O_RDONLY)
    fd = os.open(
        target.replace("via-dotdot", "via-dotdot-at"), os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=here
    )
    os.write(fd, b"pwned")
    os.close(fd)
    wins.append("wrote via ../ with openat")
except OSError as exc:
    print(f"openat via ../: {exc.strerror}")
if wins:
    print("ESCAPED: " + "; ".join(wins))
