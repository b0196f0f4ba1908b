"""bomb: hoard host memory outside the address-space limit: memfds (and pipes) filled with
write(), never mapped, so RLIMIT_AS never sees them. Keeps up to 60 memfds of up to 16 MiB
(960 MiB at most); holding more than 512 MiB (the memory limit every run has) is an escape.
"""

import fcntl
import os

block = b"\xab" * (1 << 20)
held, fds = 0, []
for n in range(60):
    try:
        fd = os.memfd_create(f"hoard-{n}")
    except OSError as exc:
        print(f"memfd_create {n}: {exc.strerror}")
        break
    fds.append(fd)
    try:
        for _ in range(16):
            held += os.write(fd, block)
    except OSError as exc:
        print(f"memfd {n}: {exc.strerror} after {held >> 20} MiB")
        if exc.strerror and "space" in exc.strerror:
            break
piped = 0
try:
    r, w = os.pipe()
    fds += [r, w]
    fcntl.fcntl(w, 1031, 1 << 20)  # F_SETPIPE_SZ
    os.set_blocking(w, False)
    piped = os.write(w, block)
except OSError as exc:
    print(f"pipe: {exc.strerror}")
print(f"holding {held >> 20} MiB in {len(fds)} descriptors, {piped >> 10} KiB in a pipe")
if held > 512 << 20:
    print(f"ESCAPED: held {held >> 20} MiB of host memory outside RLIMIT_AS")
