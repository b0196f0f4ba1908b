"""bomb: sleep far past the wall limit, ignoring every signal that can be ignored, re-arming
if woken. Reports an escape if it ever wakes 60 s later.
"""

import signal
import time

for sig in (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGALRM,
    signal.SIGUSR1,
    signal.SIGPIPE,
    signal.SIGXCPU,
):
    signal.signal(sig, signal.SIG_IGN)
start = time.monotonic()
print("sleeping", flush=True)
while time.monotonic() - start < 60:
    time.sleep(1)
print("ESCAPED: slept 60 s")
