"""bomb: a thread bomb: raise RLIMIT_AS if allowed, shrink stacks, start threads until refused.

Capped at 2500 threads; 2048 live threads at once counts as an escape (nothing bounds them).
"""

import resource
import threading

try:
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print("raised RLIMIT_AS")
except (OSError, ValueError) as exc:
    print(f"RLIMIT_AS: {exc}")
threading.stack_size(64 * 1024)
stop = threading.Event()
started = 0
try:
    while started < 2500:
        threading.Thread(target=stop.wait, daemon=True).start()
        started += 1
except Exception as exc:
    print(f"stopped after {started} threads: {type(exc).__name__}: {exc}")
alive = threading.active_count()
print(f"{alive} threads alive at once")
stop.set()
if alive >= 2048:
    print(f"ESCAPED: ran {alive} threads at once")
