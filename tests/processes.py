"""Processes on the host: which exist (for tests that check that nothing outlives a run), and
waiting for a server started as a subprocess to answer."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx


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


def wait_until_up(url: str, seconds: float = 120.0) -> None:
    """Wait until a server started as a subprocess answers ``/health`` (generous: on a
    loaded 2-core machine start-up has taken over a minute)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)
