"""The bodies of the store's accounting transactions: setting budgets and limits, and the
life of a reservation (open, settle, sweep), each run inside one transaction the store opens.

A reservation is ``open`` until it is ``settled`` or ``swept``. Each step is a conditional
``UPDATE`` of its state, so it happens once however many callers race for it: settling twice
charges once, and a settle that arrives after a sweep (the request's process was only slow)
still charges the spend, without releasing the hold a second time. What a reservation holds
on each budget and rate limit is kept on its own row (``reservations.holds``), so opening one
is one ``INSERT`` and closing one is one ``UPDATE ... RETURNING`` of those holds.

The functions are synchronous, over a :class:`~sqlalchemy.engine.Connection`: the store runs
each transaction's body through :meth:`ponder.tenancy.engine.Database.run`.
"""

from __future__ import annotations

import json
import math
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Row, String, bindparam, or_, select, update
from sqlalchemy.engine import Connection

from ponder.errors import AuthenticationError, InvalidRequestError, TenantNotFoundError
from ponder.tenancy import ledger, reports
from ponder.tenancy.ledger import Hold
from ponder.tenancy.models import (
    MAX_COUNT,
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
from ponder.tenancy.prepared import Prepared
from ponder.tenancy.schema import api_keys, budgets, rate_limits, reservations, teams

_RID = bindparam("rid", type_=String())
_KEY_STATE = Prepared(
    select(api_keys.c.team, api_keys.c.revoked_at.is_(None)).where(
        api_keys.c.id == bindparam("key_id")
    )
)
_KEY_TEAM = Prepared(select(api_keys.c.team).where(api_keys.c.id == bindparam("key_id")))
_OPEN = Prepared(reservations.insert())
# Settling closes an open reservation, or one a sweep released (whose holds it set to 0);
# what it returns is what the reservation still holds.
_SETTLE = Prepared(
    update(reservations)
    .where(
        reservations.c.id == _RID,
        or_(reservations.c.state == "open", reservations.c.state == "swept"),
    )
    .values(state="settled", closed_at=bindparam("closed", type_=DateTime()))
    .returning(reservations.c.holds)
)
_EXISTS = Prepared(select(reservations.c.id).where(reservations.c.id == _RID))
_OPEN_HOLDS = Prepared(
    select(reservations.c.holds).where(reservations.c.id == _RID, reservations.c.state == "open")
)
_SWEEP = Prepared(
    update(reservations)
    .where(reservations.c.id == _RID, reservations.c.state == "open")
    .values(
        state="swept", closed_at=bindparam("closed", type_=DateTime()), holds=bindparam("released")
    )
)
_STALE = Prepared(
    select(reservations.c.id).where(
        reservations.c.state == "open",
        reservations.c.created_at < bindparam("cutoff", type_=DateTime()),
    )
)


def check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise InvalidRequestError(f"{what} must be one of {', '.join(choices)}", param=what)


def budget_amount(unit: Unit, limit: float) -> int:
    """A limit as stored: micro-dollars, or a whole number of tokens."""
    if unit == "usd":
        return usd_to_micros(limit, "limit")
    if not (math.isfinite(limit) and 0 <= limit <= MAX_COUNT and float(limit).is_integer()):
        raise InvalidRequestError(
            f"a token limit must be a whole number from 0 to {MAX_COUNT}", param="limit"
        )
    return int(limit)


def key_row(conn: Connection, key_id: str) -> Row[Any]:
    row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
    if row is None:
        raise TenantNotFoundError(f"no key {key_id!r}", param="key_id")
    return row


def check_owner(conn: Connection, scope: Scope, owner: str) -> None:
    if scope == "key":
        key_row(conn, owner)
        return
    found = conn.execute(select(teams.c.name).where(teams.c.name == owner))
    if found.first() is None:
        raise TenantNotFoundError(f"no team {owner!r}", param="owner")


def upsert_budget(
    conn: Connection,
    scope: Scope,
    owner: str,
    *,
    unit: Unit,
    period: Period,
    amount: int,
    now: datetime,
) -> Budget:
    """Create the budget or change its limit only: spent and reserved are kept."""
    check_owner(conn, scope, owner)
    where = (
        budgets.c.scope == scope,
        budgets.c.owner == owner,
        budgets.c.unit == unit,
        budgets.c.period == period,
    )
    result = conn.execute(update(budgets).where(*where).values(amount_limit=amount))
    if result.rowcount == 0:
        conn.execute(
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
    return budget_view(conn.execute(select(budgets).where(*where)).one(), now)


def upsert_rate_limit(
    conn: Connection,
    scope: Scope,
    owner: str,
    *,
    rpm: int | None,
    tpm: int | None,
    now: datetime,
) -> None:
    """Create the limit or change its rpm/tpm only: the window's counts are kept."""
    for name, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and not 1 <= value <= MAX_COUNT:
            raise InvalidRequestError(f"{name} must be from 1 to {MAX_COUNT}", param=name)
    check_owner(conn, scope, owner)
    where = (rate_limits.c.scope == scope, rate_limits.c.owner == owner)
    result = conn.execute(update(rate_limits).where(*where).values(rpm=rpm, tpm=tpm))
    if result.rowcount == 0:
        conn.execute(
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


def key_budgets(conn: Connection, key: ApiKey, now: datetime) -> list[Budget]:
    rows = conn.execute(ledger.KEY_BUDGETS, ledger.owners(key.id, key.team))
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


def open_reservation(
    conn: Connection, key: ApiKey, *, micros: int, tokens: int, now: datetime
) -> Reservation:
    """Hold the amounts on every budget and rate limit of the key and its team, or raise
    (the caller's transaction then rolls every hold back)."""
    found = _KEY_STATE.run(conn, {"key_id": key.id}).rows
    if not found or not found[0][1]:
        raise AuthenticationError(f"the key {key.prefix}... is revoked or unknown")
    team: str = found[0][0]
    held = ledger.reserve_budgets(conn, key.id, team, usd_micros=micros, tokens=tokens, now=now)
    limited = ledger.reserve_limits(conn, key.id, team, tokens=tokens, now=now)
    rid = "rsv_" + secrets.token_hex(12)
    _OPEN.run(
        conn,
        {
            "id": rid,
            "key_id": key.id,
            "team": team,
            "usd_micros": micros,
            "tokens": tokens,
            "state": "open",
            "created_at": now,
            "closed_at": None,
            "holds": dump_holds(held, limited),
        },
    )
    return Reservation(rid, key.id, team, micros_to_usd(micros), tokens, from_db(now))


def settle_reservation(conn: Connection, rid: str, row: RequestRow, now: datetime) -> None:
    """Close the reservation, charge the actual spend on what it held, write the ledger."""
    settled = _SETTLE.run(conn, {"rid": rid, "closed": now}).rows
    if not settled:
        if not _EXISTS.run(conn, {"rid": rid}).rows:
            raise TenantNotFoundError(f"no reservation {rid!r}")
        return  # settled already
    held, limited = load_holds(settled[0][0])
    if reports.write_request(conn, row):
        micros = usd_to_micros(row.cost_usd, "cost_usd")
        ledger.charge(conn, held, limited, usd_micros=micros, tokens=row.tokens, now=now)
    else:  # the request is in the ledger, and was charged, already
        ledger.release(conn, held, limited)


def record_request(conn: Connection, row: RequestRow, now: datetime) -> None:
    """Write a ledger row that had no reservation, and charge what it spent."""
    if not reports.write_request(conn, row):
        return
    micros = usd_to_micros(row.cost_usd, "cost_usd")
    if (row.key_id is None and row.team is None) or (micros == 0 and row.tokens == 0):
        return
    team = row.team
    if row.key_id is not None and team is None:
        found = _KEY_TEAM.run(conn, {"key_id": row.key_id}).rows
        team = found[0][0] if found else None
    held, limited = ledger.applicable(conn, row.key_id, team)
    ledger.charge(conn, held, limited, usd_micros=micros, tokens=row.tokens, now=now)


def stale_reservations(conn: Connection, cutoff: datetime) -> list[str]:
    return [rid for (rid,) in _STALE.run(conn, {"cutoff": cutoff}).rows]


def sweep_reservation(conn: Connection, rid: str, now: datetime) -> bool:
    """Release a reservation that is still open; False if it was closed meanwhile. Its
    holds stay on the row at 0, so that a late settle charges the same budgets."""
    opened = _OPEN_HOLDS.run(conn, {"rid": rid}).rows
    if not opened:
        return False
    held, limited = load_holds(opened[0][0])
    released = dump_holds([Hold(h.row_id, 0) for h in held], [Hold(h.row_id, 0) for h in limited])
    if _SWEEP.run(conn, {"rid": rid, "closed": now, "released": released}).rowcount != 1:
        return False
    ledger.release(conn, held, limited)
    return True


def dump_holds(held: list[Hold], limited: list[Hold]) -> str:
    """A reservation's holds as stored in ``reservations.holds``."""
    return json.dumps(
        {
            "budgets": [[h.row_id, h.amount] for h in held],
            "limits": [[h.row_id, h.amount] for h in limited],
        },
        separators=(",", ":"),
    )


def load_holds(stored: str) -> tuple[list[Hold], list[Hold]]:
    """What a reservation holds on budgets and on rate limits."""
    holds = json.loads(stored)
    return (
        [Hold(int(i), int(a)) for i, a in holds["budgets"]],
        [Hold(int(i), int(a)) for i, a in holds["limits"]],
    )
