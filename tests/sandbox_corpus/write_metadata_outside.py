"""write: host files' metadata: chmod, chown, utime, xattrs, truncate on the canary files.

Metadata changes open nothing, so they pass a guard that only watches open().
"""

import os

CANARY_DIR = "__CANARY_DIR__"
note = os.path.join(CANARY_DIR, "note.txt")
wins = []
for label, action in (
    ("chmod 0777 on the directory", lambda: os.chmod(CANARY_DIR, 0o777)),
    ("chmod 0666 on a file", lambda: os.chmod(note, 0o666)),
    ("chown to nobody", lambda: os.chown(note, 65534, 65534)),
    ("utime to the epoch", lambda: os.utime(note, (0, 0))),
    ("setxattr user.pwned", lambda: os.setxattr(note, "user.pwned", b"1")),
    ("truncate", lambda: os.truncate(os.path.join(CANARY_DIR, "sub", "inner.txt"), 1)),
):
    try:
        action()
    except Exception as exc:
        print(f"{label}: {type(exc).__name__}: {exc}")
    else:
        wins.append(label)
if wins:
    print("ESCAPED: changed host file metadata: " + ", ".join(wins))
