"""Budgets and rate limits as counters that only conditional ``UPDATE`` statements change.

Every change to a counter is one SQL statement that reads and writes the row at once, so
concurrent requests (tasks, or replicas on one database) can neither lose an increment nor
slip past a limit:

* reserving ``x`` on a budget is ``UPDATE budgets SET reserved = reserved + x ... WHERE id =
  :id AND spent + reserved + x <= limit`` (with ``spent`` read as 0 when the row's period has
  ended: the reset happens inside the same statement, never as a read-modify-write in
  Python). A row count of 0 means the budget cannot take it; the caller's transaction is
  rolled back, releasing whatever else it had reserved.
* a rate limit is a fixed minute window: requests begun in it, tokens settled in it, and the
  tokens that requests in flight hold. Reserving counts one request and holds its tokens,
  under the same kind of conditional statement.
* settling releases exactly what was held and adds the actual spend, unconditionally (a
  request that overran its reservation is still charged in full).

The functions here run inside a transaction the caller opened; rows are always touched in
id order (budgets, then rate limits) so that PostgreSQL's row locks cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import DateTime, and_, case, false, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from ponder.errors import BudgetExceededError, RateLimitedError
from ponder.tenancy.models import Period, Unit, micros_to_usd
from ponder.tenancy.schema import budgets, rate_limits

EPOCH = datetime(1970, 1, 1)  # the period start of a "total" budget: it never resets
WINDOW = timedelta(minutes=1)


def period_start(period: Period, now: datetime) -> datetime:
    """The start of the period that ``now`` (naive UTC) falls in."""
    if period == "daily":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "monthly":
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return EPOCH


def window_start(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class Hold:
    """What one reservation holds on one row (a budget's or a rate limit's id)."""

    row_id: int
    amount: int


def owners(key_id: str | None, team: str | None) -> ColumnElement[bool]:
    """The budgets that apply to a key and its team (either may be None)."""
    return _scoped(budgets.c.scope, budgets.c.owner, key_id, team)


def limit_owners(key_id: str | None, team: str | None) -> ColumnElement[bool]:
    return _scoped(rate_limits.c.scope, rate_limits.c.owner, key_id, team)


def _scoped(
    scope: ColumnElement[str], owner: ColumnElement[str], key_id: str | None, team: str | None
) -> ColumnElement[bool]:
    found = [and_(scope == s, owner == o) for s, o in (("key", key_id), ("team", team)) if o]
    return or_(false(), *found)


def _at(moment: datetime) -> ColumnElement[datetime]:
    return literal(moment, DateTime())


def _period_ended(now: datetime) -> tuple[ColumnElement[bool], ColumnElement[datetime]]:
    """Whether a budget row's period has ended at ``now``, and the start of the row's
    current period, as SQL expressions over the row's own ``period``."""
    current = case(
        (budgets.c.period == "daily", _at(period_start("daily", now))),
        (budgets.c.period == "monthly", _at(period_start("monthly", now))),
        else_=_at(EPOCH),
    )
    return budgets.c.period_start < current, current


async def reserve_budgets(
    conn: AsyncConnection, key_id: str, team: str, *, usd_micros: int, tokens: int, now: datetime
) -> list[Hold]:
    """Hold ``usd_micros``/``tokens`` on every budget of the key and its team, or raise
    :class:`BudgetExceededError` naming the first that cannot take it."""
    rows = (
        await conn.execute(
            select(budgets.c.id, budgets.c.unit).where(owners(key_id, team)).order_by(budgets.c.id)
        )
    ).all()
    ended, current = _period_ended(now)
    holds = []
    for row_id, unit in rows:
        amount = usd_micros if unit == "usd" else tokens
        spent = case((ended, 0), else_=budgets.c.spent)
        result = await conn.execute(
            update(budgets)
            .where(
                budgets.c.id == row_id,
                spent + budgets.c.reserved + amount <= budgets.c.amount_limit,
                # An exhausted budget refuses even a request that reserves nothing.
                spent + budgets.c.reserved < budgets.c.amount_limit,
            )
            .values(
                spent=spent,
                reserved=budgets.c.reserved + amount,
                period_start=case((ended, current), else_=budgets.c.period_start),
            )
        )
        if result.rowcount != 1:
            raise await _exhausted(conn, row_id, amount, now)
        holds.append(Hold(row_id, amount))
    return holds


async def _exhausted(
    conn: AsyncConnection, row_id: int, amount: int, now: datetime
) -> BudgetExceededError:
    row = (await conn.execute(select(budgets).where(budgets.c.id == row_id))).one()
    current = period_start(row.period, now)
    spent = 0 if row.period_start < current else row.spent
    unit: Unit = row.unit

    def show(value: int) -> str:
        return f"${micros_to_usd(value):.6f}" if unit == "usd" else f"{value} tokens"

    return BudgetExceededError(
        f"the {row.scope} {row.owner!r} {row.period} {unit} budget is exhausted: "
        f"{show(spent)} spent and {show(row.reserved)} reserved of {show(row.amount_limit)}; "
        f"this request needs up to {show(amount)}"
    )


