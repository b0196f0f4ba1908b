"""read: the server's installed packages (site-packages, the venv, Ponder's own code).

Lists every site-packages it can find and tries to import third-party code from them.
"""

import glob
import importlib.util
import os
import sys
import sysconfig

dirs = set()
for scheme_key in ("purelib", "platlib"):
    dirs.add(sysconfig.get_paths()[scheme_key])
for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, "/usr", "/usr/local", "/root/.pyenv"}:
    dirs.update(glob.glob(f"{prefix}/lib/python3*/site-packages"))
    dirs.update(glob.glob(f"{prefix}/lib/python3*/dist-packages"))
    dirs.update(glob.glob(f"{prefix}/versions/*/lib/python3*/site-packages"))
dirs.update(glob.glob("/work/*/.venv/lib/python3*/site-packages"))
dirs.add("/usr/lib/python3/dist-packages")
found = []
for path in sorted(dirs):
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        print(f"{path}: {exc.strerror}")
        continue
    print(f"{path}: {len(names)} entries")
    if names:
        found.append(f"{path}: {names[:6]}")
        sys.path.append(path)
for module in ("ponder", "numpy", "llama_cpp", "pyseccomp", "pip", "setuptools"):
    try:
        spec = importlib.util.find_spec(module)
    except Exception as exc:
        print(f"find_spec({module}): {exc}")
        continue
    if spec is not None and spec.origin:
        found.append(f"can import {module} from {spec.origin}")
if found:
    print("ESCAPED: the server's packages are readable: " + "; ".join(found)[:800])
