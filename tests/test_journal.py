"""The in-flight journal: a killed process's unfinished requests are recorded when a gateway
starts again, with what they had spent, and their reservations settled; a live process's
journal is never touched; rotation counts nothing twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from ponder.config import load_config
from ponder.gateway import Gateway
from ponder.gateway.journal import Journal, journal_directory, orphaned
from ponder.metering import CallRecord
from ponder.tenancy import TenancyStore
from ponder.types import Usage
from tests.fake_openai import free_port, make_app, serve_app
from tests.processes import wait_until_up


def record(backend: str, completion: int) -> CallRecord:
    return CallRecord(backend, Usage(5, completion, 0, 0, 1), 0.5, "ok")


def die(journal: Journal) -> None:
    """What the kernel does to a killed process's journal: closes it, lock and all."""
    os.close(journal._fd)
    journal._fd = -1


def test_only_a_dead_processs_unfinished_requests_are_found(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    first = journal.begin(
        "req-1", key_id="k", team="t", model="m", strategy=None, effort=None, reservation=None
    )
    first.recorded(1, record("up", 7))
    first.progressed(2, "up", Usage(5, 3, 0, 0, 1))
    first.progressed(2, "up", Usage(5, 4, 0, 0, 1))  # cumulative: the last report counts
    done = journal.begin(
        "req-2", key_id="k", team="t", model="m", strategy=None, effort=None, reservation=None
    )
    done.recorded(1, record("up", 9))
    journal.end("req-2")
    with orphaned(tmp_path) as found:
        assert found == []  # the process is alive: its journal is its own
    die(journal)
    with open(journal.path, "ab") as cut:  # a line the kill cut short tells nothing
        cut.write(b'{"op":"call","id":"req-1","n":3,"b":"up","u":[5,')
    with orphaned(tmp_path) as found:
        (entry,) = found
        assert entry.request_id == "req-1"
        assert [(c.backend, c.usage.completion_tokens, c.outcome) for c in entry.calls] == [
            ("up", 7, "ok"),
            ("up", 4, "cancelled"),
        ]
    assert not list(tmp_path.iterdir())  # recorded: the journal is removed


def test_rotation_keeps_open_requests_and_counts_nothing_twice(tmp_path: Path) -> None:
    journal = Journal(tmp_path, rotate_bytes=2000)
    first_file = journal.path
    lines = journal.begin(
        "req-1", key_id=None, team=None, model="m", strategy="cot", effort=None, reservation=None
    )
    lines.recorded(1, record("up", 7))
    for k in range(1, 60):
        lines.progressed(2, "up", Usage(5, k, 0, 0, 1))
    assert journal.path != first_file and not first_file.exists()
    assert len(list(tmp_path.iterdir())) == 1
    die(journal)
    # A crash between writing the new file and removing the old one leaves both: the begin
    # line at the head of the newer one resets what the older one said.
    (tmp_path / "inflight-0-old.jsonl").write_bytes(journal.path.read_bytes())
    with orphaned(tmp_path) as found:
        (entry,) = found
        assert [c.usage.completion_tokens for c in entry.calls] == [7, 59]


def test_where_journals_live() -> None:
    assert journal_directory("sqlite:///:memory:") is None
    assert journal_directory("sqlite:////var/lib/ponder/x.sqlite3") == Path(
        "/var/lib/ponder/x.sqlite3.journal"
    )
    one = journal_directory("postgresql://a/db1")
    assert one is not None and one != journal_directory("postgresql://a/db2")
    assert journal_directory("postgresql://a/db1", "/srv/j") == Path("/srv/j")


@pytest.fixture(scope="module")
def upstream() -> Any:
    with serve_app(make_app()) as url:
        yield url


def test_a_stream_in_flight_at_kill_9_is_recorded_on_restart(upstream: str, tmp_path: Path) -> None:
    """A key with a token budget streams from an endpoint that reports usage on every chunk
    (one chunk every 0.25 s); the server is killed mid-stream. A gateway started on the same
    database records the request, exactly as far as it got, and settles its reservation."""
    database = tmp_path / "ledger.sqlite3"
    config_path = tmp_path / "ponder.toml"
    config_path.write_text(
        f'default_strategy = "none"\ndatabase_url = "sqlite:///{database}"\n\n'
        f'[providers.up]\nbase_url = "{upstream}/paced/v1"\nmodels = ["m"]\n'
        "extra_body = { stream_options = { continuous_usage_stats = true } }\n"
    )
    secret = asyncio.run(_key_with_budget(f"sqlite:///{database}"))
    port = free_port()
    env = {**os.environ, "PONDER_ADMIN_KEY": "admin-secret"}
    server = subprocess.Popen(
        [sys.executable, "-m", "ponder.cli", "--config", str(config_path), "serve",
         "--port", str(port), "--no-access-log"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    received = 0
    try:
        wait_until_up(url)
        body = {
            "model": "m",
            "messages": [{"role": "user", "content": "count with me please"}],
            "max_tokens": 200,
            "stream": True,
        }
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.stream(
            "POST", f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30
        ) as reply:
            assert reply.status_code == 200
            for line in reply.iter_lines():
                if line.startswith("data: {") and json.loads(line[6:])["choices"]:
                    received += 1
                if received == 6:
                    # Killed just after a chunk arrived: the next is 0.25 s away.
                    server.send_signal(signal.SIGKILL)
                    break
        server.wait(10)
    finally:
        if server.poll() is None:
            server.kill()
    rows, budget = asyncio.run(_recover(config_path))
    (row,) = rows
    assert row["requests"] == 1 and row["ok"] == 0
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT outcome FROM requests").fetchall() == [("interrupted",)]
    # The prompt's four words and the six completion tokens the client was sent.
    assert (row["prompt_tokens"], row["completion_tokens"]) == (4, received)
    assert budget.reserved == 0  # settled, not held until the sweep
    assert budget.spent == 4 + received


async def _key_with_budget(database_url: str) -> str:
    store = await TenancyStore.open(database_url)
    try:
        await store.create_team("t")
        key, secret = await store.create_key("t", "k")
        await store.set_budget("key", key.id, unit="tokens", period="total", limit=10_000)
        return secret
    finally:
        await store.aclose()


async def _recover(config_path: Path) -> tuple[list[dict[str, Any]], Any]:
    async with Gateway(load_config(config_path)) as gateway:
        store = gateway.accounts.store
        assert store is not None
        rows = await store.usage(group_by="key")
        (key,) = await store.list_keys()
        (budget,) = await store.budgets(key)
        return rows, budget
