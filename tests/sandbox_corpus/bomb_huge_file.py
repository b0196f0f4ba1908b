"""bomb: a huge file in /work: ignore SIGXFSZ, raise RLIMIT_FSIZE if allowed, write 1 MiB
blocks, and start a new file each time one is refused, up to 128 MiB in all. Beating the
16 MiB file limit or the 64 MiB work directory is an escape.
"""

import resource
import signal

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
try:
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print("raised RLIMIT_FSIZE")
except (OSError, ValueError) as exc:
    print(f"RLIMIT_FSIZE: {exc}")
block = b"\xff" * (1 << 20)
total, biggest, files = 0, 0, 0
while total < 128 << 20 and files < 64:
    size = 0
    try:
        with open(f"big-{files}", "wb") as f:
            while total < 128 << 20:
                f.write(block)
                f.flush()
                size += len(block)
                total += len(block)
    except OSError as exc:
        print(f"file {files} stopped at {size >> 20} MiB: {exc.strerror}")
        if size == 0:
            break
    files += 1
    biggest = max(biggest, size)
print(f"wrote {total >> 20} MiB in {files} files, the biggest {biggest >> 20} MiB")
if total > 64 << 20 or biggest > 16 << 20:
    print(f"ESCAPED: wrote {total >> 20} MiB (biggest file {biggest >> 20} MiB)")
