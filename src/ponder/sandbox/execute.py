"""Starting a sandboxed interpreter, handing it one program, and reading at most what the
limits allow back.

A run is split in two, so that a sandbox can be started before its program is known (the
warm pool): :func:`spawn` starts the process, which blocks reading its job from stdin, and
:func:`finish` sends the job, reads stdout and stderr up to the output limit, and kills the
whole process group on timeout, on overflow, on cancellation, or on any error. Only the
output limit is ever read from the pipes, so no program can grow the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import marshal
import os
import resource
import signal
from collections.abc import Callable, Mapping, Sequence

from ponder.sandbox.settings import RunResult, SandboxLimits

# The interpreter's own first lines inside the sandbox: read the job, write the input files
# into the work directory, set the kernel limits (hard and soft alike, so the program can
# never raise them), and run the program as __main__. stdin is /dev/null for the program.
CHILD_SOURCE = r"""
import marshal, os, resource, sys
sys.stdout.buffer.write(b"\x00ponder:started\x00")
sys.stdout.buffer.flush()
_job = marshal.loads(sys.stdin.buffer.read())
for _name, _data in _job["files"].items():
    with open(os.path.join(os.getcwd(), os.path.basename(_name)), "wb") as _f:
        _f.write(_data)
_fd = os.open(os.devnull, os.O_RDONLY)
os.dup2(_fd, 0)
os.close(_fd)
for _res, _soft, _hard in _job["rlimits"]:
    resource.setrlimit(_res, (_soft, _hard))
_code = compile(_job["code"], "program.py", "exec")
del _job
exec(_code, {"__name__": "__main__", "__builtins__": __builtins__})
"""

# The first bytes a sandboxed interpreter writes, before it reads its program: output that
# starts with them came from a sandbox that was set up. Without them, a failure is the
# sandbox's own, and a program cannot fake that (it runs only after they are written).
STARTED = b"\x00ponder:started\x00"
_READ_CHUNK = 64 * 1024
_REAP_SECONDS = 2.0  # after a kill, how long to wait for the pipes to close
# Exit statuses of a program stopped by RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL at the
# hard one, seen directly (process mode) or as 128 + signal through bwrap's init.
_CPU_LIMIT_STATUSES = frozenset({-signal.SIGXCPU, 128 + signal.SIGXCPU})


def job_bytes(code: str, limits: SandboxLimits, files: Mapping[str, bytes] | None) -> bytes:
    """What the child reads from stdin: the program, its input files and its rlimits."""
    rlimits = [
        # SIGXCPU at the soft limit (so the status says why), SIGKILL a second later.
        (resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1),
        (resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
        (resource.RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
        (resource.RLIMIT_NPROC, limits.processes, limits.processes),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    return marshal.dumps({"code": code, "files": dict(files or {}), "rlimits": rlimits})


async def spawn(
    argv: Sequence[str],
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
) -> asyncio.subprocess.Process:
    """Start a sandbox process in a process group of its own, waiting for its job."""
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env or {}),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        pass_fds=tuple(pass_fds),
        start_new_session=True,
    )


async def finish(proc: asyncio.subprocess.Process, job: bytes, limits: SandboxLimits) -> RunResult:
    """Send ``job`` to a spawned sandbox and collect its result within ``limits``."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out, err = _Capped(limits.output_bytes + len(STARTED)), _Capped(limits.output_bytes)
    timed_out = False
    try:
        async with asyncio.timeout(limits.wall_seconds):
            await _send(proc.stdin, job)
            async with asyncio.TaskGroup() as group:
                group.create_task(out.read(proc.stdout, lambda: kill(proc)))
                group.create_task(err.read(proc.stderr, lambda: kill(proc)))
            await proc.wait()
    except TimeoutError:
        timed_out = True
    except BaseException:
        kill(proc)  # cancelled or failed: the sandbox never outlives its caller
        raise
    if timed_out:
        kill(proc)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_REAP_SECONDS):
                # The pipes must reach their end before asyncio lets go of the process.
                await asyncio.gather(_drain(proc.stdout), _drain(proc.stderr))
                await proc.wait()
        started, stdout = _started(out.data)
        return RunResult(
            ok=False,
            stdout=_text(stdout),
            stderr="timed out",
            timed_out=True,
            truncated=out.overflowed or err.overflowed,
            started=started,
        )
    truncated = out.overflowed or err.overflowed
    cpu_limit = proc.returncode in _CPU_LIMIT_STATUSES
    note = (
        "\noutput limit exceeded" if truncated else "\nCPU time limit exceeded" if cpu_limit else ""
    )
    started, stdout = _started(out.data)
    return RunResult(
        ok=proc.returncode == 0 and not truncated and started,
        stdout=_text(stdout),
        stderr=_text(err.data) + note,
        timed_out=cpu_limit,
        returncode=proc.returncode,
        truncated=truncated,
        started=started,
    )


def kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the sandbox's process group, unless it has already been reaped (its pid, and
    so its group id, may then belong to someone else)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


async def _send(stdin: asyncio.StreamWriter, job: bytes) -> None:
    # A sandbox that died before reading (a start-up failure) shows in its exit status.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.write(job)
        await stdin.drain()
        stdin.close()


class _Capped:
    """One output pipe, kept up to ``cap`` bytes. Past the cap the process is killed and the
    rest is read and dropped until the pipe ends, so that memory stays bounded and asyncio
    sees the pipe close."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.buffer = bytearray()
        self.overflowed = False

    @property
    def data(self) -> bytes:
        return bytes(self.buffer[: self.cap])

    async def read(self, stream: asyncio.StreamReader, on_overflow: Callable[[], None]) -> None:
        while chunk := await stream.read(_READ_CHUNK):
            if self.overflowed:
                continue
            self.buffer += chunk[: self.cap + 1 - len(self.buffer)]
            if len(self.buffer) > self.cap:
                self.overflowed = True
                on_overflow()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(_READ_CHUNK):
        pass


def _started(data: bytes) -> tuple[bool, bytes]:
    if data.startswith(STARTED):
        return True, data[len(STARTED) :]
    return False, data


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
