"""The durable tenancy store: teams, API keys, budgets, rate limits, the request ledger and
traces, in SQLite (the default) or PostgreSQL.

Nothing is cached in the process: every count is read and changed in the database, so any
number of gateway processes on one PostgreSQL database share budgets and limits. A request's
life is ``reserve`` (one transaction that holds its estimated cost on every budget and rate
limit of its key and team, or refuses it), then ``settle`` (one transaction that releases
exactly that hold, charges the actual spend and writes the ledger row). A reservation whose
process died is released by ``sweep_stale``; a settle that arrives after the sweep still
charges the spend.

Each method is one transaction (see :mod:`ponder.tenancy.engine`): on SQLite the whole of it
runs in one hop to a worker thread; the hot statements are built once, so a request pays for
running them only.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Literal, overload

from sqlalchemy import bindparam, exc, select, update
from sqlalchemy.engine import Connection

from ponder.config.routing import PolicySettings
from ponder.errors import InvalidRequestError, TenantNotFoundError
from ponder.tenancy import accounting, engine, ledger, reports
from ponder.tenancy.engine import Database
from ponder.tenancy.keys import (
    SECRET_PREFIX,
    check_name,
    display_prefix,
    dump_names,
    dump_policy,
    hash_secret,
    key_from_row,
    new_key_id,
    new_secret,
    team_from_row,
)
from ponder.tenancy.models import (
    PERIODS,
    SCOPES,
    UNITS,
    ApiKey,
    Budget,
    GroupBy,
    Period,
    RequestRow,
    Reservation,
    Scope,
    Team,
    TraceRow,
    Unit,
    to_db,
    usd_to_micros,
    utcnow,
)
from ponder.tenancy.responses import ResponseStore
from ponder.tenancy.schema import api_keys, teams

_TEAM = select(teams).where(teams.c.name == bindparam("name"))
_KEY_BY_DIGEST = select(api_keys).where(api_keys.c.secret_sha256 == bindparam("digest"))
_ANY_LIVE_KEY = select(api_keys.c.id).where(api_keys.c.revoked_at.is_(None)).limit(1)


class TenancyStore:
    """Open with ``await TenancyStore.open(url)``; close with :meth:`aclose`."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # Stored /v1/responses (ponder.tenancy.responses), on the same database.
        self.responses = ResponseStore(db)

    @classmethod
    async def open(cls, url: str) -> TenancyStore:
        """Connect to ``url`` (``sqlite:///PATH``, ``postgresql://...``) and create or
        migrate the schema to the newest revision."""
        db = engine.open_database(url)
        try:
            await engine.migrate(db)
        except BaseException:
            await db.dispose()
            raise
        return cls(db)

    async def aclose(self) -> None:
        await self._db.dispose()

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._db.dialect

    # -- teams and keys ------------------------------------------------------------------

    async def create_team(
        self,
        name: str,
        *,
        allowed_models: list[str] | None = None,
        allowed_strategies: list[str] | None = None,
        max_effort: str | None = None,
        policy: PolicySettings | None = None,
    ) -> Team:
        """A new team; ``policy`` is its own routing policy (None, or an empty one: none)."""
        values = {
            "name": check_name(name, "a team name"),
            "allowed_models": dump_names(allowed_models, "allowed_models"),
            "allowed_strategies": dump_names(allowed_strategies, "allowed_strategies"),
            "max_effort": max_effort,
            "created_at": to_db(utcnow()),
            "policy": dump_policy(policy),
        }
        try:
            await self._db.run(lambda conn: conn.execute(teams.insert().values(**values)))
        except exc.IntegrityError as error:
            raise InvalidRequestError(f"team {name!r} already exists", param="name") from error
        return team_from_row(_AsRow(values))

    async def get_team(self, name: str) -> Team | None:
        row = await self._db.run(
            lambda conn: conn.execute(_TEAM, {"name": name}).first(), write=False
        )
        return None if row is None else team_from_row(row)

    async def list_teams(self) -> list[Team]:
        query = select(teams).order_by(teams.c.name)
        rows = await self._db.run(lambda conn: conn.execute(query).all(), write=False)
        return [team_from_row(r) for r in rows]

    async def create_key(
        self,
        team: str,
        name: str,
        *,
        team_admin: bool = False,
        allowed_models: list[str] | None = None,
        allowed_strategies: list[str] | None = None,
        max_effort: str | None = None,
        policy: PolicySettings | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key for ``team``: its record, and its secret (shown this once only).
        ``policy`` is the key's own routing policy (None, or an empty one: none)."""
        secret = new_secret()
        values = {
            "id": new_key_id(),
            "team": team,
            "name": check_name(name, "a key name"),
            "prefix": display_prefix(secret),
            "secret_sha256": hash_secret(secret),
            "team_admin": bool(team_admin),
            "allowed_models": dump_names(allowed_models, "allowed_models"),
            "allowed_strategies": dump_names(allowed_strategies, "allowed_strategies"),
            "max_effort": max_effort,
            "created_at": to_db(utcnow()),
            "revoked_at": None,
            "policy": dump_policy(policy),
        }

        def body(conn: Connection) -> None:
            if conn.execute(_TEAM, {"name": team}).first() is None:
                raise TenantNotFoundError(f"no team {team!r}", param="team")
            conn.execute(api_keys.insert().values(**values))

        await self._db.run(body)
        return key_from_row(_AsRow(values)), secret

    async def rotate_key(self, key_id: str) -> tuple[ApiKey, str]:
        """A new secret for the key (same id, permissions and budgets); the old secret stops
        working at once."""
        secret = new_secret()

        def body(conn: Connection) -> ApiKey:
            result = conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(secret_sha256=hash_secret(secret), prefix=display_prefix(secret))
            )
            row = accounting.key_row(conn, key_id)
            if result.rowcount != 1:
                raise InvalidRequestError(f"key {key_id!r} is revoked", param="key_id")
            return key_from_row(row)

        return await self._db.run(body), secret

    async def revoke_key(self, key_id: str) -> None:
        """Revoke the key for good (revoking a revoked key changes nothing)."""
        revoke = (
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=to_db(utcnow()))
        )

        def body(conn: Connection) -> None:
            conn.execute(revoke)
            accounting.key_row(conn, key_id)

        await self._db.run(body)

    @overload
    async def set_policy(
        self, scope: Literal["team"], ident: str, policy: PolicySettings | None
    ) -> Team: ...

    @overload
    async def set_policy(
        self, scope: Literal["key"], ident: str, policy: PolicySettings | None
    ) -> ApiKey: ...

    async def set_policy(
        self, scope: Scope, ident: str, policy: PolicySettings | None
    ) -> Team | ApiKey:
        """Replace a team's (``scope="team"``, by name) or a key's (``"key"``, by id; revoked
        ones too) routing policy; None or an empty policy clears it. Returns the updated
        record. Also the way to repair a row whose stored policy cannot be read."""
        accounting.check_choice(scope, SCOPES, "scope")
        stored = dump_policy(policy)
        table = teams if scope == "team" else api_keys
        ident_column = teams.c.name if scope == "team" else api_keys.c.id
        change = update(table).where(ident_column == ident).values(policy=stored)

        def body(conn: Connection) -> Team | ApiKey:
            if conn.execute(change).rowcount != 1:
                raise TenantNotFoundError(
                    f"no {scope} {ident!r}", param="name" if scope == "team" else "key_id"
                )
            row = conn.execute(select(table).where(ident_column == ident)).one()
            return team_from_row(row) if scope == "team" else key_from_row(row)

        return await self._db.run(body)

    async def get_key(self, key_id: str) -> ApiKey | None:
        query = select(api_keys).where(api_keys.c.id == key_id)
        row = await self._db.run(lambda conn: conn.execute(query).first(), write=False)
        return None if row is None else key_from_row(row)

    async def list_keys(self, team: str | None = None) -> list[ApiKey]:
        """Every key (revoked ones included), or a team's, oldest first."""
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if team is not None:
            query = query.where(api_keys.c.team == team)
        rows = await self._db.run(lambda conn: conn.execute(query).all(), write=False)
        return [key_from_row(r) for r in rows]

    async def has_rate_limits(self, key: ApiKey) -> bool:
        """Whether any rpm or tpm limit applies to this key (its own or its team's)."""
        owners = ledger.owners(key.id, key.team)
        found = await self._db.run(
            lambda conn: conn.execute(ledger.HAS_LIMITS, owners).first(), write=False
        )
        return found is not None

    async def has_keys(self) -> bool:
        """Whether any live key exists (a server with none runs in single-user mode)."""
        found = await self._db.run(lambda conn: conn.execute(_ANY_LIVE_KEY).first(), write=False)
        return found is not None

    async def authenticate(self, secret: str) -> ApiKey | None:
        """The live key whose secret this is; None if it is unknown or revoked."""
        if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
            return None
        digest = hash_secret(secret)
        row = await self._db.run(
            lambda conn: conn.execute(_KEY_BY_DIGEST, {"digest": digest}).first(), write=False
        )
        if row is None or not hmac.compare_digest(row.secret_sha256, digest):
            return None
        return None if row.revoked_at is not None else key_from_row(row)

    # -- budgets and rate limits ----------------------------------------------------------

    async def set_budget(
        self,
        scope: Scope,
        owner: str,
        *,
        unit: Unit,
        period: Period,
        limit: float,
        now: datetime | None = None,
    ) -> Budget:
        """Create a budget, or change the limit of an existing one; what it has spent and
        reserved is kept (changing a limit never resets a budget)."""
        accounting.check_choice(scope, SCOPES, "scope")
        accounting.check_choice(unit, UNITS, "unit")
        accounting.check_choice(period, PERIODS, "period")
        amount = accounting.budget_amount(unit, limit)
        at = to_db(now or utcnow())
        try:
            return await self._upsert_budget(scope, owner, unit, period, amount, at)
        except exc.IntegrityError:  # another process created it at the same moment
            return await self._upsert_budget(scope, owner, unit, period, amount, at)

    async def _upsert_budget(
        self, scope: Scope, owner: str, unit: Unit, period: Period, amount: int, at: datetime
    ) -> Budget:
        return await self._db.run(
            lambda conn: accounting.upsert_budget(
                conn, scope, owner, unit=unit, period=period, amount=amount, now=at
            )
        )

    async def set_rate_limit(
        self,
        scope: Scope,
        owner: str,
        *,
        rpm: int | None,
        tpm: int | None,
        now: datetime | None = None,
    ) -> None:
        """Set a key's or a team's requests- and tokens-per-minute limits (None: no limit)."""
        accounting.check_choice(scope, SCOPES, "scope")
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise InvalidRequestError(f"{name} must be a whole number >= 0", param=name)
        at = to_db(now or utcnow())
        for attempt in range(2):
            try:
                await self._db.run(
                    lambda conn: accounting.upsert_rate_limit(
                        conn, scope, owner, rpm=rpm, tpm=tpm, now=at
                    )
                )
                return
            except exc.IntegrityError:  # another process created it at the same moment
                if attempt:
                    raise

    async def budgets(self, key: ApiKey, *, now: datetime | None = None) -> list[Budget]:
        """The key's budgets and its team's, as they stand in the current period."""
        at = to_db(now or utcnow())
        return await self._db.run(lambda conn: accounting.key_budgets(conn, key, at), write=False)

    # -- reserve, settle, record, sweep --------------------------------------------------

    async def reserve(
        self, key: ApiKey, *, usd: float, tokens: int, now: datetime | None = None
    ) -> Reservation:
        """Hold ``usd`` and ``tokens`` (the request's worst case) on every budget and rate
        limit of the key and its team, all or nothing, in one transaction. Raises
        BudgetExceededError, RateLimitedError, or AuthenticationError if the key was revoked
        meanwhile; a database failure raises StoreUnavailableError (never a reservation)."""
        micros = usd_to_micros(usd)
        if not isinstance(tokens, int) or tokens < 0:
            raise InvalidRequestError("tokens must be a whole number >= 0", param="tokens")
        at = to_db(now or utcnow())
        return await self._db.run(
            lambda conn: accounting.open_reservation(
                conn, key, micros=micros, tokens=tokens, now=at
            )
        )

    async def settle(
        self, reservation: Reservation, row: RequestRow, now: datetime | None = None
    ) -> None:
        """Release the reservation, charge the request's actual spend to every budget and
        rate limit it held (in full, even past the reservation) and write its ledger row, in
        one transaction. A second settle of the same reservation does nothing."""
        at = to_db(now or utcnow())
        rid = reservation.id
        await self._db.run(lambda conn: accounting.settle_reservation(conn, rid, row, at))

    async def record(self, row: RequestRow, now: datetime | None = None) -> None:
        """Write a ledger row for a request that reserved nothing. Whatever it spent is
        charged to its key's and team's budgets and token limits, like a settle's; a request
        already in the ledger is not written or charged again."""
        at = to_db(now or utcnow())
        await self._db.run(lambda conn: accounting.record_request(conn, row, at))

    async def record_many(self, rows: Sequence[RequestRow], now: datetime | None = None) -> None:
        """:meth:`record` for several rows in one transaction (a group commit): all are
        written, or none."""
        at = to_db(now or utcnow())

        def write(conn: Connection) -> None:
            for row in rows:
                accounting.record_request(conn, row, at)

        await self._db.run(write)

    async def sweep_stale(self, older_than: timedelta, *, now: datetime | None = None) -> int:
        """Release the reservations still open after ``older_than`` (their process died
        before settling); returns how many. A late settle still charges its spend."""
        at = to_db(now or utcnow())
        cutoff = at - older_than
        stale = await self._db.run(
            lambda conn: accounting.stale_reservations(conn, cutoff), write=False
        )
        swept = 0
        for rid in stale:
            swept += await self._db.run(partial(accounting.sweep_reservation, rid=rid, now=at))
        return swept

    # -- reports and traces ---------------------------------------------------------------

    async def usage(
        self,
        *,
        group_by: GroupBy,
        since: datetime | None = None,
        until: datetime | None = None,
        key_id: str | None = None,
        team: str | None = None,
    ) -> list[dict[str, Any]]:
        """Ledger totals grouped by key, team, model, strategy or day (UTC), for requests
        created in ``[since, until)``, optionally for one key or team."""
        return await self._db.run(
            lambda conn: reports.usage(
                conn, group_by=group_by, since=since, until=until, key_id=key_id, team=team
            ),
            write=False,
        )

    async def put_trace(
        self,
        trace_id: str,
        body: dict[str, Any],
        *,
        key_id: str | None,
        team: str | None,
        model: str | None,
    ) -> None:
        now = utcnow()
        await self._db.run(
            lambda conn: reports.put_trace(
                conn, trace_id, body, key_id=key_id, team=team, model=model, now=now
            )
        )

    async def get_trace(self, trace_id: str) -> TraceRow | None:
        """The trace with the key and team that made it; the caller checks who may see it."""
        return await self._db.run(lambda conn: reports.get_trace(conn, trace_id), write=False)


class _AsRow:
    """Inserted values read like a result row (for building the returned record)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
