"""Running model-written Python outside the server process, with limits.

Each program runs in a fresh ``python -I`` subprocess, in an empty temporary directory, with
CPU-time, address-space and output limits, a wall-clock timeout, and an audit hook installed
before the program starts that refuses sockets, subprocesses and writes outside the
directory. This is a containment layer for arithmetic programs, not a jail for hostile code;
the full sandbox is a separate component.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

_PRELUDE = r"""
import os, resource, sys
resource.setrlimit(resource.RLIMIT_CPU, ({cpu}, {cpu}))
resource.setrlimit(resource.RLIMIT_AS, ({mem}, {mem}))
resource.setrlimit(resource.RLIMIT_FSIZE, ({fsize}, {fsize}))
_ROOT = os.getcwd()
_BLOCKED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.fork", "os.spawn",
            "pty.", "ctypes.", "os.kill", "signal.")
def _audit(event, args):
    if event.startswith(_BLOCKED):
        raise PermissionError(f"sandbox: {{event}} is not allowed")
    if event == "open" and args and isinstance(args[0], (str, bytes)) and len(args) > 1:
        mode = args[1] if isinstance(args[1], str) else ""
        path = os.path.abspath(os.fsdecode(args[0]))
        if any(c in mode for c in "wax+") and not path.startswith(_ROOT):
            raise PermissionError("sandbox: writing outside the work directory is not allowed")
sys.addaudithook(_audit)
del _audit
"""


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    wall_seconds: float = 5.0
    cpu_seconds: int = 5
    memory_bytes: int = 512 * 1024 * 1024
    output_bytes: int = 64 * 1024


@dataclass(frozen=True, slots=True)
class RunResult:
    ok: bool
    stdout: str
    stderr: str
    timed_out: bool = False
    returncode: int | None = None


async def run_python(code: str, limits: SandboxLimits = SandboxLimits()) -> RunResult:
    """Run ``code`` in a limited subprocess and capture its output."""
    prelude = _PRELUDE.format(
        cpu=limits.cpu_seconds, mem=limits.memory_bytes, fsize=limits.output_bytes
    )
    with tempfile.TemporaryDirectory(prefix="ponder-sandbox-") as workdir:
        script = Path(workdir) / "program.py"
        script.write_text(code)
        runner = prelude + f"\nexec(compile(open({str(script)!r}).read(), 'program.py', 'exec'))\n"
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONIOENCODING": "utf-8", "HOME": workdir}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-c",
            runner,
            cwd=workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=limits.wall_seconds)
        except TimeoutError:
            with contextlib.suppress(
                ProcessLookupError
            ):  # the CPU limit may have killed it already
                proc.kill()
            await proc.wait()
            return RunResult(ok=False, stdout="", stderr="timed out", timed_out=True)
    stdout = out[: limits.output_bytes].decode("utf-8", errors="replace")
    stderr = err[-limits.output_bytes :].decode("utf-8", errors="replace")
    return RunResult(
        ok=proc.returncode == 0, stdout=stdout, stderr=stderr, returncode=proc.returncode
    )
