"""Running model-written code: OS isolation on every run, failing closed.

:class:`Sandbox` is the only way Ponder starts a program. By default each program runs
under bubblewrap in its own namespaces with a seccomp filter and kernel rlimits (see
:mod:`ponder.sandbox.bwrap`); ``[sandbox] mode = "process"`` is an explicit, weaker opt-in.
"""

from ponder.sandbox.core import ProgramSandbox, Sandbox
from ponder.sandbox.settings import (
    RunResult,
    SandboxLimits,
    SandboxMode,
    SandboxSettings,
    SandboxStatus,
)

__all__ = [
    "ProgramSandbox",
    "RunResult",
    "Sandbox",
    "SandboxLimits",
    "SandboxMode",
    "SandboxSettings",
    "SandboxStatus",
]