async def reserve_limits(
    conn: AsyncConnection, key_id: str, team: str, *, tokens: int, now: datetime
) -> list[Hold]:
    """Count one request and hold ``tokens`` on every rate limit of the key and its team,
    or raise :class:`RateLimitedError` with the seconds left in the current window."""
    rows = (
        await conn.execute(
            select(rate_limits.c.id).where(limit_owners(key_id, team)).order_by(rate_limits.c.id)
        )
    ).all()
    start = window_start(now)
    ended = rate_limits.c.window_start < _at(start)
    requests = case((ended, 0), else_=rate_limits.c.requests)
    used = case((ended, 0), else_=rate_limits.c.tokens)
    holds = []
    for (row_id,) in rows:
        result = await conn.execute(
            update(rate_limits)
            .where(
                rate_limits.c.id == row_id,
                or_(rate_limits.c.rpm.is_(None), requests + 1 <= rate_limits.c.rpm),
                or_(
                    rate_limits.c.tpm.is_(None),
                    used + rate_limits.c.reserved_tokens + tokens <= rate_limits.c.tpm,
                ),
            )
            .values(
                requests=requests + 1,
                tokens=used,
                reserved_tokens=rate_limits.c.reserved_tokens + tokens,
                window_start=case((ended, _at(start)), else_=rate_limits.c.window_start),
            )
        )
        if result.rowcount != 1:
            raise await _limited(conn, row_id, tokens, now)
        holds.append(Hold(row_id, tokens))
    return holds


async def _limited(
    conn: AsyncConnection, row_id: int, tokens: int, now: datetime
) -> RateLimitedError:
    row = (await conn.execute(select(rate_limits).where(rate_limits.c.id == row_id))).one()
    start = window_start(now)
    fresh = row.window_start >= start
    requests = row.requests if fresh else 0
    used = row.tokens if fresh else 0
    retry_after = max(0.0, (max(row.window_start, start) + WINDOW - now).total_seconds())
    if row.rpm is not None and requests + 1 > row.rpm:
        what, by_tokens = f"{row.rpm} requests per minute", False
    else:
        what, by_tokens = f"{row.tpm} tokens per minute", True
        if row.reserved_tokens + tokens > (row.tpm or 0):
            what += f" ({row.reserved_tokens} held by requests in flight, {used} used)"
    return RateLimitedError(
        f"the {row.scope} {row.owner!r} rate limit of {what} is reached; "
        f"retry in {retry_after:.1f} s",
        retry_after=retry_after,
        tokens=by_tokens,
    )


async def charge(
    conn: AsyncConnection,
    budget_holds: Sequence[Hold],
    limit_holds: Sequence[Hold],
    *,
    usd_micros: int,
    tokens: int,
    now: datetime,
) -> None:
    """Release each hold (its amount may be 0) and add the actual spend: ``usd_micros`` or
    ``tokens`` to each budget by its unit, ``tokens`` to each rate limit's window."""
    ended, current = _period_ended(now)
    for hold in sorted(budget_holds, key=lambda h: h.row_id):
        actual = case((budgets.c.unit == "usd", usd_micros), else_=tokens)
        await conn.execute(
            update(budgets)
            .where(budgets.c.id == hold.row_id)
            .values(
                spent=case((ended, 0), else_=budgets.c.spent) + actual,
                reserved=budgets.c.reserved - hold.amount,
                period_start=case((ended, current), else_=budgets.c.period_start),
            )
        )
    start = window_start(now)
    ended_window = rate_limits.c.window_start < _at(start)
    for hold in sorted(limit_holds, key=lambda h: h.row_id):
        await conn.execute(
            update(rate_limits)
            .where(rate_limits.c.id == hold.row_id)
            .values(
                requests=case((ended_window, 0), else_=rate_limits.c.requests),
                tokens=case((ended_window, 0), else_=rate_limits.c.tokens) + tokens,
                reserved_tokens=rate_limits.c.reserved_tokens - hold.amount,
                window_start=case((ended_window, _at(start)), else_=rate_limits.c.window_start),
            )
        )


async def applicable(
    conn: AsyncConnection, key_id: str | None, team: str | None
) -> tuple[list[Hold], list[Hold]]:
    """Zero holds on every budget and rate limit of a key and its team: for charging a
    request that reserved nothing."""
    budget_ids = (await conn.execute(select(budgets.c.id).where(owners(key_id, team)))).scalars()
    limit_ids = (
        await conn.execute(select(rate_limits.c.id).where(limit_owners(key_id, team)))
    ).scalars()
    return [Hold(i, 0) for i in budget_ids], [Hold(i, 0) for i in limit_ids]


async def release(
    conn: AsyncConnection, budget_holds: Sequence[Hold], limit_holds: Sequence[Hold]
) -> None:
    """Give back what a reservation held, charging nothing (a request that never settled)."""
    for hold in sorted(budget_holds, key=lambda h: h.row_id):
        await conn.execute(
            update(budgets)
            .where(budgets.c.id == hold.row_id)
            .values(reserved=budgets.c.reserved - hold.amount)
        )
    for hold in sorted(limit_holds, key=lambda h: h.row_id):
        await conn.execute(
            update(rate_limits)
            .where(rate_limits.c.id == hold.row_id)
            .values(reserved_tokens=rate_limits.c.reserved_tokens - hold.amount)
        )
