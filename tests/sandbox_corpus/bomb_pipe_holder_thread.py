"""bomb: a non-daemon thread holding a duplicate of stdout and stderr open while the main
thread finishes, ignoring SIGTERM: the interpreter cannot exit and the pipes stay open.
Gives up after 30 s.
"""

import os
import signal
import threading
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
out, err = os.dup(1), os.dup(2)


def hold():
    for _ in range(60):
        time.sleep(0.5)
        os.write(out, b".")
    os.write(err, b"\nESCAPED: the thread held the pipes for 30 s\n")


threading.Thread(target=hold).start()
print("main thread done", flush=True)
