"""bomb: a memory bomb: raise RLIMIT_AS if allowed, then touch memory 32 MiB at a time.

Capped at 768 MiB; getting past 512 MiB (the address-space limit every run has) is an escape.
"""

import resource

try:
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print("raised RLIMIT_AS")
except (OSError, ValueError) as exc:
    print(f"RLIMIT_AS: {exc}")
held = []
chunk = 32 << 20
try:
    while len(held) * chunk < 768 << 20:
        held.append(b"\x01" * chunk)
except MemoryError:
    pass
total = len(held) * chunk
print(f"held {total >> 20} MiB")
if total > 512 << 20:
    print(f"ESCAPED: held {total >> 20} MiB")
