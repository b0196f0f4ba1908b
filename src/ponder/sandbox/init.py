"""The sandbox's first process, as the host sees it: bwrap reports its pid on a status pipe
(``--json-status-fd``), and a pidfd on it says when it, and with it the whole PID namespace,
is gone."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os


class SandboxInit:
    """Reads the status pipe in the background; :meth:`gone` waits for the init to exit."""

    def __init__(self, status_fd: int) -> None:
        self._fd = status_fd
        self._buffer = b""
        self._pidfd: int | None = None
        self._done = False
        os.set_blocking(status_fd, False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(status_fd, self._read)

    def _read(self) -> None:
        try:
            chunk = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._stop_reading()
            return
        self._buffer += chunk
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            self._take(line)

    def _take(self, line: bytes) -> None:
        try:
            status = json.loads(line)
        except ValueError:
            return
        pid = status.get("child-pid") if isinstance(status, dict) else None
        if isinstance(pid, int) and self._pidfd is None:
            with contextlib.suppress(OSError):  # already gone: nothing to wait for
                self._pidfd = os.pidfd_open(pid)

    def _stop_reading(self) -> None:
        if not self._done:
            self._done = True
            self._loop.remove_reader(self._fd)
            os.close(self._fd)

    async def gone(self) -> None:
        """Return once the sandbox's init has exited; callers bound the wait."""
        self._read_remaining()
        self._stop_reading()
        pidfd, self._pidfd = self._pidfd, None
        if pidfd is None:
            return
        exited: asyncio.Future[None] = self._loop.create_future()

        def readable() -> None:
            if not exited.done():
                exited.set_result(None)

        self._loop.add_reader(pidfd, readable)
        try:
            await exited
        finally:
            self._loop.remove_reader(pidfd)
            os.close(pidfd)

    def _read_remaining(self) -> None:
        if not self._done:
            self._read()
