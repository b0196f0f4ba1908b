"""The tenancy store's budgets and rate limits: reserved, settled, refused, reset by period,
swept when stale.

Every test runs twice: on a SQLite file and on a real PostgreSQL (tests/postgres.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ponder.errors import (
    BudgetExceededError,
    InvalidRequestError,
    RateLimitedError,
    TenantNotFoundError,
)
from ponder.tenancy import TenancyStore
from tests.postgres import database_url, postgres_server  # noqa: F401
from tests.tenancy_helpers import T0, ledger_row, opened_store  # noqa: F401


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
