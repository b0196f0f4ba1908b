"""Which processes exist on the host, for tests that check that nothing outlives a run."""

from __future__ import annotations

import os
from pathlib import Path


def pids() -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit()}


def alive(pid: int) -> bool:
    """Running or sleeping: a zombie waiting to be reaped no longer runs anything."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def is_sandbox(pid: int) -> bool:
    """A bwrap, or an interpreter running the sandbox's job reader (see
    ponder.sandbox.execute), even one orphaned inside its PID namespace."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"bwrap" in cmdline or b"marshal.loads(sys.stdin" in cmdline


def left_behind(before: set[int]) -> list[int]:
    """Sandbox processes started since ``before`` that still run. Other processes on the
    machine (another test run, a benchmark) come and go and are not counted."""
    return [p for p in pids() - before if alive(p) and is_sandbox(p)]
