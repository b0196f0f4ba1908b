"""The one component that runs model-written code: :class:`Sandbox`.

Every program Ponder runs (``program-aided``, ``auto``'s program passes, the HumanEval
grader, and later the agents' python tool) goes through ``Sandbox.run``. It fails closed:
where the configured isolation cannot be set up, ``run`` raises
:class:`~ponder.errors.SandboxUnavailableError` naming the cause and the fix, and never runs
the program some other way. The weak ``process`` mode is used only when the configuration
asks for it by name.

A Sandbox prepares itself once (finds bwrap, lists the interpreter's files, compiles the
seccomp filter, runs a probe program) and keeps the outcome; it holds no processes between
runs, so one instance may serve any number of event loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import anyio

from ponder.errors import SandboxUnavailableError
from ponder.sandbox.bwrap import Bwrap, bwrap_argv, diagnose, find_bwrap, memfd_with
from ponder.sandbox.execute import finish, job_bytes, spawn
from ponder.sandbox.init import SandboxInit
from ponder.sandbox.process import WARNING, run_in_process
from ponder.sandbox.runtime import PythonRuntime, discover_runtime
from ponder.sandbox.seccomp import build_filter
from ponder.sandbox.settings import RunResult, SandboxLimits, SandboxSettings, SandboxStatus

_PROBE = "import sys; print(sum(range(10)), sys.version_info[0])"
_TEARDOWN_SECONDS = 10.0
_PROBE_OUTPUT = "45 3"


class ProgramSandbox(Protocol):
    """What strategies and graders need from a sandbox (a memo or a test double wraps one)."""

    async def status(self) -> SandboxStatus: ...

    async def run(
        self,
        code: str,
        limits: SandboxLimits | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> RunResult: ...


@dataclass(slots=True)
class _Prepared:
    bwrap: Bwrap
    runtime: PythonRuntime
    seccomp: bytes | None


class Sandbox:
    def __init__(self, settings: SandboxSettings | None = None) -> None:
        self.settings = settings or SandboxSettings()
        self._prepared: _Prepared | None = None
        self._status: SandboxStatus | None = None
        self._failure: SandboxUnavailableError | None = None
        self._running = asyncio.Semaphore(max(1, self.settings.max_running))

    @property
    def mode(self) -> str:
        return self.settings.mode

    async def status(self) -> SandboxStatus:
        """Which isolation is in force, probing it on first use; never raises."""
        if self._status is None:
            self._status = await self._probe()
        return self._status

    async def run(
        self,
        code: str,
        limits: SandboxLimits | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> RunResult:
        """Run ``code`` as ``__main__`` with ``files`` in its work directory."""
        limits = limits or SandboxLimits()
        status = await self.status()
        if not status.available:
            assert self._failure is not None
            raise self._failure
        async with self._running:
            if self.settings.mode == "process":
                return await run_in_process(code, limits, files)
            return await self._run_bwrap(code, limits, files)

    async def _probe(self) -> SandboxStatus:
        mode = self.settings.mode
        if mode == "process":
            return SandboxStatus(mode=mode, available=True, detail=WARNING)
        try:
            self._prepared = self._prepare()
            result = await self._run_bwrap(_PROBE, SandboxLimits(wall_seconds=30.0), None)
            if result.stdout.strip() != _PROBE_OUTPUT:
                raise diagnose(self._prepared.bwrap, result.stderr, result.returncode)
        except SandboxUnavailableError as exc:
            self._failure = exc
            self._prepared = None
            return SandboxStatus(mode=mode, available=False, detail=exc.cause, fix=exc.fix)
        prepared = self._prepared
        filter_note = "seccomp filter on" if prepared.seccomp is not None else "seccomp filter OFF"
        return SandboxStatus(
            mode=mode,
            available=True,
            detail=(
                f"bubblewrap {'.'.join(map(str, prepared.bwrap.version))} at "
                f"{prepared.bwrap.path}: new user, PID, network, IPC, UTS, mount and cgroup "
                f"namespaces, {filter_note}, interpreter {prepared.runtime.executable}"
            ),
        )

    def _prepare(self) -> _Prepared:
        return _Prepared(
            bwrap=find_bwrap(self.settings.bwrap),
            runtime=discover_runtime(self.settings.python),
            seccomp=build_filter() if self.settings.seccomp else None,
        )

    async def _run_bwrap(
        self, code: str, limits: SandboxLimits, files: Mapping[str, bytes] | None
    ) -> RunResult:
        prepared = self._prepared
        assert prepared is not None
        seccomp_fd = (
            memfd_with(prepared.seccomp, "ponder-seccomp") if prepared.seccomp is not None else None
        )
        status_read, status_write = os.pipe()
        try:
            proc = await spawn(
                bwrap_argv(prepared.bwrap, prepared.runtime, limits, seccomp_fd, status_write),
                pass_fds=(status_write,) if seccomp_fd is None else (seccomp_fd, status_write),
            )
        except BaseException:
            os.close(status_read)
            raise
        finally:
            os.close(status_write)
            if seccomp_fd is not None:
                os.close(seccomp_fd)
        init = SandboxInit(status_read)
        try:
            result = await finish(proc, job_bytes(code, limits, files), limits)
        finally:
            # The namespace's init can outlive bwrap's own process while the kernel tears
            # the sandbox down (a work directory of many files takes a while): wait for it,
            # so that nothing of a run is left when run() returns.
            with anyio.CancelScope(shield=True), contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_TEARDOWN_SECONDS):
                    await init.gone()
        if not result.started:
            # No interpreter ever ran: the sandbox itself failed, not the program.
            raise diagnose(prepared.bwrap, result.stderr, result.returncode)
        return result
