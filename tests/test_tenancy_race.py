"""Races on the tenancy store's counters: concurrent reserves on one store and across two
stores on the same database (two gateway processes) never overspend a budget or a rate limit,
and concurrent settles lose no increment. Each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from ponder.errors import BudgetExceededError, RateLimitedError
from ponder.metering import CallRecord
from ponder.tenancy import ApiKey, RequestRow, Reservation, TenancyStore
from ponder.types import Usage
from tests.postgres import database_url, postgres_server  # noqa: F401

NOW = datetime(2031, 3, 14, 12, 0, 5, tzinfo=UTC)
CONCURRENT = 50


@pytest.fixture(params=["one store", "two stores"])
async def stores(
    request: pytest.FixtureRequest,
    database_url: str,  # noqa: F811
) -> AsyncIterator[list[TenancyStore]]:
    """The stores that race: one, or two separate ones on the same database."""
    opened = [await TenancyStore.open(database_url)]
    if request.param == "two stores":
        opened.append(await TenancyStore.open(database_url))
    try:
        yield opened
    finally:
        for store in opened:
            await store.aclose()


def row(request_id: str, key: ApiKey, micros: int, tokens: int) -> RequestRow:
    usage = Usage(prompt_tokens=tokens // 3, completion_tokens=tokens - tokens // 3, calls=1)
    return RequestRow(
        request_id=request_id,
        key_id=key.id,
        team=key.team,
        model="m",
        strategy="auto",
        effort="low",
        usage=usage,
        cost_usd=micros / 1_000_000,
        seconds=0.01,
        outcome="ok",
        calls=(CallRecord("remote:m", usage, 0.01, "ok"),),
        created_at=NOW,
    )


async def counters(store: TenancyStore, table: str) -> list[tuple[int, ...]]:
    columns = "unit, spent, reserved" if table == "budgets" else "requests, tokens, reserved_tokens"
    query = text(f"SELECT {columns} FROM {table} ORDER BY id")
    rows = await store._db.run(lambda conn: conn.execute(query).all(), write=False)
    return [tuple(r) for r in rows]


async def test_concurrent_reserves_never_overspend(stores: list[TenancyStore]) -> None:
    first = stores[0]
    await first.create_team("acme")
    key, _ = await first.create_key("acme", "ci")
    usd_limit, token_limit = 1.0, 10_000
    usd_each, tokens_each = 0.15, 1_700  # 6 fit the usd budget, 5 the token budget
    await first.set_budget("key", key.id, unit="usd", period="daily", limit=usd_limit, now=NOW)
    await first.set_budget("team", "acme", unit="tokens", period="total", limit=token_limit)

    results = await asyncio.gather(
        *(
            stores[i % len(stores)].reserve(key, usd=usd_each, tokens=tokens_each, now=NOW)
            for i in range(CONCURRENT)
        ),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, BudgetExceededError)]
    assert len(won) + len(refused) == CONCURRENT, [r for r in results if isinstance(r, Exception)]
    assert len(won) * usd_each <= usd_limit and len(won) * tokens_each <= token_limit
    assert len(won) == 5  # every reservation that fits is granted: none lost to a conflict

    # Settle them all at once with actuals that differ (some past their reservation).
    rng = random.Random(7)
    actual = [(rng.randint(1, 300_000), rng.randint(1, 3_000)) for _ in won]
    await asyncio.gather(
        *(
            stores[i % len(stores)].settle(r, row(f"req-{i}", key, micros, tokens), now=NOW)
            for i, (r, (micros, tokens)) in enumerate(zip(won, actual, strict=True))
        )
    )
    usd_spent, token_spent = sum(m for m, _ in actual), sum(t for _, t in actual)
    assert await counters(first, "budgets") == [("usd", usd_spent, 0), ("tokens", token_spent, 0)]
    budgets = {b.unit: b for b in await stores[-1].budgets(key, now=NOW)}
    assert budgets["usd"].spent == usd_spent / 1_000_000 and budgets["tokens"].spent == token_spent
    (total,) = await first.usage(group_by="key")
    assert (total["requests"], total["total_tokens"]) == (len(won), token_spent)
    assert total["cost_usd"] == usd_spent / 1_000_000


async def test_concurrent_reserves_never_pass_a_rate_limit(stores: list[TenancyStore]) -> None:
    first = stores[0]
    await first.create_team("acme")
    key, _ = await first.create_key("acme", "ci")
    await first.set_rate_limit("key", key.id, rpm=7, tpm=None, now=NOW)
    await first.set_rate_limit("team", "acme", rpm=None, tpm=4_000, now=NOW)
    results = await asyncio.gather(
        *(
            stores[i % len(stores)].reserve(key, usd=0, tokens=500, now=NOW)
            for i in range(CONCURRENT)
        ),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, Reservation)]
    limited = [r for r in results if isinstance(r, RateLimitedError)]
    assert len(won) + len(limited) == CONCURRENT
    assert len(won) == 7  # rpm 7 binds before tpm 4000 / 500 = 8
    assert all(e.retry_after == pytest.approx(55.0) for e in limited)
    # Both limits count the requests and hold the tokens of the 7 that passed, nothing more.
    assert await counters(first, "rate_limits") == [(7, 0, 3_500), (7, 0, 3_500)]


async def test_concurrent_settles_lose_no_increment(stores: list[TenancyStore]) -> None:
    first = stores[0]
    await first.create_team("acme")
    keys = [(await first.create_key("acme", f"k{i}"))[0] for i in range(5)]
    await first.set_budget("team", "acme", unit="usd", period="monthly", limit=1_000, now=NOW)
    await first.set_budget("team", "acme", unit="tokens", period="daily", limit=10**9, now=NOW)
    await first.set_rate_limit("team", "acme", rpm=None, tpm=10**9, now=NOW)
    rng = random.Random(11)
    plan = [
        (keys[i % 5], rng.randint(1, 999_999), rng.randint(1, 5_000)) for i in range(CONCURRENT)
    ]

    async def one(i: int, key: ApiKey, micros: int, tokens: int) -> None:
        store = stores[i % len(stores)]
        held = await store.reserve(key, usd=0.5, tokens=2_000, now=NOW)
        await store.settle(held, row(f"req-{i}", key, micros, tokens), now=NOW)

    await asyncio.gather(*(one(i, *step) for i, step in enumerate(plan)))
    usd_spent, token_spent = sum(p[1] for p in plan), sum(p[2] for p in plan)
    assert await counters(first, "budgets") == [("usd", usd_spent, 0), ("tokens", token_spent, 0)]
    assert await counters(first, "rate_limits") == [(CONCURRENT, token_spent, 0)]
    by_key = await first.usage(group_by="key")
    assert sum(g["requests"] for g in by_key) == CONCURRENT
    assert sum(g["total_tokens"] for g in by_key) == token_spent


async def test_stores_opening_at_once_migrate_once(database_url: str) -> None:  # noqa: F811
    opened = await asyncio.gather(*(TenancyStore.open(database_url) for _ in range(3)))
    try:
        await opened[0].create_team("acme")
        assert [t.name for t in await opened[2].list_teams()] == ["acme"]
    finally:
        for store in opened:
            await store.aclose()
