"""bomb: as many empty files in /work as time allows (inodes cost the host kernel memory that
no byte limit counts), then as many directories. Reports an escape past a million entries.
"""

import os
import time

start = time.monotonic()
made = 0
try:
    os.mkdir("d")
    while made < 1_000_000:
        os.close(os.open(f"d/{made}", os.O_CREAT | os.O_WRONLY, 0o600))
        made += 1
        if made % 50_000 == 0:
            print(f"{made} files after {time.monotonic() - start:.2f} s", flush=True)
except OSError as exc:
    print(f"stopped after {made} files: {exc.strerror}", flush=True)
if made >= 1_000_000:
    print(f"ESCAPED: made {made} files")
