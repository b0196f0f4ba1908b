"""bomb: 256 MiB to stderr (unbuffered os.write on fd 2, then through sys.stderr), the
stream a server is likeliest to log in full. Reports on stdout if it was never stopped.
"""

import os
import sys

block = b"E" * (1 << 20)
written = 0
try:
    for _ in range(128):
        written += os.write(2, block)
    for _ in range(128):
        sys.stderr.buffer.write(block)
        written += len(block)
    sys.stderr.flush()
except OSError as exc:
    print(f"stopped after {written >> 20} MiB: {exc}")
else:
    print(f"ESCAPED: wrote {written >> 20} MiB to stderr unhindered")
