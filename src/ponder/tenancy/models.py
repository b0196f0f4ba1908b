"""The tenancy store's values: teams, API keys, budgets, reservations, ledger rows, traces.

All of them are frozen dataclasses, read from or written to the database by
:class:`ponder.tenancy.TenancyStore`; none holds a connection or a counter of its own (the
database is the only place a count lives, so several processes share it).

Money is kept in the database as integer micro-dollars and tokens as integers, so sums never
drift; the dataclasses show dollars as floats (``micros / 1e6``). Times are UTC: the store
returns aware datetimes and takes aware ones (a naive datetime is read as UTC).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from ponder.config.routing import PolicySettings
from ponder.errors import InvalidRequestError
from ponder.metering import CallRecord
from ponder.types import Usage

Scope = Literal["key", "team"]
Unit = Literal["usd", "tokens"]
Period = Literal["daily", "monthly", "total"]
# "interrupted": the process serving it died; its row was written from its journal on restart.
RequestOutcome = Literal["ok", "client_error", "cancelled", "backend_error", "interrupted"]
GroupBy = Literal["key", "team", "model", "strategy", "day"]

SCOPES: tuple[Scope, ...] = ("key", "team")
UNITS: tuple[Unit, ...] = ("usd", "tokens")
PERIODS: tuple[Period, ...] = ("daily", "monthly", "total")
GROUPS: tuple[GroupBy, ...] = ("key", "team", "model", "strategy", "day")

MICROS = 1_000_000  # micro-dollars per dollar
# The largest amount or count a 64-bit database integer holds with room for sums.
MAX_MICROS = 2**62
MAX_COUNT = 2**62


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime (a naive one is taken as UTC already)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def to_db(moment: datetime) -> datetime:
    """The naive UTC datetime the database stores (one format on SQLite and PostgreSQL)."""
    return as_utc(moment).replace(tzinfo=None)


def from_db(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)


def usd_to_micros(usd: float, what: str = "usd") -> int:
    """Dollars to integer micro-dollars, rounded to the nearest; negative or non-finite
    amounts are refused."""
    micros = usd * MICROS if math.isfinite(usd) else usd
    if not math.isfinite(micros) or usd < 0 or micros > MAX_MICROS:
        raise InvalidRequestError(
            f"{what} must be a finite amount from 0 to {MAX_MICROS // MICROS}, not {usd!r}",
            param=what,
        )
    return round(micros)


def micros_to_usd(micros: int) -> float:
    return micros / MICROS


@dataclass(frozen=True, slots=True)
class Team:
    """A team's record. ``policy``: its own routing policy (None: none of its own); a
    request of its keys must pass it as well as the operator's and the key's own."""

    name: str
    allowed_models: tuple[str, ...] | None
    allowed_strategies: tuple[str, ...] | None
    max_effort: str | None
    created_at: datetime
    # Not hashed (a policy holds a mapping); compared like every other field.
    policy: PolicySettings | None = field(default=None, hash=False)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key's record. The secret itself is never stored, only its SHA-256; ``prefix`` is
    the first 8 characters after ``pk-``, for display. Permissions left ``None`` defer to
    the team's; ``policy``, the key's own routing policy (None: none of its own), applies
    as well as its team's."""

    id: str
    team: str
    name: str
    prefix: str
    team_admin: bool
    allowed_models: tuple[str, ...] | None
    allowed_strategies: tuple[str, ...] | None
    max_effort: str | None
    created_at: datetime
    revoked_at: datetime | None
    policy: PolicySettings | None = field(default=None, hash=False)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class Budget:
    """A limit on a key's or a team's spend in a period, with what is spent and what
    in-flight requests hold (``reserved``) in the current period. Dollars for ``usd``,
    integer token counts for ``tokens``."""

    scope: Scope
    owner: str
    unit: Unit
    period: Period
    limit: float
    spent: float
    reserved: float
    period_start: datetime

    @property
    def remaining(self) -> float:
        return max(0.0, self.limit - self.spent - self.reserved)


@dataclass(frozen=True, slots=True)
class Reservation:
    """What :meth:`TenancyStore.reserve` set aside for one request, to be settled (or swept
    if the request's process died)."""

    id: str
    key_id: str
    team: str
    usd: float
    tokens: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One request in the ledger: who, what, what it spent and how it ended, with the leaf
    calls behind it."""

    request_id: str
    key_id: str | None
    team: str | None
    model: str | None
    strategy: str | None
    effort: str | None
    usage: Usage
    cost_usd: float
    seconds: float
    outcome: RequestOutcome
    trace_id: str | None = None
    calls: tuple[CallRecord, ...] = ()
    created_at: datetime = field(default_factory=utcnow)
    # What routing noted on the way, or why policy refused the request.
    routing: tuple[str, ...] = ()

    @property
    def tokens(self) -> int:
        """The tokens a budget or a tokens-per-minute limit is charged."""
        return self.usage.prompt_tokens + self.usage.completion_tokens


@dataclass(frozen=True, slots=True)
class TraceRow:
    trace_id: str
    body: dict[str, Any]
    key_id: str | None
    team: str | None
    model: str | None
    created_at: datetime
