"""Starting and stopping the bench scripts' servers on 127.0.0.1.

A bench script runs each of its servers (a fake endpoint, Ponder) as ``script --serve ROLE
--port N --workers W`` in a process group of its own (:func:`server`); in that process the
script serves the role under uvicorn (:func:`serve_uvicorn`), an app factory named as
``module:function`` being imported from this directory.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(
    role: str,
    port: int,
    *,
    workers: int,
    access_log: bool,
    env: dict[str, str],
    script: str | Path,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``script --serve role`` in a process group of its own, until the block ends.

    The process is ready once it answers 200 on ``/`` (role ``fake``) or ``/health``.
    """
    command = [
        sys.executable,
        str(Path(script).resolve()),
        "--serve",
        role,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    if access_log:
        command.append("--access-log")
    proc = subprocess.Popen(command, env={**os.environ, **env}, start_new_session=True)
    try:
        wait_ready(port, proc, "/" if role == "fake" else "/health")
        yield proc
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def wait_ready(port: int, proc: subprocess.Popen[bytes], path: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(request)
            if sock.recv(64).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start in {timeout:.0f} s")


def serve_uvicorn(app: Any, port: int, **options: Any) -> None:
    """Serve ``app`` under uvicorn on 127.0.0.1 until the process is stopped: an ASGI app,
    or ``"module:function"``, a factory in a module of this directory (which uvicorn imports
    in each worker). ``options`` are uvicorn's."""
    import uvicorn

    if isinstance(app, str):
        options |= {"factory": True, "app_dir": str(BENCH)}
    uvicorn.run(app, host="127.0.0.1", port=port, **options)


def add_serve_arguments(
    parser: argparse.ArgumentParser, roles: list[str], *, workers: bool = True
) -> None:
    """The hidden options :func:`server` starts a script's own servers with."""
    parser.add_argument("--serve", choices=roles, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    if workers:
        parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)


def environment() -> dict[str, str]:
    """What a bench's figures depend on: Python, cores, and the server's event loop and
    HTTP parser (uvicorn takes uvloop and httptools where they are installed)."""

    def have(module: str) -> bool:
        try:
            __import__(module)
        except ImportError:
            return False
        return True

    return {
        "python": platform.python_version(),
        "cpus": str(os.cpu_count()),
        "loop": "uvloop" if have("uvloop") else "asyncio",
        "http": "httptools" if have("httptools") else "h11",
    }
