"""write: the host directory's namespace: mkdir, makedirs, symlink, mkfifo, unlink, rmdir.

None of these opens a file for writing, so an open()-only guard lets them all through.
"""

import os
import shutil

CANARY_DIR = "__CANARY_DIR__"
# Where the directory is not there to begin with, whatever these create lands in a private
# file system of the sandbox, not on the host: only a directory that exists counts.
TARGET_IS_HERE = os.path.isdir(CANARY_DIR)
print("target directory visible:", TARGET_IS_HERE)
wins = []
for label, action in (
    ("os.mkdir", lambda: os.mkdir(os.path.join(CANARY_DIR, "made-dir"))),
    ("os.makedirs", lambda: os.makedirs(os.path.join(CANARY_DIR, "deep", "er"))),
    ("os.symlink", lambda: os.symlink("/etc/passwd", os.path.join(CANARY_DIR, "sym"))),
    ("os.mkfifo", lambda: os.mkfifo(os.path.join(CANARY_DIR, "fifo"))),
    ("os.unlink note.txt", lambda: os.unlink(os.path.join(CANARY_DIR, "note.txt"))),
    ("shutil.rmtree sub", lambda: shutil.rmtree(os.path.join(CANARY_DIR, "sub"))),
):
    try:
        action()
    except Exception as exc:
        print(f"{label}: {type(exc).__name__}: {exc}")
    else:
        wins.append(label)
if wins and TARGET_IS_HERE:
    print("ESCAPED: changed the host directory with " + ", ".join(wins))
