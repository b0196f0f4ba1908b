"""The bodies of the store's accounting transactions: setting budgets and limits, and the
life of a reservation (open, settle, sweep), each run inside one transaction the store opens.

A reservation is ``open`` until it is ``settled`` or ``swept``. Each step is a conditional
``UPDATE`` of its state, so it happens once however many callers race for it: settling twice
charges once, and a settle that arrives after a sweep (the request's process was only slow)
still charges the spend, without releasing the hold a second time.
"""

from __future__ import annotations

import math
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ponder.errors import AuthenticationError, InvalidRequestError, TenantNotFoundError
from ponder.tenancy import ledger, reports
from ponder.tenancy.ledger import Hold
from ponder.tenancy.models import (
    ApiKey,
    Budget,
    Period,
    RequestRow,
    Reservation,
    Scope,
    Unit,
    from_db,
    micros_to_usd,
    usd_to_micros,
)
from ponder.tenancy.schema import (
    api_keys,
    budgets,
    rate_limits,
    reservation_budgets,
    reservation_limits,
    reservations,
    teams,
)


def check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise InvalidRequestError(f"{what} must be one of {', '.join(choices)}", param=what)


def budget_amount(unit: Unit, limit: float) -> int:
    """A limit as stored: micro-dollars, or a whole number of tokens."""
    if unit == "usd":
        return usd_to_micros(limit, "limit")
    if not (math.isfinite(limit) and limit >= 0 and float(limit).is_integer()):
        raise InvalidRequestError("a token limit must be a whole number >= 0", param="limit")
    return int(limit)


async def key_row(conn: AsyncConnection, key_id: str) -> Row[Any]:
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
    if row is None:
        raise TenantNotFoundError(f"no key {key_id!r}", param="key_id")
    return row


async def check_owner(conn: AsyncConnection, scope: Scope, owner: str) -> None:
    if scope == "key":
        await key_row(conn, owner)
        return
    found = await conn.execute(select(teams.c.name).where(teams.c.name == owner))
    if found.first() is None:
        raise TenantNotFoundError(f"no team {owner!r}", param="owner")


async def upsert_budget(
    conn: AsyncConnection,
    scope: Scope,
    owner: str,
    *,
    unit: Unit,
    period: Period,
    amount: int,
    now: datetime,
) -> Budget:
    """Create the budget or change its limit only: spent and reserved are kept."""
    await check_owner(conn, scope, owner)
    where = (
        budgets.c.scope == scope,
        budgets.c.owner == owner,
        budgets.c.unit == unit,
        budgets.c.period == period,
    )
    result = await conn.execute(update(budgets).where(*where).values(amount_limit=amount))
    if result.rowcount == 0:
        await conn.execute(
            budgets.insert().values(
                scope=scope,
                owner=owner,
                unit=unit,
                period=period,
                amount_limit=amount,
                spent=0,
                reserved=0,
                period_start=ledger.period_start(period, now),
            )
        )
    return budget_view((await conn.execute(select(budgets).where(*where))).one(), now)


async def upsert_rate_limit(
    conn: AsyncConnection,
    scope: Scope,
    owner: str,
    *,
    rpm: int | None,
    tpm: int | None,
    now: datetime,
) -> None:
    """Create the limit or change its rpm/tpm only: the window's counts are kept."""
    await check_owner(conn, scope, owner)
    where = (rate_limits.c.scope == scope, rate_limits.c.owner == owner)
    result = await conn.execute(update(rate_limits).where(*where).values(rpm=rpm, tpm=tpm))
    if result.rowcount == 0:
        await conn.execute(
            rate_limits.insert().values(
                scope=scope,
                owner=owner,
                rpm=rpm,
                tpm=tpm,
                window_start=ledger.window_start(now),
                requests=0,
                tokens=0,
                reserved_tokens=0,
            )
        )


async def key_budgets(conn: AsyncConnection, key: ApiKey, now: datetime) -> list[Budget]:
    rows = await conn.execute(
        select(budgets)
        .where(ledger.owners(key.id, key.team))
        .order_by(budgets.c.scope, budgets.c.id)
    )
    return [budget_view(r, now) for r in rows.all()]


def budget_view(row: Row[Any], now: datetime) -> Budget:
    """A budget as it stands at ``now``: a period that has ended shows as a fresh one."""
    current = ledger.period_start(row.period, now)
    ended = row.period_start < current
    spent = 0 if ended else int(row.spent)

    def amount(value: int) -> float:
        return micros_to_usd(value) if row.unit == "usd" else value

    return Budget(
        scope=row.scope,
        owner=row.owner,
        unit=row.unit,
        period=row.period,
        limit=amount(int(row.amount_limit)),
        spent=amount(spent),
        reserved=amount(int(row.reserved)),
        period_start=from_db(current if ended else row.period_start),
    )


