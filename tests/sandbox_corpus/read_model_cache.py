"""read: the model cache (platformdirs' user cache, ~/.cache/ponder) and other home directories.

Finds home directories every way it can (HOME, pwd, ~, /root, /home/*), then lists and reads
what is under .cache/ponder, .cache, .local/share/ponder and .ssh. File names and sizes only.
"""

import glob
import os

homes = set()
for guess in (os.environ.get("HOME"), os.path.expanduser("~"), "/root", *glob.glob("/home/*")):
    if guess and guess != "~":
        homes.add(guess)
try:
    import pwd

    homes.add(pwd.getpwuid(os.getuid()).pw_dir)
except Exception as exc:
    print(f"pwd: {type(exc).__name__}: {exc}")
xdg = os.environ.get("XDG_CACHE_HOME")
candidates = [xdg] if xdg else []
for home in sorted(homes):
    candidates += [
        f"{home}/.cache/ponder",
        f"{home}/.cache/ponder/models",
        f"{home}/.cache",
        f"{home}/.cache/huggingface",
        f"{home}/.local/share/ponder",
        f"{home}/.ssh",
        f"{home}/.config",
    ]
found = []
for path in candidates:
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        print(f"{path}: {exc.strerror}")
        continue
    found.append(f"{path}: {names[:8]}")
    for name in names[:4]:
        full = os.path.join(path, name)
        try:
            with open(full, "rb") as f:
                found.append(f"read {len(f.read(4096))} bytes of {full}")
        except OSError:
            pass
for home in sorted(homes):
    try:
        names = [n for n in os.listdir(home) if n != ".pyenv"]
        print(f"{home}: {names[:20]}")
    except OSError as exc:
        print(f"{home}: {exc.strerror}")
if found:
    print("ESCAPED: the model cache / home is readable: " + "; ".join(found)[:800])
