"""bomb: 256 MiB to stdout as fast as possible (buffered, then raw writes to fd 1), to grow
the server's memory or stall it. Reports on stderr if it was never stopped.
"""

import os
import sys

block = b"A" * (1 << 20)
written = 0
try:
    for _ in range(128):
        sys.stdout.buffer.write(block)
        written += len(block)
    sys.stdout.flush()
    for _ in range(128):
        written += os.write(1, block)
except OSError as exc:
    sys.stderr.write(f"stopped after {written >> 20} MiB: {exc}\n")
else:
    sys.stderr.write(f"ESCAPED: wrote {written >> 20} MiB to stdout unhindered\n")
