"""process: start a child with subprocess (run, Popen, check_output; python and /bin/sh).

The child reports its pid and tries the trace database, to show it runs outside any guard.
"""

import subprocess
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

SECRET_FILE = "__SECRET_FILE__"
CHILD = (
    "import os; print('child ran as pid', os.getpid());"
    f"print(open({SECRET_FILE!r}, 'rb').read()[-200:])"
)
wins = []
for label, argv in (
    ("python", [sys.executable, "-c", CHILD]),
    ("sh", ["/bin/sh", "-c", "echo child ran as pid $$"]),
    ("env", ["/usr/bin/env", sys.executable, "-c", CHILD]),
):
    try:
        done = subprocess.run(argv, capture_output=True, timeout=2)
    except Exception as exc:
        print(f"subprocess.run {label}: {type(exc).__name__}: {exc}")
        continue
    out = (done.stdout + done.stderr).decode(errors="replace")
    print(f"{label} said: {out[-300:]}")
    if "child ran" in out:
        wins.append(f"{label}: {out.strip()[-200:]}")
try:
    p = subprocess.Popen([sys.executable, "-c", "print('popen child ran')"], stdout=subprocess.PIPE)
    out = p.communicate(timeout=2)[0]
    if b"child ran" in out:
        wins.append("Popen")
except Exception as exc:
    print(f"Popen: {type(exc).__name__}: {exc}")
if wins:
    print("ESCAPED: started processes: " + "; ".join(wins))
