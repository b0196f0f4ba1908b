"""Graceful shutdown of a real ``ponder serve``: on SIGTERM it stops accepting, lets a
request in flight finish, writes its ledger row, and exits."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ponder.tenancy import TenancyStore
from tests.fake_openai import free_port, make_app, serve_app
from tests.processes import wait_until_up


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve_app(make_app()) as url:
        yield url


@pytest.mark.parametrize("grace", [20, 1])
def test_a_request_in_flight_at_sigterm_finishes_or_is_cancelled_and_is_recorded(
    upstream: str, tmp_path: Path, grace: int
) -> None:
    """Within the grace period it finishes; past it (the endpoint answers after 5 s) it is
    cancelled. Either way its row is in the ledger."""
    database = tmp_path / "ledger.sqlite3"
    config = tmp_path / "ponder.toml"
    config.write_text(
        f'default_strategy = "none"\ndatabase_url = "sqlite:///{database}"\n'
        f"shutdown_grace_seconds = {grace}\n\n"
        f'[providers.up]\nbase_url = "{upstream}/slow/v1"\nmodels = ["m"]\n'
    )
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ponder.cli",
            "--config",
            str(config),
            "serve",
            "--port",
            str(port),
            "--no-access-log",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url)
        replies: list[Any] = []
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}

        def ask() -> None:
            try:
                replies.append(httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30))
            except httpx.TransportError as exc:
                replies.append(exc)

        client = threading.Thread(target=ask)
        client.start()
        time.sleep(1.5)  # the "slow" endpoint answers after 5 s
        server.send_signal(signal.SIGTERM)
        client.join(30)
        # uvicorn raises the signal again once it has shut down gracefully.
        assert server.wait(30) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
    (reply,) = replies
    (row,) = asyncio.run(_usage(f"sqlite:///{database}"))
    assert row["requests"] == 1
    if grace > 5:
        assert reply.status_code == 200, reply.text
        assert row["ok"] == 1
        assert row["total_tokens"] == reply.json()["usage"]["total_tokens"]
    else:
        assert isinstance(reply, httpx.TransportError) or reply.status_code >= 500
        assert row["ok"] == 0


async def _usage(database_url: str) -> list[dict[str, Any]]:
    store = await TenancyStore.open(database_url)
    try:
        return await store.usage(group_by="model", since=None, until=None)
    finally:
        await store.aclose()
