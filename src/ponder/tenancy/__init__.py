"""Durable tenancy: teams, API keys, budgets, rate limits, the request ledger and traces.

A library with no HTTP in it; the gateway, server and CLI use it through
:class:`TenancyStore`::

    store = await TenancyStore.open(resolve_database_url(config))
    key = await store.authenticate(secret)            # None: refuse with 401
    reservation = await store.reserve(key, usd=0.02, tokens=4096)
    ...                                                 # run the request
    await store.settle(reservation, row)              # the actual spend, and the ledger row

SQLite (the default, a file in the user data dir) and PostgreSQL (``postgresql://``, psycopg
3) behave the same; the schema is created and migrated by Alembic when a store opens.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import platformdirs

from ponder.config import PonderConfig
from ponder.tenancy.models import (
    ApiKey,
    Budget,
    GroupBy,
    Period,
    RequestOutcome,
    RequestRow,
    Reservation,
    Scope,
    Team,
    TraceRow,
    Unit,
)
from ponder.tenancy.responses import ResponseStore, StoredResponse
from ponder.tenancy.store import TenancyStore

ENV_VAR = "PONDER_DATABASE_URL"


def default_database_path() -> Path:
    """The default SQLite file, next to the trace database in the user data dir."""
    return Path(platformdirs.user_data_dir("ponder")) / "tenancy.sqlite3"


def resolve_database_url(
    config: PonderConfig | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """The database to use: ``$PONDER_DATABASE_URL``, else the configuration's
    ``database_url``, else its ``trace_db`` file (``":memory:"``: an in-process database),
    else the default SQLite file."""
    env = os.environ if environ is None else environ
    if env.get(ENV_VAR):
        return env[ENV_VAR]
    if config is not None and config.database_url:
        return config.database_url
    if config is not None and config.trace_db:
        # The older setting for the trace file names the one database file now.
        return (
            "sqlite:///:memory:"
            if config.trace_db == ":memory:"
            else f"sqlite:///{config.trace_db}"
        )
    return f"sqlite:///{default_database_path()}"


__all__ = [
    "ENV_VAR",
    "ApiKey",
    "Budget",
    "GroupBy",
    "Period",
    "RequestOutcome",
    "RequestRow",
    "Reservation",
    "ResponseStore",
    "Scope",
    "StoredResponse",
    "Team",
    "TenancyStore",
    "TraceRow",
    "Unit",
    "default_database_path",
    "resolve_database_url",
]
