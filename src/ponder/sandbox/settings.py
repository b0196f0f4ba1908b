"""The sandbox's plain data: what one run may use and what it returns (how it is configured,
``SandboxSettings``, is part of :mod:`ponder.config`)."""

from __future__ import annotations

from dataclasses import dataclass

from ponder.config import SandboxMode, SandboxSettings

__all__ = ["RunResult", "SandboxLimits", "SandboxMode", "SandboxSettings", "SandboxStatus"]


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """What one run may use. Every limit is enforced by the kernel, not by Python."""

    wall_seconds: float = 5.0
    cpu_seconds: int = 5
    memory_bytes: int = 512 * 1024 * 1024  # address space (RLIMIT_AS)
    output_bytes: int = 64 * 1024  # read from each of stdout and stderr, at most
    file_bytes: int = 16 * 1024 * 1024  # largest file a program may write (RLIMIT_FSIZE)
    disk_bytes: int = 64 * 1024 * 1024  # the private work directory (a tmpfs)
    open_files: int = 64  # RLIMIT_NOFILE
    processes: int = 16  # RLIMIT_NPROC, where the kernel applies it (not to uid 0)


@dataclass(frozen=True, slots=True)
class RunResult:
    ok: bool
    stdout: str
    stderr: str
    timed_out: bool = False
    returncode: int | None = None
    truncated: bool = False  # the program wrote more than the output limit and was stopped
    # The interpreter started inside the sandbox (else the sandbox itself failed to start).
    started: bool = True


@dataclass(frozen=True, slots=True)
class SandboxStatus:
    """Which isolation is in force, and why; what ``ponder sandbox check`` prints."""

    mode: SandboxMode
    available: bool
    detail: str  # what is in force, or why nothing is
    fix: str | None = None  # what an operator can do when it is not available
