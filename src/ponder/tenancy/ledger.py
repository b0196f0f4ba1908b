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
id order (budgets, then rate limits) so that PostgreSQL's row locks cannot deadlock. The
statements are built once, with bound parameters, and run as :class:`Prepared` statements
(building, hashing and executing a Core statement costs more than SQLite takes to run it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    and_,
    bindparam,
    case,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from ponder.errors import BudgetExceededError, RateLimitedError
from ponder.tenancy.models import Period, Unit, micros_to_usd
from ponder.tenancy.prepared import Prepared
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


def _owned(scope: ColumnElement[str], owner: ColumnElement[str]) -> ColumnElement[bool]:
    """The rows of the key ``:key_id`` and of the team ``:team`` (a NULL matches none)."""
    return or_(
        and_(scope == "key", owner == bindparam("key_id")),
        and_(scope == "team", owner == bindparam("team")),
    )


def owners(key_id: str | None, team: str | None) -> dict[str, Any]:
    """The parameters of the statements that pick a key's and its team's rows."""
    return {"key_id": key_id, "team": team}


# -- the statements ----------------------------------------------------------------------
_BUDGET_OWNED = _owned(budgets.c.scope, budgets.c.owner)
_LIMIT_OWNED = _owned(rate_limits.c.scope, rate_limits.c.owner)

KEY_BUDGETS = select(budgets).where(_BUDGET_OWNED).order_by(budgets.c.scope, budgets.c.id)
HAS_LIMITS = select(rate_limits.c.id).where(_LIMIT_OWNED).limit(1)
_BUDGET_IDS = Prepared(
    select(budgets.c.id, budgets.c.unit).where(_BUDGET_OWNED).order_by(budgets.c.id)
)
_LIMIT_IDS = Prepared(select(rate_limits.c.id).where(_LIMIT_OWNED).order_by(rate_limits.c.id))
_APPLICABLE = Prepared(
    select(literal("budget").label("kind"), budgets.c.id)
    .where(_BUDGET_OWNED)
    .union_all(select(literal("limit").label("kind"), rate_limits.c.id).where(_LIMIT_OWNED))
)

# A budget row's current period start and whether its stored period has ended, from the
# row's own ``period`` and the parameters :func:`_periods` gives.
_CURRENT = case(
    (budgets.c.period == "daily", bindparam("day_start", type_=DateTime())),
    (budgets.c.period == "monthly", bindparam("month_start", type_=DateTime())),
    else_=literal(EPOCH, DateTime()),
)
_ENDED = budgets.c.period_start < _CURRENT
_SPENT = case((_ENDED, 0), else_=budgets.c.spent)
_PERIOD_START = case((_ENDED, _CURRENT), else_=budgets.c.period_start)
_AMOUNT = bindparam("amount", type_=BigInteger())
_HELD = bindparam("held", type_=BigInteger())
_BUDGET_ID = bindparam("budget_id", type_=Integer())

_RESERVE_BUDGET = Prepared(
    update(budgets)
    .where(
        budgets.c.id == _BUDGET_ID,
        _SPENT + budgets.c.reserved + _AMOUNT <= budgets.c.amount_limit,
        # An exhausted budget refuses even a request that reserves nothing.
        _SPENT + budgets.c.reserved < budgets.c.amount_limit,
    )
    .values(spent=_SPENT, reserved=budgets.c.reserved + _AMOUNT, period_start=_PERIOD_START)
)
_CHARGE_BUDGET = Prepared(
    update(budgets)
    .where(budgets.c.id == _BUDGET_ID)
    .values(
        spent=_SPENT
        + case(
            (budgets.c.unit == "usd", bindparam("spent_micros", type_=BigInteger())),
            else_=bindparam("spent_tokens", type_=BigInteger()),
        ),
        reserved=budgets.c.reserved - _HELD,
        period_start=_PERIOD_START,
    )
)
_RELEASE_BUDGET = Prepared(
    update(budgets).where(budgets.c.id == _BUDGET_ID).values(reserved=budgets.c.reserved - _HELD)
)

_WINDOW = bindparam("window_at", type_=DateTime())
_WINDOW_ENDED = rate_limits.c.window_start < _WINDOW
_REQUESTS = case((_WINDOW_ENDED, 0), else_=rate_limits.c.requests)
_USED = case((_WINDOW_ENDED, 0), else_=rate_limits.c.tokens)
_WINDOW_START = case((_WINDOW_ENDED, _WINDOW), else_=rate_limits.c.window_start)
_LIMIT_ID = bindparam("limit_id", type_=Integer())

_RESERVE_LIMIT = Prepared(
    update(rate_limits)
    .where(
        rate_limits.c.id == _LIMIT_ID,
        or_(rate_limits.c.rpm.is_(None), rate_limits.c.rpm >= _REQUESTS + 1),
        or_(
            rate_limits.c.tpm.is_(None),
            _USED + rate_limits.c.reserved_tokens + _AMOUNT <= rate_limits.c.tpm,
        ),
    )
    .values(
        requests=_REQUESTS + 1,
        tokens=_USED,
        reserved_tokens=rate_limits.c.reserved_tokens + _AMOUNT,
        window_start=_WINDOW_START,
    )
)
_CHARGE_LIMIT = Prepared(
    update(rate_limits)
    .where(rate_limits.c.id == _LIMIT_ID)
    .values(
        requests=_REQUESTS,
        tokens=_USED + bindparam("spent_tokens", type_=BigInteger()),
        reserved_tokens=rate_limits.c.reserved_tokens - _HELD,
        window_start=_WINDOW_START,
    )
)
_RELEASE_LIMIT = Prepared(
    update(rate_limits)
    .where(rate_limits.c.id == _LIMIT_ID)
    .values(reserved_tokens=rate_limits.c.reserved_tokens - _HELD)
)


def _periods(now: datetime) -> dict[str, datetime]:
    return {"day_start": period_start("daily", now), "month_start": period_start("monthly", now)}


# -- reserving ---------------------------------------------------------------------------
def reserve_budgets(
    conn: Connection, key_id: str, team: str, *, usd_micros: int, tokens: int, now: datetime
) -> list[Hold]:
    """Hold ``usd_micros``/``tokens`` on every budget of the key and its team, or raise
    :class:`BudgetExceededError` naming the first that cannot take it."""
    rows = _BUDGET_IDS.run(conn, owners(key_id, team)).rows
    periods = _periods(now)
    holds = []
    for row_id, unit in rows:
        amount = usd_micros if unit == "usd" else tokens
        result = _RESERVE_BUDGET.run(conn, {"budget_id": row_id, "amount": amount, **periods})
        if result.rowcount != 1:
            raise _exhausted(conn, row_id, amount, now)
        holds.append(Hold(row_id, amount))
    return holds


def _exhausted(conn: Connection, row_id: int, amount: int, now: datetime) -> BudgetExceededError:
    row = conn.execute(select(budgets).where(budgets.c.id == row_id)).one()
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


def reserve_limits(
    conn: Connection, key_id: str, team: str, *, tokens: int, now: datetime
) -> list[Hold]:
    """Count one request and hold ``tokens`` on every rate limit of the key and its team,
    or raise :class:`RateLimitedError` with the seconds left in the current window."""
    rows = _LIMIT_IDS.run(conn, owners(key_id, team)).rows
    start = window_start(now)
    holds = []
    for (row_id,) in rows:
        params = {"limit_id": row_id, "amount": tokens, "window_at": start}
        if _RESERVE_LIMIT.run(conn, params).rowcount != 1:
            raise _limited(conn, row_id, tokens, now)
        holds.append(Hold(row_id, tokens))
    return holds


def _limited(conn: Connection, row_id: int, tokens: int, now: datetime) -> RateLimitedError:
    row = conn.execute(select(rate_limits).where(rate_limits.c.id == row_id)).one()
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


# -- settling and releasing --------------------------------------------------------------
def charge(
    conn: Connection,
    budget_holds: Sequence[Hold],
    limit_holds: Sequence[Hold],
    *,
    usd_micros: int,
    tokens: int,
    now: datetime,
) -> None:
    """Release each hold (its amount may be 0) and add the actual spend: ``usd_micros`` or
    ``tokens`` to each budget by its unit, ``tokens`` to each rate limit's window."""
    if budget_holds:
        spend = {"spent_micros": usd_micros, "spent_tokens": tokens, **_periods(now)}
        _CHARGE_BUDGET.run_many(
            conn,
            [{"budget_id": h.row_id, "held": h.amount, **spend} for h in _in_order(budget_holds)],
        )
    if limit_holds:
        window = {"spent_tokens": tokens, "window_at": window_start(now)}
        _CHARGE_LIMIT.run_many(
            conn,
            [{"limit_id": h.row_id, "held": h.amount, **window} for h in _in_order(limit_holds)],
        )


def release(conn: Connection, budget_holds: Sequence[Hold], limit_holds: Sequence[Hold]) -> None:
    """Give back what a reservation held, charging nothing (a request that never settled)."""
    if budget_holds:
        _RELEASE_BUDGET.run_many(
            conn, [{"budget_id": h.row_id, "held": h.amount} for h in _in_order(budget_holds)]
        )
    if limit_holds:
        _RELEASE_LIMIT.run_many(
            conn, [{"limit_id": h.row_id, "held": h.amount} for h in _in_order(limit_holds)]
        )


def _in_order(holds: Sequence[Hold]) -> list[Hold]:
    return sorted(holds, key=lambda h: h.row_id)


def applicable(
    conn: Connection, key_id: str | None, team: str | None
) -> tuple[list[Hold], list[Hold]]:
    """Zero holds on every budget and rate limit of a key and its team: for charging a
    request that reserved nothing."""
    held: list[Hold] = []
    limited: list[Hold] = []
    for kind, row_id in _APPLICABLE.run(conn, owners(key_id, team)).rows:
        (held if kind == "budget" else limited).append(Hold(row_id, 0))
    return held, limited
