"""read: descriptors inherited from the server (sockets, files, the seccomp memfd, pipes).

Probes every descriptor number up to 1024, says what each is, and reads what can be read.
"""

import os
import stat

found = []
for fd in range(3, 1024):
    try:
        st = os.fstat(fd)
    except OSError:
        continue
    kind = stat.S_IFMT(st.st_mode)
    what = {
        stat.S_IFREG: "file",
        stat.S_IFSOCK: "socket",
        stat.S_IFIFO: "pipe",
        stat.S_IFDIR: "directory",
        stat.S_IFCHR: "char device",
    }.get(kind, hex(kind))
    detail = f"fd {fd}: {what}, inode {st.st_ino}, {st.st_size} bytes"
    if kind == stat.S_IFREG:
        try:
            detail += f", starts {os.pread(fd, 64, 0)!r}"
        except OSError as exc:
            detail += f", unreadable ({exc.strerror})"
    elif kind == stat.S_IFDIR:
        try:
            detail += f", lists {os.listdir(fd)[:10]}"
        except OSError as exc:
            detail += f", unlistable ({exc.strerror})"
    found.append(detail)
for fd in (0, 1, 2):
    try:
        st = os.fstat(fd)
        print(f"fd {fd}: mode {oct(st.st_mode)}, rdev {st.st_rdev}")
    except OSError as exc:
        print(f"fd {fd}: {exc.strerror}")
for listing in ("/dev/fd", "/proc/self/fd"):
    try:
        print(f"{listing}: {os.listdir(listing)}")
    except OSError as exc:
        print(f"{listing}: {exc.strerror}")
if found:
    print("ESCAPED: the sandbox inherited descriptors: " + "; ".join(found)[:800])
