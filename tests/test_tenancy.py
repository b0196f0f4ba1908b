"""The tenancy store (ponder.tenancy): keys, budgets, rate limits, the ledger and traces.

Every test runs twice: on a SQLite file and on a real PostgreSQL (tests/postgres.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from ponder.config import PonderConfig, config_from_mapping
from ponder.errors import (
    AuthenticationError,
    BudgetExceededError,
    InvalidRequestError,
    RateLimitedError,
    StoreUnavailableError,
    TenantNotFoundError,
)
from ponder.metering import CallRecord
from ponder.tenancy import RequestRow, TenancyStore, resolve_database_url
from ponder.types import Usage
from tests.postgres import database_url, postgres_server  # noqa: F401

T0 = datetime(2031, 3, 14, 12, 0, 30, tzinfo=UTC)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TenancyStore]:  # noqa: F811
    opened = await TenancyStore.open(database_url)
    try:
        yield opened
    finally:
        await opened.aclose()


def ledger_row(
    request_id: str,
    key_id: str | None,
    team: str | None,
    *,
    cost: float = 0.0,
    prompt: int = 0,
    completion: int = 0,
    model: str = "m",
    strategy: str | None = None,
    outcome: str = "ok",
    at: datetime = T0,
) -> RequestRow:
    return RequestRow(
        request_id=request_id,
        key_id=key_id,
        team=team,
        model=model,
        strategy=strategy,
        effort=None,
        usage=Usage(prompt_tokens=prompt, completion_tokens=completion, calls=1),
        cost_usd=cost,
        seconds=0.5,
        outcome=outcome,  # type: ignore[arg-type]
        calls=(CallRecord("remote:m", Usage(prompt, completion, calls=1), 0.5, "ok"),),
        created_at=at,
    )


async def test_keys_are_created_authenticated_rotated_and_revoked(store: TenancyStore) -> None:
    team = await store.create_team("acme", allowed_models=["gpt-*"], max_effort="high")
    assert (team.name, team.allowed_models, team.max_effort) == ("acme", ("gpt-*",), "high")
    key, secret = await store.create_key("acme", "ci", team_admin=True, allowed_strategies=["auto"])
    assert secret.startswith("pk-") and len(secret) >= 43
    assert key.prefix == secret[3:11] and key.team_admin and key.allowed_strategies == ("auto",)
    assert await store.authenticate(secret) == key
    assert await store.authenticate(secret + "x") is None
    assert await store.authenticate("pk-" + "A" * 43) is None
    assert await store.authenticate("sk-nothing") is None

    rotated, new_secret = await store.rotate_key(key.id)
    assert rotated.id == key.id and rotated.allowed_strategies == ("auto",)
    assert new_secret != secret and rotated.prefix == new_secret[3:11]
    assert await store.authenticate(secret) is None
    assert (await store.authenticate(new_secret)) == rotated

    other, other_secret = await store.create_key("acme", "batch")
    await store.revoke_key(key.id)
    await store.revoke_key(key.id)  # idempotent
    assert await store.authenticate(new_secret) is None
    assert await store.authenticate(other_secret) == other
    listed = await store.list_keys("acme")
    assert [k.id for k in listed] == [key.id, other.id]
    assert listed[0].revoked and not listed[1].revoked
    with pytest.raises(InvalidRequestError, match="revoked"):
        await store.rotate_key(key.id)
    with pytest.raises(AuthenticationError):
        await store.reserve(listed[0], usd=0.0, tokens=0)

    with pytest.raises(TenantNotFoundError):
        await store.create_key("nobody", "x")
    with pytest.raises(TenantNotFoundError):
        await store.revoke_key("key_missing")
    with pytest.raises(TenantNotFoundError):
        await store.rotate_key("key_missing")
    with pytest.raises(InvalidRequestError, match="already exists"):
        await store.create_team("acme")
    await store.create_team("zeta")
    assert [t.name for t in await store.list_teams()] == ["acme", "zeta"]
    assert await store.list_keys("zeta") == []
    assert len(await store.list_keys()) == 2
    assert (await store.get_team("acme")) == team and await store.get_team("nope") is None


async def test_only_the_hash_of_a_secret_is_stored(
    store: TenancyStore,
    database_url: str,  # noqa: F811
) -> None:
    await store.create_team("acme")
    key, secret = await store.create_key("acme", "ci")
    _, rotated = await store.rotate_key(key.id)
    body = secret[3:]

    def dump(conn: Connection) -> tuple[list[str], str]:
        tables = inspect(conn).get_table_names()
        return tables, "".join(repr(conn.execute(text(f"SELECT * FROM {t}")).all()) for t in tables)

    tables, dumped = await store._db.run(dump, write=False)
    assert "api_keys" in tables
    for value in (secret, rotated):
        assert value[3:] not in dumped
    if database_url.startswith("sqlite"):
        await store.aclose()
        path = Path(database_url.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert body.encode() not in raw and rotated[3:].encode() not in raw
        assert key.id.encode() in raw  # the file was really read


async def test_usd_budget_reserve_settle_and_overrun(store: TenancyStore) -> None:
    await store.create_team("acme")
    key, _ = await store.create_key("acme", "ci")
    await store.set_budget("key", key.id, unit="usd", period="total", limit=1.0)
    first = await store.reserve(key, usd=0.6, tokens=10, now=T0)
    with pytest.raises(BudgetExceededError, match=r"key .* total usd budget"):
        await store.reserve(key, usd=0.5, tokens=10, now=T0)
    (budget,) = await store.budgets(key, now=T0)
    assert (budget.spent, budget.reserved, budget.remaining) == (0.0, 0.6, pytest.approx(0.4))
    # It overran its reservation: the whole actual spend is charged.
    await store.settle(first, ledger_row("r1", key.id, "acme", cost=0.9, prompt=3), now=T0)
    (budget,) = await store.budgets(key, now=T0)
    assert (budget.spent, budget.reserved) == (0.9, 0.0)
    second = await store.reserve(key, usd=0.1, tokens=0, now=T0)
    await store.settle(second, ledger_row("r2", key.id, "acme", cost=0.25), now=T0)
    (budget,) = await store.budgets(key, now=T0)
    assert budget.spent == 1.15 and budget.remaining == 0.0
    # Exhausted: even a request that reserves nothing is refused.
    with pytest.raises(BudgetExceededError):
        await store.reserve(key, usd=0.0, tokens=0, now=T0)
    # Raising the limit keeps what was spent (no reset by a last write).
    raised = await store.set_budget("key", key.id, unit="usd", period="total", limit=2.0)
    assert (raised.limit, raised.spent) == (2.0, 1.15)
    await store.reserve(key, usd=0.8, tokens=0, now=T0)


async def test_token_budget_on_the_team_is_shared_and_all_or_nothing(store: TenancyStore) -> None:
    await store.create_team("acme")
    a, _ = await store.create_key("acme", "a")
    b, _ = await store.create_key("acme", "b")
    await store.set_budget("team", "acme", unit="tokens", period="monthly", limit=1000)
    await store.set_budget("key", a.id, unit="usd", period="daily", limit=5.0)
    held = await store.reserve(a, usd=1.0, tokens=700, now=T0)
    with pytest.raises(BudgetExceededError, match="team 'acme' monthly tokens"):
        await store.reserve(a, usd=1.0, tokens=400, now=T0)
    # The failed reserve left nothing behind on the key's usd budget.
    key_budget = next(x for x in await store.budgets(a, now=T0) if x.scope == "key")
    assert key_budget.reserved == 1.0
    await store.reserve(b, usd=0.0, tokens=300, now=T0)
    with pytest.raises(BudgetExceededError):
        await store.reserve(b, usd=0.0, tokens=1, now=T0)
    await store.settle(held, ledger_row("r1", a.id, "acme", cost=0.5, prompt=100, completion=50))
    team_budget = next(x for x in await store.budgets(b, now=T0) if x.scope == "team")
    assert (team_budget.spent, team_budget.reserved) == (150, 300)
    assert [x.scope for x in await store.budgets(b)] == ["team"]
    with pytest.raises(InvalidRequestError):
        await store.set_budget("team", "acme", unit="tokens", period="daily", limit=1.5)
    with pytest.raises(TenantNotFoundError):
        await store.set_budget("team", "nobody", unit="usd", period="daily", limit=1)
    with pytest.raises(InvalidRequestError):
        await store.set_budget("org", "acme", unit="usd", period="daily", limit=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("period", "later", "resets"),
    [
        ("daily", T0.replace(hour=23, minute=59), False),
        ("daily", T0 + timedelta(days=1), True),
        ("monthly", T0.replace(day=31, hour=23), False),
        ("monthly", T0.replace(month=4, day=1), True),
        ("total", T0 + timedelta(days=400), False),
    ],
)
async def test_budget_periods_reset(
    store: TenancyStore, period: str, later: datetime, resets: bool
) -> None:
    await store.create_team("acme")
    key, _ = await store.create_key("acme", "ci")
    await store.set_budget("key", key.id, unit="usd", period=period, limit=1.0, now=T0)  # type: ignore[arg-type]
    r = await store.reserve(key, usd=0.5, tokens=0, now=T0)
    await store.settle(r, ledger_row("r1", key.id, "acme", cost=0.9), now=T0)
    held = await store.reserve(key, usd=0.1, tokens=0, now=T0)  # in flight across the reset
    (budget,) = await store.budgets(key, now=later)
    assert budget.spent == (0.0 if resets else 0.9) and budget.reserved == 0.1
    if resets:
        assert budget.period_start > T0
        r = await store.reserve(key, usd=0.85, tokens=0, now=later)
        await store.settle(r, ledger_row("r2", key.id, "acme", cost=0.2), now=later)
        await store.settle(held, ledger_row("r3", key.id, "acme", cost=0.05), now=later)
        (budget,) = await store.budgets(key, now=later)
        assert (budget.spent, budget.reserved) == (0.25, 0.0)
        # Seen from the earlier time (a replica's clock behind): no second reset.
        (budget,) = await store.budgets(key, now=T0)
        assert budget.spent == 0.25
    else:
        with pytest.raises(BudgetExceededError):
            await store.reserve(key, usd=0.01, tokens=0, now=later)


async def test_rate_limits_refuse_with_retry_after(store: TenancyStore) -> None:
    await store.create_team("acme")
    key, _ = await store.create_key("acme", "ci")
    await store.set_rate_limit("key", key.id, rpm=2, tpm=None, now=T0)
    await store.set_rate_limit("team", "acme", rpm=None, tpm=1000, now=T0)
    first = await store.reserve(key, usd=0, tokens=600, now=T0)
    with pytest.raises(RateLimitedError) as tokens_error:
        await store.reserve(key, usd=0, tokens=500, now=T0)
    assert tokens_error.value.error_type == "tokens" and tokens_error.value.status_code == 429
    assert tokens_error.value.retry_after == pytest.approx(30.0)
    await store.reserve(key, usd=0, tokens=100, now=T0)
    with pytest.raises(RateLimitedError, match="2 requests per minute") as requests_error:
        await store.reserve(key, usd=0, tokens=0, now=T0 + timedelta(seconds=20))
    assert requests_error.value.retry_after == pytest.approx(10.0)
    assert requests_error.value.code == "rate_limit_exceeded"
    # The next minute: requests start over; tokens held in flight still count.
    nxt = T0 + timedelta(seconds=40)
    with pytest.raises(RateLimitedError, match="tokens per minute"):
        await store.reserve(key, usd=0, tokens=400, now=nxt)
    await store.settle(first, ledger_row("r1", key.id, "acme", prompt=200, completion=50), now=nxt)
    # 250 settled in this window + 100 held: 650 left.
    await store.reserve(key, usd=0, tokens=650, now=nxt)
    with pytest.raises(RateLimitedError):
        await store.reserve(key, usd=0, tokens=1, now=nxt)
    await store.set_rate_limit("team", "acme", rpm=None, tpm=None)
    await store.reserve(key, usd=0, tokens=10_000, now=nxt + timedelta(minutes=1))


async def test_settle_is_idempotent_and_sweep_releases_stale(store: TenancyStore) -> None:
    await store.create_team("acme")
    key, _ = await store.create_key("acme", "ci")
    await store.set_budget("key", key.id, unit="usd", period="total", limit=1.0)
    await store.set_budget("team", "acme", unit="tokens", period="total", limit=10_000)
    await store.set_rate_limit("key", key.id, rpm=None, tpm=5000, now=T0)
    r = await store.reserve(key, usd=0.5, tokens=1000, now=T0)
    row = ledger_row("r1", key.id, "acme", cost=0.2, prompt=100, completion=20)
    await store.settle(r, row, now=T0)
    await store.settle(r, row, now=T0)
    budgets = {b.unit: b for b in await store.budgets(key, now=T0)}
    assert (budgets["usd"].spent, budgets["usd"].reserved) == (0.2, 0.0)
    assert (budgets["tokens"].spent, budgets["tokens"].reserved) == (120, 0)
    assert (await store.usage(group_by="key"))[0]["requests"] == 1

    crashed = await store.reserve(key, usd=0.7, tokens=4000, now=T0)
    with pytest.raises(BudgetExceededError):
        await store.reserve(key, usd=0.2, tokens=0, now=T0)
    assert await store.sweep_stale(timedelta(minutes=10), now=T0 + timedelta(minutes=5)) == 0
    assert await store.sweep_stale(timedelta(minutes=10), now=T0 + timedelta(minutes=11)) == 1
    assert await store.sweep_stale(timedelta(minutes=10), now=T0 + timedelta(minutes=12)) == 0
    budgets = {b.unit: b for b in await store.budgets(key, now=T0)}
    assert budgets["usd"].reserved == 0.0 and budgets["tokens"].reserved == 0
    await store.reserve(key, usd=0.2, tokens=4000, now=T0)  # tpm hold released too
    # The crashed request's process settles after all: its spend still counts, once.
    late = ledger_row("r2", key.id, "acme", cost=0.3, prompt=10)
    await store.settle(crashed, late, now=T0)
    await store.settle(crashed, late, now=T0)
    budgets = {b.unit: b for b in await store.budgets(key, now=T0)}
    assert (budgets["usd"].spent, budgets["usd"].reserved) == (0.5, 0.2)
    assert budgets["tokens"].spent == 130
    with pytest.raises(TenantNotFoundError):
        await store.settle(crashed.__class__("rsv_missing", key.id, "acme", 0, 0, T0), late)


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


async def test_schema_matches_the_migrations(store: TenancyStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from ponder.tenancy.schema import metadata

    def diff(conn: object) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))  # type: ignore[arg-type]

    def check(conn: Connection) -> str | None:
        assert diff(conn) == []
        if store.dialect == "sqlite":
            pragmas = [
                conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            ]
            assert pragmas == ["wal", 1, 60_000]
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    assert await store._db.run(check, write=False) == "0002"


async def test_reopening_keeps_everything(database_url: str) -> None:  # noqa: F811
    first = await TenancyStore.open(database_url)
    await first.create_team("acme")
    key, secret = await first.create_key("acme", "ci")
    await first.aclose()
    again = await TenancyStore.open(database_url)
    try:
        assert await again.authenticate(secret) == key
    finally:
        await again.aclose()


async def test_in_memory_sqlite_serializes_its_one_connection() -> None:
    import asyncio

    store = await TenancyStore.open("sqlite://")
    try:
        await store.create_team("acme")
        key, _ = await store.create_key("acme", "ci")
        await store.set_budget("key", key.id, unit="tokens", period="total", limit=10)
        results = await asyncio.gather(
            *(store.reserve(key, usd=0, tokens=3) for _ in range(10)), return_exceptions=True
        )
        assert sum(not isinstance(r, BaseException) for r in results) == 3
    finally:
        await store.aclose()


async def test_an_unreachable_database_fails_closed() -> None:
    with pytest.raises(StoreUnavailableError):
        await TenancyStore.open("postgresql://nobody@127.0.0.1:9/none?connect_timeout=2")


def test_the_database_url_comes_from_env_then_config_then_default() -> None:
    config = config_from_mapping({"database_url": "postgresql://db/ponder"})
    assert resolve_database_url(config, {}) == "postgresql://db/ponder"
    env = {"PONDER_DATABASE_URL": "sqlite:////tmp/x.db"}
    assert resolve_database_url(config, env) == "sqlite:////tmp/x.db"
    default = resolve_database_url(PonderConfig(), {})
    assert default.startswith("sqlite:///") and default.endswith("tenancy.sqlite3")
