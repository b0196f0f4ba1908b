"""bomb: fill memory-backed file systems outside /work (/dev/shm, /, /dev, the home directory):
a tmpfs there holds the host's RAM without the work directory's size limit. Writes 16 MiB
files up to 256 MiB in all, then deletes them; more than 64 MiB is an escape.
"""

import contextlib
import os

block = b"\xee" * (1 << 20)
total = 0
made = []
try:
    for directory in ("/dev/shm", "/", "/dev", "/root", "/usr", "/lib"):
        if total >= 256 << 20:
            break
        for n in range(16):
            if total >= 256 << 20:
                break
            path = os.path.join(directory, f"ponder-corpus-fill-{os.getpid()}-{n}")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError as exc:
                print(f"{directory}: {exc.strerror}")
                break
            made.append(path)
            try:
                for _ in range(16):
                    total += os.write(fd, block)
            except OSError as exc:
                print(f"{path}: {exc.strerror}")
                break
            finally:
                os.close(fd)
    print(f"wrote {total >> 20} MiB outside /work")
    if total > 64 << 20:
        print(
            f"ESCAPED: wrote {total >> 20} MiB outside the work directory: {sorted({os.path.dirname(p) for p in made})}"
        )
finally:
    for path in made:
        with contextlib.suppress(OSError):
            os.unlink(path)
