"""bomb: an endless CPU loop that ignores SIGXCPU, SIGTERM and SIGINT and tries to raise
RLIMIT_CPU; it reports an escape if it ever gets 8 s of CPU (the run allows 2).
"""

import resource
import signal
import time

for sig in (signal.SIGXCPU, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, signal.SIG_IGN)
try:
    resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print("raised RLIMIT_CPU", flush=True)
except (OSError, ValueError) as exc:
    print(f"RLIMIT_CPU: {exc}", flush=True)
n = 0
while time.process_time() < 8:
    n += 1
print(f"ESCAPED: spun for {time.process_time():.1f} s of CPU ({n} iterations)")
