"""The tenancy tables, as SQLAlchemy Core objects for the store's queries.

The schema itself is created and changed only by the Alembic migrations shipped in
``ponder/tenancy/migrations``; this module must describe the same tables as the newest
migration (``tests/test_tenancy.py`` checks that they agree).

Counters live in rows and change only through conditional ``UPDATE`` statements (see
:mod:`ponder.tenancy.ledger`): ``budgets.spent``/``reserved`` and ``rate_limits.requests``/
``tokens``/``reserved_tokens``. Money columns hold integer micro-dollars.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

teams = Table(
    "teams",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("allowed_models", Text),  # JSON list, NULL: any
    Column("allowed_strategies", Text),
    Column("max_effort", String(32)),
    Column("created_at", DateTime, nullable=False),
    Column("policy", Text),  # JSON (policy_as_mapping), NULL: no policy of its own
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("team", String(200), ForeignKey("teams.name"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("secret_sha256", String(64), nullable=False, unique=True),
    Column("team_admin", Boolean, nullable=False),
    Column("allowed_models", Text),
    Column("allowed_strategies", Text),
    Column("max_effort", String(32)),
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
    Column("policy", Text),  # JSON, as on teams
)

budgets = Table(
    "budgets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(8), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("unit", String(8), nullable=False),
    Column("period", String(8), nullable=False),
    Column("amount_limit", BigInteger, nullable=False),
    Column("spent", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
    Column("period_start", DateTime, nullable=False),
    UniqueConstraint("scope", "owner", "unit", "period", name="uq_budgets_owner"),
)

rate_limits = Table(
    "rate_limits",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(8), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("rpm", Integer),
    Column("tpm", BigInteger),
    Column("window_start", DateTime, nullable=False),
    Column("requests", Integer, nullable=False),  # requests begun in the window
    Column("tokens", BigInteger, nullable=False),  # tokens settled in the window
    Column("reserved_tokens", BigInteger, nullable=False),  # held by requests in flight
    UniqueConstraint("scope", "owner", name="uq_rate_limits_owner"),
)

reservations = Table(
    "reservations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key_id", String(40), nullable=False),
    Column("team", String(200), nullable=False),
    Column("usd_micros", BigInteger, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("state", String(8), nullable=False, index=True),  # open, settled, swept
    Column("created_at", DateTime, nullable=False),
    Column("closed_at", DateTime),
    # What the reservation still holds on each budget and rate limit, as JSON:
    # {"budgets": [[budget_id, amount], ...], "limits": [[rate_limit_id, tokens], ...]}.
    # Settling releases exactly these amounts; a sweep releases them and sets them to 0
    # (keeping the ids, so a late settle still charges its spend to the same rows).
    Column("holds", Text, nullable=False),
)

requests = Table(
    "requests",
    metadata,
    Column("request_id", String(100), primary_key=True),
    Column("key_id", String(40), index=True),
    Column("team", String(200), index=True),
    Column("model", String(300)),
    Column("strategy", String(100)),
    Column("effort", String(32)),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    Column("cached_prompt_tokens", BigInteger, nullable=False),
    Column("calls", Integer, nullable=False),
    Column("cost_micros", BigInteger, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("trace_id", String(100)),
    Column("created_at", DateTime, nullable=False, index=True),
    Column("day", String(10), nullable=False),  # YYYY-MM-DD (UTC), for group_by="day"
    # JSON list of what routing noted (skips by policy, fallbacks, failed attempts); NULL:
    # nothing (migration v0004).
    Column("routing", Text),
)

request_calls = Table(
    "request_calls",
    metadata,
    Column(
        "request_id",
        String(100),
        ForeignKey("requests.request_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True),
    Column("backend", String(300), nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    Column("cached_prompt_tokens", BigInteger, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("outcome", String(16), nullable=False),
)

traces = Table(
    "traces",
    metadata,
    Column("trace_id", String(100), primary_key=True),
    Column("body", Text, nullable=False),  # JSON
    Column("key_id", String(40), index=True),
    Column("team", String(200), index=True),
    Column("model", String(300)),
    Column("created_at", DateTime, nullable=False),
)
