"""escape: hard links between /work and host files: link the trace database in to read it,
link a host file in and append to it through the link.
"""

import os

CANARY_DIR = "__CANARY_DIR__"
SECRET_FILE = "__SECRET_FILE__"
wins = []
try:
    os.link(SECRET_FILE, "secret-link")
    with open("secret-link", "rb") as f:
        wins.append(f"read the trace database through a hard link: {f.read()[-200:]!r}")
except OSError as exc:
    print(f"link the trace database: {exc.strerror}")
try:
    os.link(os.path.join(CANARY_DIR, "note.txt"), "note-link")
    with open("note-link", "a") as f:
        f.write("pwned through a hard link")
    wins.append("appended to a host file through a hard link")
except OSError as exc:
    print(f"link a host file: {exc.strerror}")
try:
    with open("mine", "w") as f:
        f.write("pwned")
    os.link("mine", os.path.join(CANARY_DIR, "linked-out"))
    wins.append("linked a file out into a host directory")
except OSError as exc:
    print(f"link out: {exc.strerror}")
if wins:
    print("ESCAPED: " + "; ".join(wins))
