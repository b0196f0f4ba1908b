"""read: the server's working tree (/work/main/pyproject.toml and its sources).

Tries the known path, then walks up from the interpreter, sys.prefix and the cwd looking for a
pyproject.toml, and tries the .git directory and the sandbox's own source.
"""

import os
import sys

candidates = [
    "/work/main/pyproject.toml",
    "/work/main/src/ponder/sandbox/core.py",
    "/work/main/.git/config",
    "/work/main/.venv/pyvenv.cfg",
]
for start in {sys.executable, sys.prefix, sys.base_prefix, os.getcwd(), os.path.realpath(".")}:
    path = os.path.abspath(start)
    for _ in range(8):
        candidates.append(os.path.join(path, "pyproject.toml"))
        path = os.path.dirname(path)
found = []
for path in dict.fromkeys(candidates):
    try:
        with open(path, "rb") as f:
            data = f.read(200000)
    except OSError as exc:
        print(f"{path}: {exc.strerror}")
        continue
    first = data.split(b"\n")[0][:80]
    found.append(f"{path} ({len(data)} bytes, {first!r})")
try:
    names = os.listdir("/work/main")
    found.append(f"listed /work/main: {sorted(names)[:10]}")
except OSError as exc:
    print(f"/work/main: {exc.strerror}")
if found:
    print("ESCAPED: read the working tree: " + "; ".join(found)[:800])
