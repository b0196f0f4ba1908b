"""The weak mode, ``[sandbox] mode = "process"``: a plain ``python -I`` subprocess in an
empty temporary directory, with the same kernel rlimits and output cap, and an audit hook
that refuses sockets, subprocesses and writes outside the directory.

This is NOT isolation. CPython's audit hooks are not a security boundary: a hostile program
can read any file the server can, reach the network and disable the hook. An operator must
choose this mode explicitly (for a machine where namespaces cannot be created and every
prompt is trusted); the server logs a warning at start-up.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping

from ponder.sandbox.execute import CHILD_SOURCE, finish, job_bytes, spawn
from ponder.sandbox.settings import RunResult, SandboxLimits

WARNING = (
    'sandbox mode "process": model-written programs run in a plain subprocess with an audit '
    "hook, which does not contain a hostile program (it can read the server's files and "
    "environment and reach the network). Use it only where every prompt is trusted."
)

_AUDIT_HOOK = r"""
import os as _os, sys as _sys
_ROOT = _os.getcwd()
_BLOCKED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.fork",
            "os.spawn", "pty.", "ctypes.", "os.kill", "signal.")
def _audit(event, args):
    if event.startswith(_BLOCKED):
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "open" and args and isinstance(args[0], (str, bytes)) and len(args) > 1:
        mode = args[1] if isinstance(args[1], str) else ""
        path = _os.path.abspath(_os.fsdecode(args[0]))
        if any(c in mode for c in "wax+") and not path.startswith(_ROOT):
            raise PermissionError("sandbox: writing outside the work directory is not allowed")
_sys.addaudithook(_audit)
del _audit
"""


async def run_in_process(
    code: str, limits: SandboxLimits, files: Mapping[str, bytes] | None = None
) -> RunResult:
    with tempfile.TemporaryDirectory(prefix="ponder-sandbox-") as workdir:
        proc = await spawn(
            [sys.executable, "-I", "-S", "-B", "-X", "utf8", "-c", _AUDIT_HOOK + CHILD_SOURCE],
            cwd=workdir,
        )
        return await finish(proc, job_bytes(code, limits, files), limits)
