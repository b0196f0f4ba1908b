"""Connecting to the tenancy database: URLs, engines, transactions and migrations.

One code path serves SQLite and PostgreSQL:

* SQLite (``sqlite+aiosqlite``): WAL, a generous ``busy_timeout`` and foreign keys on every
  connection; the driver's own transaction handling is switched off and SQLAlchemy emits
  ``BEGIN IMMEDIATE`` for write transactions, so concurrent writers (tasks, or processes on
  the same file) queue for the write lock instead of failing with ``SQLITE_BUSY`` halfway.
* PostgreSQL (``postgresql+psycopg``, psycopg 3): READ COMMITTED; the store's conditional
  ``UPDATE`` statements take row locks, which serialize concurrent changes to one counter.

The schema is brought to the newest Alembic revision when a store opens, under a lock
(``BEGIN IMMEDIATE`` on SQLite, an advisory transaction lock on PostgreSQL) so that several
processes starting at once migrate once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, exc, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from ponder.errors import ConfigError, StoreUnavailableError

SCRIPT_LOCATION = "ponder.tenancy:migrations"
BUSY_TIMEOUT_MS = 60_000
# Any constant: the key of PostgreSQL's advisory lock that serializes migrations.
_MIGRATION_LOCK = 0x504F4E44  # "POND"
_BEGIN_OPTION = "ponder_sqlite_begin"


def async_url(url: str) -> str:
    """The URL with its asyncio driver: ``sqlite://`` gets aiosqlite, ``postgresql://`` and
    ``postgres://`` get psycopg 3. Other databases are refused."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    try:
        parsed = make_url(url)
    except exc.ArgumentError as error:
        raise ConfigError(f"invalid database URL {url!r}: {error}") from error
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend == "postgresql":
        if parsed.get_driver_name() not in ("psycopg", "psycopg_async", "asyncpg"):
            parsed = parsed.set(drivername="postgresql+psycopg")
    else:
        raise ConfigError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
    return parsed.render_as_string(hide_password=False)


def is_memory_sqlite(url: str) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def create_engine(url: str) -> AsyncEngine:
    """An engine for ``url`` (already passed through :func:`async_url`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_async_engine(
        url, isolation_level="READ COMMITTED", pool_size=10, max_overflow=20, pool_pre_ping=True
    )


def _sqlite_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    options: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000}}
    if is_memory_sqlite(url):
        # One shared connection; the store serializes its transactions on it.
        options["poolclass"] = StaticPool
    else:
        assert parsed.database is not None
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        options.update(pool_size=8, max_overflow=8, pool_timeout=BUSY_TIMEOUT_MS / 1000)
    engine = create_async_engine(url, **options)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        # Take BEGIN away from the sqlite3 module (it would defer it, and skip it for DDL).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
            "PRAGMA journal_mode = WAL",
            "PRAGMA synchronous = NORMAL",
            "PRAGMA foreign_keys = ON",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


class Database:
    """An engine and the way the store opens transactions on it."""

    def __init__(self, engine: AsyncEngine, *, serialize: bool) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # A :memory: SQLite database has one connection: its transactions take turns.
        self._turn = asyncio.Lock() if serialize else None
        # SQLite has one writer at a time anyway: this process's writers queue here, on the
        # event loop, and only other processes' writers wait in SQLite's busy handler.
        self._write_turn = asyncio.Lock() if self.dialect == "sqlite" else None

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back if it raises. On
        SQLite a write transaction holds the write lock from its first statement."""
        turn: asyncio.Lock | nullcontext[None] = nullcontext()
        if self._turn is not None:
            turn = self._turn
        elif write and self._write_turn is not None:
            turn = self._write_turn
        try:
            async with turn, self.engine.connect() as conn:
                if self.dialect == "sqlite":
                    mode = "IMMEDIATE" if write else "DEFERRED"
                    await conn.execution_options(**{_BEGIN_OPTION: mode})
                async with conn.begin():
                    yield conn
        except (exc.OperationalError, exc.InterfaceError) as error:
            raise StoreUnavailableError(f"the tenancy database failed: {error}") from error

    async def dispose(self) -> None:
        await self.engine.dispose()


async def migrate(db: Database) -> None:
    """Bring the schema to Alembic's head revision (creating it in an empty database)."""
    async with db.transaction() as conn:
        if db.dialect == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        await conn.run_sync(_upgrade)


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
