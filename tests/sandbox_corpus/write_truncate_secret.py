"""write: the trace database itself: truncate, overwrite in place, O_TRUNC, utime, chmod.

Destroying the server's data is as good as reading it, for an attacker.
"""

import os

SECRET_FILE = "__SECRET_FILE__"
wins = []


def overwrite():
    with open(SECRET_FILE, "r+b") as f:
        f.seek(100)
        f.write(b"PWNED")


def o_trunc():
    os.close(os.open(SECRET_FILE, os.O_WRONLY | os.O_TRUNC))


for label, action in (
    ("open(r+b) overwrite", overwrite),
    ("os.truncate", lambda: os.truncate(SECRET_FILE, 0)),
    ("os.open O_TRUNC", o_trunc),
    ("os.utime", lambda: os.utime(SECRET_FILE, (0, 0))),
    ("os.chmod", lambda: os.chmod(SECRET_FILE, 0o777)),
):
    try:
        action()
    except Exception as exc:
        print(f"{label}: {type(exc).__name__}: {exc}")
    else:
        wins.append(label)
if wins:
    print("ESCAPED: tampered with the trace database: " + ", ".join(wins))
