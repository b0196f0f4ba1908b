"""process: multiprocessing with each start method (fork, spawn, forkserver).

The target is print (picklable by reference), so the child needs nothing from this program.
"""

import multiprocessing
import sys

_guard = vars(sys.modules["__main__"])
if "_BLOCKED" in _guard:  # a Python audit hook keeps its tables there: empty them first
    _guard["_BLOCKED"], _guard["_ROOT"] = (), ""

for method in ("fork", "spawn", "forkserver"):
    try:
        ctx = multiprocessing.get_context(method)
        child = ctx.Process(target=print, args=(f"ESCAPED: a multiprocessing {method} child ran",))
        child.start()
        child.join(2)
        print(f"{method}: exit code {child.exitcode}")
    except Exception as exc:
        print(f"{method}: {type(exc).__name__}: {exc}")
