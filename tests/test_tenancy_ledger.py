"""The tenancy store's ledger and traces: rows recorded once and charged once, usage grouped
by each dimension within a time range, traces stored with their owner.

Every test runs twice: on a SQLite file and on a real PostgreSQL (tests/postgres.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from ponder.errors import InvalidRequestError
from ponder.tenancy import TenancyStore
from tests.postgres import database_url, postgres_server  # noqa: F401
from tests.tenancy_helpers import T0, ledger_row, opened_store  # noqa: F401


async def test_record_writes_the_ledger_and_charges_once(store: TenancyStore) -> None:
    await store.create_team("acme")
    key, _ = await store.create_key("acme", "ci")
    await store.set_budget("team", "acme", unit="usd", period="daily", limit=1.0, now=T0)
    row = ledger_row("r1", key.id, None, cost=0.4, prompt=5, outcome="backend_error")
    await store.record(row, now=T0)
    await store.record(row, now=T0)
    await store.record(ledger_row("anon", None, None, prompt=7), now=T0)
    (budget,) = await store.budgets(key, now=T0)
    assert budget.spent == 0.4
    (by_key,) = [u for u in await store.usage(group_by="key") if u["key"] == key.id]
    assert (by_key["requests"], by_key["ok"], by_key["cost_usd"]) == (1, 0, 0.4)
    with pytest.raises(InvalidRequestError):
        await store.record(ledger_row("bad", None, None, cost=-1.0))
    with pytest.raises(InvalidRequestError, match="negative"):
        await store.record(ledger_row("worse", key.id, "acme", prompt=-5))
    assert {u["key"] for u in await store.usage(group_by="key")} == {key.id, None}


async def test_usage_groups_by_each_dimension_within_a_range(store: TenancyStore) -> None:
    await store.create_team("acme")
    await store.create_team("beta")
    a, _ = await store.create_key("acme", "a")
    b, _ = await store.create_key("beta", "b")
    day1, day2, day3 = T0, T0 + timedelta(days=1), T0 + timedelta(days=2)
    rows = [
        ledger_row("1", a.id, "acme", cost=0.1, prompt=10, completion=1, model="x", at=day1),
        ledger_row("2", a.id, "acme", cost=0.2, prompt=20, completion=2, model="y", at=day2,
                   strategy="auto"),
        ledger_row("3", b.id, "beta", cost=0.3, prompt=30, completion=3, model="x", at=day2,
                   strategy="auto", outcome="client_error"),
        ledger_row("4", b.id, "beta", cost=0.4, prompt=40, completion=4, model="x", at=day3),
    ]  # fmt: skip
    for row in rows:
        await store.record(row)

    def pick(groups: list[dict[str, object]], field: str) -> dict[object, tuple[object, ...]]:
        return {g[field]: (g["requests"], g["total_tokens"], g["cost_usd"]) for g in groups}

    assert pick(await store.usage(group_by="key"), "key") == {
        a.id: (2, 33, 0.3),
        b.id: (2, 77, 0.7),
    }
    assert pick(await store.usage(group_by="team", since=day2), "team") == {
        "acme": (1, 22, 0.2),
        "beta": (2, 77, 0.7),
    }
    assert pick(await store.usage(group_by="model", until=day3), "model") == {
        "x": (2, 44, 0.4),
        "y": (1, 22, 0.2),
    }
    strategies = await store.usage(group_by="strategy")
    assert [g["strategy"] for g in strategies] == ["auto", None]
    assert pick(strategies, "strategy")["auto"] == (2, 55, 0.5)
    days = await store.usage(group_by="day", since=day1, until=day3 + timedelta(hours=1))
    assert [(g["day"], g["requests"]) for g in days] == [
        ("2031-03-14", 1),
        ("2031-03-15", 2),
        ("2031-03-16", 1),
    ]
    assert pick(await store.usage(group_by="day", team="beta", since=day2, until=day3), "day") == {
        "2031-03-15": (1, 33, 0.3)
    }
    only_a = await store.usage(group_by="model", key_id=a.id)
    assert [(g["model"], g["ok"], g["calls"]) for g in only_a] == [("x", 1, 1), ("y", 1, 1)]
    with pytest.raises(InvalidRequestError):
        await store.usage(group_by="region")  # type: ignore[arg-type]


async def test_traces_are_stored_with_their_owner(store: TenancyStore) -> None:
    body = {"strategy": "auto", "steps": [{"text": "é ∑ 😀", "n": 3}]}
    await store.put_trace("t1", body, key_id="key_1", team="acme", model="m")
    got = await store.get_trace("t1")
    assert got is not None
    assert (got.body, got.key_id, got.team, got.model) == (body, "key_1", "acme", "m")
    await store.put_trace("t1", {"v": 2}, key_id=None, team=None, model=None)
    replaced = await store.get_trace("t1")
    assert replaced is not None and (replaced.body, replaced.key_id) == ({"v": 2}, None)
    assert await store.get_trace("missing") is None
