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


def left_behind(before: set[int]) -> list[int]:
    """Processes started since ``before`` that still run."""
    return [p for p in pids() - before if alive(p)]