async def open_reservation(
    conn: AsyncConnection, key: ApiKey, *, micros: int, tokens: int, now: datetime
) -> Reservation:
    """Hold the amounts on every budget and rate limit of the key and its team, or raise
    (the caller's transaction then rolls every hold back)."""
    found = await conn.execute(
        select(api_keys.c.team, api_keys.c.revoked_at).where(api_keys.c.id == key.id)
    )
    row = found.first()
    if row is None or row.revoked_at is not None:
        raise AuthenticationError(f"the key {key.prefix}... is revoked or unknown")
    team = row.team
    held = await ledger.reserve_budgets(
        conn, key.id, team, usd_micros=micros, tokens=tokens, now=now
    )
    limited = await ledger.reserve_limits(conn, key.id, team, tokens=tokens, now=now)
    rid = "rsv_" + secrets.token_hex(12)
    await conn.execute(
        reservations.insert().values(
            id=rid,
            key_id=key.id,
            team=team,
            usd_micros=micros,
            tokens=tokens,
            state="open",
            created_at=now,
        )
    )
    if held:
        await conn.execute(
            reservation_budgets.insert(),
            [{"reservation_id": rid, "budget_id": h.row_id, "amount": h.amount} for h in held],
        )
    if limited:
        await conn.execute(
            reservation_limits.insert(),
            [
                {"reservation_id": rid, "rate_limit_id": h.row_id, "tokens": h.amount}
                for h in limited
            ],
        )
    return Reservation(rid, key.id, team, micros_to_usd(micros), tokens, from_db(now))


async def settle_reservation(
    conn: AsyncConnection, dialect: str, rid: str, row: RequestRow, now: datetime
) -> None:
    """Close the reservation, charge the actual spend on what it held, write the ledger."""
    state = reservations.c.state
    closed = {"state": "settled", "closed_at": now}
    opened = await conn.execute(
        update(reservations).where(reservations.c.id == rid, state == "open").values(closed)
    )
    was_open = opened.rowcount == 1
    if not was_open:
        swept = await conn.execute(
            update(reservations).where(reservations.c.id == rid, state == "swept").values(closed)
        )
        if swept.rowcount != 1:
            found = await conn.execute(select(reservations.c.id).where(reservations.c.id == rid))
            if found.first() is None:
                raise TenantNotFoundError(f"no reservation {rid!r}")
            return  # settled already
    held, limited = await holds(conn, rid, released=not was_open)
    if await reports.write_request(conn, dialect, row):
        micros = usd_to_micros(row.cost_usd, "cost_usd")
        await ledger.charge(conn, held, limited, usd_micros=micros, tokens=row.tokens, now=now)
    else:  # the request is in the ledger, and was charged, already
        await ledger.release(conn, held, limited)
    await conn.execute(
        reservation_budgets.delete().where(reservation_budgets.c.reservation_id == rid)
    )
    await conn.execute(
        reservation_limits.delete().where(reservation_limits.c.reservation_id == rid)
    )


async def record_request(
    conn: AsyncConnection, dialect: str, row: RequestRow, now: datetime
) -> None:
    """Write a ledger row that had no reservation, and charge what it spent."""
    if not await reports.write_request(conn, dialect, row):
        return
    micros = usd_to_micros(row.cost_usd, "cost_usd")
    if (row.key_id is None and row.team is None) or (micros == 0 and row.tokens == 0):
        return
    team = row.team
    if row.key_id is not None and team is None:
        found = await conn.execute(select(api_keys.c.team).where(api_keys.c.id == row.key_id))
        team = found.scalar_one_or_none()
    held, limited = await ledger.applicable(conn, row.key_id, team)
    await ledger.charge(conn, held, limited, usd_micros=micros, tokens=row.tokens, now=now)


async def stale_reservations(conn: AsyncConnection, cutoff: datetime) -> list[str]:
    found = await conn.execute(
        select(reservations.c.id).where(
            reservations.c.state == "open", reservations.c.created_at < cutoff
        )
    )
    return list(found.scalars().all())


async def sweep_reservation(conn: AsyncConnection, rid: str, now: datetime) -> bool:
    """Release a reservation that is still open; False if it was closed meanwhile."""
    result = await conn.execute(
        update(reservations)
        .where(reservations.c.id == rid, reservations.c.state == "open")
        .values(state="swept", closed_at=now)
    )
    if result.rowcount != 1:
        return False
    held, limited = await holds(conn, rid, released=False)
    await ledger.release(conn, held, limited)
    return True


async def holds(
    conn: AsyncConnection, rid: str, *, released: bool
) -> tuple[list[Hold], list[Hold]]:
    """What a reservation holds on budgets and on rate limits; all zero when a sweep
    released it already."""
    held = await conn.execute(
        select(reservation_budgets.c.budget_id, reservation_budgets.c.amount).where(
            reservation_budgets.c.reservation_id == rid
        )
    )
    limited = await conn.execute(
        select(reservation_limits.c.rate_limit_id, reservation_limits.c.tokens).where(
            reservation_limits.c.reservation_id == rid
        )
    )
    return (
        [Hold(i, 0 if released else int(a)) for i, a in held.all()],
        [Hold(i, 0 if released else int(t)) for i, t in limited.all()],
    )
