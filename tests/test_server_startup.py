"""Start-up of a real ``ponder serve``: it answers ``/health/live`` while its model still
loads, ``/health/ready`` turns 200 only once the model is loaded, a request sent meanwhile
waits for the model and is served; and a model that cannot be loaded (a corrupt GGUF) stops
the server with one line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TINY
from tests.fake_openai import free_port

pytestmark = pytest.mark.model


def serve(tmp_path: Path, model: str, port: int) -> subprocess.Popen[str]:
    config = tmp_path / "ponder.toml"
    # Its own ledger, never the user's.
    config.write_text(f'database_url = "sqlite:///{tmp_path / "ledger.sqlite3"}"\n')
    command = ["--config", str(config), "serve", "--port", str(port), "-m", model]
    return subprocess.Popen(
        [sys.executable, "-m", "ponder.cli", *command, "--no-access-log"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.timeout(240)
def test_live_while_the_model_loads_ready_after_and_a_request_waits(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = serve(tmp_path, TINY, port)
    replies: list[Any] = []
    body = {
        "model": TINY,
        "messages": [{"role": "user", "content": "Say hi."}],
        "max_tokens": 4,
        "reasoning_effort": "none",  # straight to the model
    }

    def ask() -> None:
        replies.append(httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120))

    client = threading.Thread(target=ask)
    seen: list[tuple[int, str]] = []  # (/health/ready's status, its models check), in order
    try:
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, f"never ready: {seen[-3:]}"
            assert server.poll() is None, server.communicate()[0]
            try:
                live = httpx.get(f"{url}/health/live", timeout=2)
            except httpx.TransportError:  # not listening yet
                time.sleep(0.02)
                continue
            assert live.status_code == 200
            ready = httpx.get(f"{url}/health/ready", timeout=2)
            seen.append((ready.status_code, ready.json()["checks"]["models"]))
            if not client.is_alive() and not replies:
                client.start()  # the first moment it listens: the model is still loading
            if ready.status_code == 200:
                break
            time.sleep(0.02)
        client.join(120)
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    # Liveness answered from the first moment the server listened. Readiness said the model
    # was loading until it was loaded (on a fast, idle machine the tiny model may be loaded
    # before the first probe; tests/test_health.py holds a load open to check the 503).
    not_ready = [check for status, check in seen if status != 200]
    assert all(check == f"loading models: {TINY}" for check in not_ready), seen
    assert seen[-1] == (200, "ok")
    # The request sent while loading waited for the model, rather than failing.
    (reply,) = replies
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["completion_tokens"] >= 1
    assert "Traceback" not in output


@pytest.mark.timeout(120)
def test_a_corrupt_gguf_stops_the_server_with_one_line(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(os.urandom(256 * 1024))  # not a GGUF file
    server = serve(tmp_path, str(corrupt), free_port())
    try:
        output = server.communicate(timeout=90)[0]
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 1, output
    assert "Traceback" not in output
    (error,) = [line for line in output.splitlines() if line.startswith("Error:")]
    assert error.startswith(f"Error: could not load model {corrupt}: ")
    assert "could not load the model file" in error
    assert output.rstrip().splitlines()[-1] == error  # the last thing it says
