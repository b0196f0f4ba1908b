"""The ``python`` built-in tool: the model's code, run in Ponder's sandbox.

Every call is one :meth:`~ponder.sandbox.ProgramSandbox.run` (bubblewrap, seccomp, kernel
rlimits; see docs/security.md): no process outlives a call, and nothing of the server is
visible to the code. The model reads back the exit status, stdout and stderr, each cut to
:data:`SHOWN_CHARS` characters. A program that fails, times out or writes too much is an
error result the model sees, not a failure of the request.

**Sessions** (``{"type": "python", "session": true}``): variables, functions and imports
persist across calls within one response. There is no long-lived interpreter behind this:
each call starts a fresh sandbox run that first *replays* every earlier successful cell of
the response (their output discarded), then runs the new cell. So earlier cells run again,
with their side effects and their cost (the time limit covers the replay), and a cell that
depended on chance or the clock may compute something different on replay. A cell that
failed is not replayed. This is the simplest arrangement that keeps every run isolated.

Where the sandbox cannot run at all (bwrap missing, user namespaces off), :meth:`call`
raises :class:`~ponder.errors.SandboxUnavailableError`: that is Ponder's failure, not the
model's. The gateway checks :meth:`PythonTool.ready` before the first model turn, so such a
request is a 400 before any token is spent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from ponder.errors import SandboxUnavailableError
from ponder.sandbox import ProgramSandbox, RunResult, SandboxLimits
from ponder.tools.base import SHOWN_CHARS, ToolResult, clipped

DEFAULT_SECONDS = 10.0
MAX_SECONDS = 60.0
MAX_CELLS = 32  # cells of a session, replay included (each replay costs time)

# Replays earlier cells silently, then runs the new one: all in the program's own globals,
# each compiled under its own name so that a traceback says which cell failed.
_SESSION_PROGRAM = """\
import contextlib as _ponder_contextlib, io as _ponder_io
for _ponder_k, _ponder_cell in enumerate(__ponder_cells__[:-1]):
    with _ponder_contextlib.redirect_stdout(_ponder_io.StringIO()), \\
            _ponder_contextlib.redirect_stderr(_ponder_io.StringIO()):
        exec(compile(_ponder_cell, f"<cell {_ponder_k + 1}>", "exec"), globals())
del _ponder_k, _ponder_cell, _ponder_contextlib, _ponder_io
exec(compile(__ponder_cells__[-1], "<cell>", "exec"), globals())
"""


def describe(result: RunResult, seconds: float) -> str:
    """The run as the model reads it."""
    if result.timed_out:
        head = f"timed out after {seconds:g} s"
    elif result.truncated:
        head = "stopped: it wrote more output than allowed"
    else:
        head = f"exit status {result.returncode if result.returncode is not None else '?'}"
    parts = [head]
    if result.stdout:
        parts.append(f"stdout:\n{clipped(result.stdout, keep_end=False)}")
    if result.stderr:
        parts.append(f"stderr:\n{clipped(result.stderr, keep_end=True)}")
    if not result.stdout and not result.stderr:
        parts.append("(no output; print what you want to see)")
    return "\n".join(parts)


class PythonTool:
    """Runs ``{"code": "..."}`` in the sandbox; one instance per request (its session)."""

    name = "python"
    description = (
        "Run a Python 3 program in an isolated sandbox (no network, no files kept) and read "
        "its exit status, stdout and stderr. Print what you want to see."
    )
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "the program to run"}},
        "required": ["code"],
    }

    def __init__(
        self,
        sandbox: ProgramSandbox,
        *,
        session: bool = False,
        timeout_seconds: float = DEFAULT_SECONDS,
    ) -> None:
        self.sandbox = sandbox
        self.session = session
        self.timeout_seconds = min(max(timeout_seconds, 0.1), MAX_SECONDS)
        self._cells: list[str] = []  # this request's successful cells, when session is on
        # Cells of one session run one at a time, in call order: each builds on the last.
        self._turn = asyncio.Lock()

    async def ready(self) -> None:
        """Raise :class:`SandboxUnavailableError` when the sandbox cannot run programs."""
        status = await self.sandbox.status()
        if not status.available:
            raise SandboxUnavailableError(
                f"the python tool runs model-written programs, and {status.detail}",
                fix=status.fix,
                param="tools",
            )

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        code = arguments.get("code")
        if not isinstance(code, str) or not code.strip():
            return ToolResult('error: expected {"code": "<python program>"}', is_error=True)
        limits = SandboxLimits(
            wall_seconds=self.timeout_seconds, cpu_seconds=max(1, int(self.timeout_seconds))
        )
        if not self.session:
            return self._result(code, *await self._run([code], limits))
        async with self._turn:
            if len(self._cells) >= MAX_CELLS - 1:
                # Dropping old cells would silently lose their definitions: say so instead.
                return ToolResult(
                    f"error: this session holds its limit of {MAX_CELLS} cells; "
                    "put what is needed in one program",
                    is_error=True,
                )
            result, seconds = await self._run([*self._cells, code], limits)
            if result.ok:
                self._cells.append(code)
        return self._result(code, result, seconds)

    async def _run(self, cells: list[str], limits: SandboxLimits) -> tuple[RunResult, float]:
        started = time.perf_counter()
        if len(cells) == 1:
            result = await self.sandbox.run(cells[0], limits)
        else:
            program = f"__ponder_cells__ = {cells!r}\n{_SESSION_PROGRAM}"
            result = await self.sandbox.run(program, limits)
        return result, time.perf_counter() - started

    def _result(self, code: str, result: RunResult, seconds: float) -> ToolResult:
        return ToolResult(
            describe(result, self.timeout_seconds),
            is_error=not result.ok,
            details={
                "code": code,
                "returncode": result.returncode,
                "timed_out": result.timed_out,
                "seconds": round(seconds, 3),
                "stdout": result.stdout[:SHOWN_CHARS],
                "stderr": result.stderr[-SHOWN_CHARS:],
            },
        )
