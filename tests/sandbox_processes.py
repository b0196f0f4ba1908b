"""The host's processes as a sandbox test sees them: which ones a run started (descendants of
this process, which is made a subreaper so that orphans stay its descendants), killing what
is left, and this process's own memory."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of ``pid``, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def pids() -> set[int]:
    return {int(name) for name in os.listdir("/proc") if name.isdigit()}


def _descends_from(pid: int, ancestor: int) -> bool:
    for _ in range(64):
        info = _proc_stat(pid)
        if info is None or info[1] <= 1:
            return False
        if info[1] == ancestor:
            return True
        pid = info[1]
    return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def run_processes(before: set[int], helpers: set[int]) -> list[tuple[int, str]]:
    """Processes alive now that the run started: new since ``before``, not the harness's own
    helpers, and descended from this process.

    The machine is shared, so a plain difference of pid sets would blame whatever else started
    meanwhile; descent is what ties a process to the run. With :func:`subreaper` in force an
    orphan (even one that called setsid and forked again) is re-parented to this process rather
    than to init, so it still counts as ours. Zombies are reaped, not counted.
    """
    me = os.getpid()
    alive = []
    for pid in sorted(pids() - before - helpers):
        if not _descends_from(pid, me):
            continue
        info = _proc_stat(pid)
        if info is None:
            continue
        if info[0] in "ZX":
            _reap(pid)
            continue
        alive.append((pid, f"pid {pid} ({_comm(pid)}, state {info[0]})"))
    return alive


def kill_run_processes(before: set[int], helpers: set[int]) -> None:
    for pid, _ in run_processes(before, helpers):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and run_processes(before, helpers):
        time.sleep(0.02)


@contextlib.contextmanager
def subreaper() -> Iterator[None]:
    """Make this process the subreaper of everything it starts, for the leak checks."""
    libc = ctypes.CDLL(None, use_errno=True)
    previous = ctypes.c_int(0)
    libc.prctl(37, ctypes.byref(previous), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    try:
        yield
    finally:
        libc.prctl(36, previous.value, 0, 0, 0)


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")
