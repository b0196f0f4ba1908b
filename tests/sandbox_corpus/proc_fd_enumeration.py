"""proc: the server's open descriptors through /proc/<pid>/fd: reopen its files (the trace
database, its shared memory) and directories, and read their fdinfo.
"""

import os
import re
import stat

SERVER_PID = int("__SERVER_PID__")
found = []
for pid in dict.fromkeys((SERVER_PID, "self")):
    base = f"/proc/{pid}/fd"
    try:
        fds = sorted(os.listdir(base), key=int)
    except OSError as exc:
        print(f"{base}: {exc.strerror}")
        continue
    for fd in fds:
        path = f"{base}/{fd}"
        try:
            target = os.readlink(path)
            st = os.stat(path)
        except OSError:
            continue
        print(f"{path} -> {target}")
        if pid == "self":
            continue
        try:
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    data = f.read(1 << 20)
                text = " ".join(re.findall(r"[ -~]{12,}", data.decode("latin-1")))
                found.append(f"reopened {target}: {text[-300:]}")
            elif stat.S_ISDIR(st.st_mode):
                found.append(f"listed {target}: {os.listdir(path)[:8]}")
        except OSError as exc:
            print(f"reopen {path}: {exc.strerror}")
if found:
    print("ESCAPED: through the server's descriptors: " + "; ".join(found))
