"""process: call _posixsubprocess.fork_exec directly, and subprocess with sys.audit silenced.

fork_exec is the C routine under subprocess and raises no audit event; replacing sys.audit
makes subprocess's own Python-level audit call a no-op.
"""

import _posixsubprocess
import os
import subprocess
import sys

CODE = "print('ESCAPED: a fork_exec child ran')"
wins = []
errpipe_read, errpipe_write = os.pipe()
exe = os.fsencode(sys.executable)
common = [
    [exe, b"-c", CODE.encode()],
    [exe],
    True,
    (errpipe_write,),
    None,
    None,
    -1,
    -1,
    -1,
    -1,
    -1,
    -1,
    errpipe_read,
    errpipe_write,
    False,
    False,
]
variants = {
    "3.11/3.12 (23 arguments)": [*common, -1, None, None, None, -1, None, False],
    "3.13+ (22 arguments)": [*common, -1, None, None, None, -1, None],
    "3.10 (22 arguments)": [*common, None, None, None, -1, None, False],
}
sys.stdout.flush()
for label, args in variants.items():
    try:
        pid = _posixsubprocess.fork_exec(*args)
    except TypeError as exc:
        print(f"{label}: {exc}")
        continue
    except Exception as exc:
        print(f"{label}: {type(exc).__name__}: {exc}")
        break
    status = os.waitpid(pid, 0)[1]
    print(f"{label}: child {pid} exited with {status}")
    break
os.close(errpipe_write)
os.close(errpipe_read)
sys.audit = lambda *args, **kwargs: None
try:
    out = subprocess.run([sys.executable, "-c", "print(6*7)"], capture_output=True, timeout=2)
    if b"42" in out.stdout:
        print("ESCAPED: subprocess ran with sys.audit replaced")
except Exception as exc:
    print(f"subprocess with sys.audit replaced: {type(exc).__name__}: {exc}")
