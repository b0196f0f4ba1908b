"""write: a file made in /work, moved out by rename, replace, shutil.move, link and renames.

Renames are not opens, so a guard on open() never sees them.
"""

import os
import shutil

CANARY_DIR = "__CANARY_DIR__"
# Where the directory is not there to begin with, whatever these create lands in a private
# file system of the sandbox, not on the host: only a directory that exists counts.
TARGET_IS_HERE = os.path.isdir(CANARY_DIR)
print("target directory visible:", TARGET_IS_HERE)
wins = []


def fresh(name):
    with open(name, "w") as f:
        f.write("pwned by " + name)
    return os.path.abspath(name)


for label, action in (
    ("os.rename", lambda: os.rename(fresh("a"), os.path.join(CANARY_DIR, "renamed.txt"))),
    (
        "os.replace over note.txt",
        lambda: os.replace(fresh("b"), os.path.join(CANARY_DIR, "note.txt")),
    ),
    ("shutil.move", lambda: shutil.move(fresh("c"), os.path.join(CANARY_DIR, "moved.txt"))),
    ("os.link", lambda: os.link(fresh("d"), os.path.join(CANARY_DIR, "linked.txt"))),
    ("os.renames", lambda: os.renames(fresh("e"), os.path.join(CANARY_DIR, "new", "e.txt"))),
    ("shutil.copytree", lambda: shutil.copytree(os.getcwd(), os.path.join(CANARY_DIR, "tree"))),
):
    try:
        action()
    except Exception as exc:
        print(f"{label}: {type(exc).__name__}: {exc}")
    else:
        wins.append(label)
if wins and TARGET_IS_HERE:
    print("ESCAPED: moved files out of the work directory with " + ", ".join(wins))
