"""write: host files through os.open with O_CREAT/O_TRUNC/O_APPEND flags (no text mode string).

A guard that only looks at open()'s mode string sees an int here.
"""

import os

CANARY_DIR = "__CANARY_DIR__"
wins = []
for name, flags in (
    ("os-open-creat.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ("note.txt", os.O_WRONLY | os.O_APPEND),
    ("note.txt", os.O_RDWR),
    ("sub/inner.txt", os.O_WRONLY | os.O_TRUNC),
):
    path = os.path.join(CANARY_DIR, name)
    try:
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, b"PWNED")
        finally:
            os.close(fd)
    except OSError as exc:
        print(f"os.open({name}, {flags:#o}): {exc.strerror}")
        continue
    wins.append(f"{name} with flags {flags:#o}")
try:
    fd = os.open(os.path.join(CANARY_DIR, "via-fdopen.txt"), os.O_WRONLY | os.O_CREAT, 0o644)
    with open(fd, "w") as f:
        f.write("pwned")
    wins.append("open(fd) after os.open")
except OSError as exc:
    print(f"open(fd): {exc.strerror}")
if wins:
    print("ESCAPED: wrote host files: " + "; ".join(wins))
