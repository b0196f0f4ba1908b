"""escape: symlinks made inside /work that point out of it: write through a link to a host
directory, read through a link to a host file (a path check without realpath passes both).
"""

import os

CANARY_DIR = "__CANARY_DIR__"
SECRET_FILE = "__SECRET_FILE__"
wins = []
for link, target in (
    ("to-canary-file", os.path.join(CANARY_DIR, "via-symlink.txt")),
    ("to-canary-dir", CANARY_DIR),
    ("to-secret", SECRET_FILE),
    ("to-root", "/"),
):
    try:
        os.symlink(target, link)
    except OSError as exc:
        print(f"symlink {link}: {exc.strerror}")
try:
    with open("to-canary-file", "w") as f:
        f.write("pwned")
    wins.append("wrote a host file through a file symlink")
except OSError as exc:
    print(f"write through file link: {exc.strerror}")
try:
    with open("to-canary-dir/via-dir-symlink.txt", "w") as f:
        f.write("pwned")
    wins.append("wrote into a host directory through a directory symlink")
except OSError as exc:
    print(f"write through dir link: {exc.strerror}")
for path in ("to-secret", "to-root" + SECRET_FILE):
    try:
        with open(path, "rb") as f:
            wins.append(f"read through {path}: {f.read()[-200:]!r}")
            break
    except OSError as exc:
        print(f"read through {path}: {exc.strerror}")
if wins:
    print("ESCAPED: " + "; ".join(wins))
