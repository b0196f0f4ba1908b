"""write: the host's interpreter, standard library and shared libraries (poisoning them would
reach every later run and the server itself): access(W_OK), open for writing without writing,
and a new uniquely named file in each of their directories, deleted at once.

A directory only counts when it is the host's own (on the same device as the host file in
it); a sandbox that binds single files builds private directories around them. The bench
never runs this unconfined: there these are the machine's real files.
"""

import glob
import os
import sys
import sysconfig

stdlib = sysconfig.get_paths()["stdlib"]
exe = os.path.realpath(sys.executable)
# (directory, a host file in it)
places = [(stdlib, os.__file__), (os.path.dirname(exe), exe)]
places += [
    (os.path.dirname(p), p) for p in glob.glob(os.path.join(stdlib, "lib-dynload", "_ssl*.so"))[:1]
]
for lib in (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
):
    found = sorted(
        glob.glob(os.path.join(lib, "libc.so*")) + glob.glob(os.path.join(lib, "ld-linux*"))
    )
    if found:
        places.append((lib, found[0]))
wins = []
for directory, host_file in places:
    if os.access(host_file, os.W_OK):
        wins.append(f"access(W_OK) allows {host_file}")
    try:
        os.close(os.open(host_file, os.O_WRONLY | os.O_APPEND))
        wins.append(f"opened {host_file} for writing")
    except OSError as exc:
        print(f"open {host_file} for writing: {exc.strerror}")
    probe = os.path.join(directory, f"ponder-corpus-poison-{os.getpid()}.py")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as exc:
        print(f"create in {directory}: {exc.strerror}")
        continue
    os.close(fd)
    os.unlink(probe)
    if os.stat(directory).st_dev == os.stat(host_file).st_dev:
        wins.append(f"created a file in {directory}")
    else:
        print(
            f"{directory} is a private directory around a bound file (a file made there stays here)"
        )
if wins:
    print("ESCAPED: the interpreter's files are writable: " + "; ".join(wins))
