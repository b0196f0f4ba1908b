"""The tenancy store's plumbing: the v0002 migration of a v0001 database (holds moved onto
the reservation row, both ways), prepared statements raising SQLAlchemy's exceptions, and
SQLite transactions in a worker thread (cancelled, or locked out by another process).

Tests that take a ``database_url`` run on SQLite and on PostgreSQL (tests/postgres.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, column, exc, table, text
from sqlalchemy.engine import Connection

from ponder.errors import StoreUnavailableError
from ponder.metering import CallRecord
from ponder.tenancy import RequestRow, Reservation, TenancyStore, engine
from ponder.tenancy.accounting import load_holds
from ponder.tenancy.ledger import Hold
from ponder.tenancy.prepared import Prepared
from ponder.tenancy.schema import teams
from ponder.types import Usage
from tests.postgres import database_url, postgres_server  # noqa: F401

T0 = datetime(2031, 3, 14, 12, 0, 30, tzinfo=UTC)
NAIVE = T0.replace(tzinfo=None)


def alembic(connection: Connection, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", engine.SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    getattr(command, action)(config, revision)


def ledger_row(request_id: str, key_id: str, cost: float, tokens: int) -> RequestRow:
    usage = Usage(prompt_tokens=tokens, completion_tokens=0, calls=1)
    return RequestRow(
        request_id=request_id,
        key_id=key_id,
        team="acme",
        model="m",
        strategy=None,
        effort=None,
        usage=usage,
        cost_usd=cost,
        seconds=0.1,
        outcome="ok",
        calls=(CallRecord("remote:m", usage, 0.1, "ok"),),
        created_at=T0,
    )


def insert(conn: Connection, name: str, *rows: dict[str, Any]) -> None:
    columns = [
        column(c, DateTime() if isinstance(v, datetime) else None) for c, v in rows[0].items()
    ]
    conn.execute(table(name, *columns).insert(), list(rows))


def v0001_data(conn: Connection) -> None:
    """A key with a usd budget and a tpm limit, and three reservations as v0001 kept them:
    one open (its holds counted), one swept (released; its child rows kept), one settled."""
    insert(conn, "teams", {"name": "acme", "created_at": NAIVE})
    key = {"id": "key_1", "team": "acme", "name": "ci", "prefix": "abcdefgh"}
    insert(
        conn, "api_keys", {**key, "secret_sha256": "f00", "team_admin": False, "created_at": NAIVE}
    )
    owner = {"id": 1, "scope": "key", "owner": "key_1"}
    budget = {"unit": "usd", "period": "total", "amount_limit": 10_000_000, "spent": 0}
    insert(
        conn,
        "budgets",
        {**owner, **budget, "reserved": 2_000_000, "period_start": datetime(1970, 1, 1)},
    )
    limit = {"rpm": None, "tpm": 100_000, "window_start": NAIVE.replace(second=0)}
    insert(
        conn, "rate_limits", {**owner, **limit, "requests": 2, "tokens": 0, "reserved_tokens": 500}
    )
    insert(
        conn,
        "reservations",
        *(
            {"id": rid, "key_id": "key_1", "team": "acme", "usd_micros": 0, "tokens": 0}
            | {"state": state, "created_at": NAIVE}
            for rid, state in (
                ("rsv_open", "open"),
                ("rsv_swept", "swept"),
                ("rsv_done", "settled"),
            )
        ),
    )
    held = (("rsv_open", 2_000_000, 500), ("rsv_swept", 1_000_000, 300))
    insert(
        conn,
        "reservation_budgets",
        *({"reservation_id": rid, "budget_id": 1, "amount": amount} for rid, amount, _ in held),
    )
    insert(
        conn,
        "reservation_limits",
        *({"reservation_id": rid, "rate_limit_id": 1, "tokens": tokens} for rid, _, tokens in held),
    )


async def test_the_upgrade_moves_holds_onto_the_reservation_and_back(
    database_url: str,  # noqa: F811
) -> None:
    db = engine.open_database(database_url)
    try:
        await db.run(lambda conn: alembic(conn, "upgrade", "0001"))
        await db.run(v0001_data)
    finally:
        await db.dispose()

    store = await TenancyStore.open(database_url)  # migrates to the newest revision
    try:
        stored: dict[str, str] = await store._db.run(
            lambda conn: dict(conn.execute(text("SELECT id, holds FROM reservations")).all()),
            write=False,
        )
        assert {rid: load_holds(h) for rid, h in stored.items()} == {
            "rsv_open": ([Hold(1, 2_000_000)], [Hold(1, 500)]),
            "rsv_swept": ([Hold(1, 0)], [Hold(1, 0)]),  # the sweep released them
            "rsv_done": ([], []),
        }
        key = await store.get_key("key_1")
        assert key is not None

        def held(rid: str) -> Reservation:
            return Reservation(rid, "key_1", "acme", 0.0, 0, T0)

        # The open one releases its hold; the swept one charges without releasing again.
        await store.settle(held("rsv_open"), ledger_row("r1", "key_1", 0.5, 40), now=T0)
        await store.settle(held("rsv_swept"), ledger_row("r2", "key_1", 0.25, 2), now=T0)
        await store.settle(held("rsv_done"), ledger_row("r3", "key_1", 9.0, 9), now=T0)
        (budget,) = await store.budgets(key, now=T0)
        assert (budget.spent, budget.reserved) == (0.75, 0.0)
        limits = await store._db.run(
            lambda conn: conn.execute(
                text("SELECT requests, tokens, reserved_tokens FROM rate_limits")
            ).one(),
            write=False,
        )
        assert tuple(limits) == (2, 42, 0)
        # Back to v0001: an open reservation's holds become child rows again.
        await store.reserve(key, usd=1.0, tokens=100, now=T0)
        await store._db.run(lambda conn: alembic(conn, "downgrade", "0001"))
        children = await store._db.run(
            lambda conn: conn.execute(text("SELECT amount FROM reservation_budgets")).all(),
            write=False,
        )
        assert [tuple(c) for c in children] == [(1_000_000,)]  # the one still open
        await store._db.run(lambda conn: alembic(conn, "upgrade", "head"))
    finally:
        await store.aclose()


async def test_a_prepared_statement_raises_what_sqlalchemy_raises(
    database_url: str,  # noqa: F811
) -> None:
    store = await TenancyStore.open(database_url)
    insert = Prepared(teams.insert())
    row: dict[str, Any] = {"name": "acme", "allowed_models": None, "allowed_strategies": None}
    row |= {"max_effort": None, "created_at": NAIVE, "policy": None}
    try:
        await store._db.run(lambda conn: insert.run(conn, row))
        with pytest.raises(exc.IntegrityError):
            await store._db.run(lambda conn: insert.run(conn, row))
        with pytest.raises(exc.IntegrityError):
            await store._db.run(lambda conn: insert.run_many(conn, [{**row, "name": "b"}, row]))
        # The failed transaction wrote nothing; the stored time reads back exactly.
        team = await store.get_team("acme")
        assert team is not None and team.created_at == T0
        assert await store.get_team("b") is None
    finally:
        await store.aclose()


async def test_a_cancelled_sqlite_transaction_rolls_back_and_keeps_its_turn(
    tmp_path: Path,
) -> None:
    store = await TenancyStore.open(f"sqlite:///{tmp_path / 'tenancy.sqlite3'}")
    started, go_on = threading.Event(), threading.Event()

    def slow(conn: Connection) -> None:
        conn.execute(teams.insert().values(name="ghost", created_at=NAIVE))
        started.set()
        go_on.wait(10)

    try:
        task = asyncio.create_task(store._db.run(slow))
        await asyncio.to_thread(started.wait, 10)
        task.cancel()
        await asyncio.sleep(0.05)
        assert not task.done()  # it waits for its thread, holding the write turn
        go_on.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await store.get_team("ghost") is None  # rolled back, not committed
        await store.create_team("acme")  # the turn was given back
    finally:
        await store.aclose()


async def test_a_locked_sqlite_database_fails_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "tenancy.sqlite3"
    store = await TenancyStore.open(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)  # another process, writing
    try:
        await store.create_team("acme")
        key, _ = await store.create_key("acme", "ci")
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailableError):
            await store.reserve(key, usd=0.0, tokens=0)
        with pytest.raises(StoreUnavailableError):
            await store.record(ledger_row("r1", key.id, 0.1, 1))
        assert await store.get_team("acme") is not None  # readers are not locked out
        other.execute("ROLLBACK")
        await store.reserve(key, usd=0.0, tokens=0)
    finally:
        other.close()
        await store.aclose()
