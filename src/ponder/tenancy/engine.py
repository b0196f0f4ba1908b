"""Connecting to the tenancy database: URLs, engines, transactions and migrations.

The store's transactions are synchronous functions of a SQLAlchemy :class:`Connection`
(its "bodies"); :meth:`Database.run` runs one in a transaction and awaits its result:

* SQLite (``sqlite+pysqlite``): the whole transaction runs in one hop to a worker thread, on
  a synchronous engine, instead of one hop per statement (an asyncio driver's cost is the
  hops, not SQLite); each worker thread keeps its connection between transactions, and the
  statements on a request's path run as :mod:`~ponder.tenancy.prepared` statements. A
  cancelled caller's transaction rolls back (unless it was committing already), and its
  turn is held until its thread is done. WAL, a generous ``busy_timeout`` and foreign keys
  on every connection;
  the driver's own transaction handling is switched off and ``BEGIN IMMEDIATE`` is emitted
  for write transactions, so concurrent writers (tasks, or processes on the same file) queue
  for the write lock instead of failing with ``SQLITE_BUSY`` halfway. This process's writers
  take turns on the event loop first, so only other processes' writers wait in SQLite.
* PostgreSQL (``postgresql+psycopg``, psycopg 3, asyncio): READ COMMITTED; the body runs
  through ``AsyncConnection.run_sync``, each statement awaited on the event loop. The store's
  conditional ``UPDATE`` statements take row locks, which serialize concurrent changes to one
  counter, across processes too.

A database failure raises :class:`StoreUnavailableError`. The schema is brought to the
newest Alembic revision when a store opens, under a lock (``BEGIN IMMEDIATE`` on SQLite, an
advisory transaction lock on PostgreSQL) so that several processes starting at once migrate
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, exc, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from ponder.errors import ConfigError, StoreUnavailableError
from ponder.tenancy.prepared import driver_execute

T = TypeVar("T")

SCRIPT_LOCATION = "ponder.tenancy:migrations"
BUSY_TIMEOUT_MS = 60_000
SQLITE_THREADS = 8  # worker threads (and pooled connections) of one SQLite database
# Any constant: the key of PostgreSQL's advisory lock that serializes migrations.
_MIGRATION_LOCK = 0x504F4E44  # "POND"
_BEGIN_OPTION = "ponder_sqlite_begin"


def driver_url(url: str) -> str:
    """The URL with the store's driver: ``sqlite://`` gets pysqlite (run in worker
    threads), ``postgresql://`` and ``postgres://`` get psycopg 3 (asyncio). Other databases
    are refused."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    try:
        parsed = make_url(url)
    except exc.ArgumentError as error:
        raise ConfigError(f"invalid database URL {url!r}: {error}") from error
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+pysqlite")
    elif backend == "postgresql":
        if parsed.get_driver_name() not in ("psycopg", "psycopg_async", "asyncpg"):
            parsed = parsed.set(drivername="postgresql+psycopg")
    else:
        raise ConfigError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
    return parsed.render_as_string(hide_password=False)


def is_memory_sqlite(url: str) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def open_database(url: str) -> Database:
    """The database at ``url`` (any URL :func:`driver_url` accepts); nothing is connected
    yet."""
    full = driver_url(url)
    if make_url(full).get_backend_name() == "sqlite":
        return SqliteDatabase(full)
    return PostgresDatabase(full)


def _unavailable(error: Exception) -> StoreUnavailableError:
    return StoreUnavailableError(f"the tenancy database failed: {error}")


class Database(ABC):
    """An engine and the way the store runs transactions on it."""

    dialect: str  # "sqlite" or "postgresql"

    @abstractmethod
    async def run(self, body: Callable[[Connection], T], *, write: bool = True) -> T:
        """``body(conn)`` in one transaction: committed when it returns, rolled back if it
        raises. On SQLite a write transaction holds the write lock from its start."""

    @abstractmethod
    async def dispose(self) -> None:
        """Close every connection."""


class SqliteDatabase(Database):
    """SQLite through a synchronous engine: a transaction is one call in a worker thread."""

    dialect = "sqlite"

    def __init__(self, url: str) -> None:
        options: dict[str, Any] = {
            "connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        }
        memory = is_memory_sqlite(url)
        if memory:
            # One shared connection; the store's transactions take turns on it.
            options["poolclass"] = StaticPool
        else:
            database = make_url(url).database
            assert database is not None
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            # A connection for every worker thread: a thread never waits for the pool.
            options.update(pool_size=SQLITE_THREADS, max_overflow=0)
        self.engine = create_engine(url, **options)
        _configure_sqlite(self.engine)
        self._threads = ThreadPoolExecutor(
            max_workers=1 if memory else SQLITE_THREADS, thread_name_prefix="ponder-tenancy"
        )
        # A :memory: database has one connection: all its transactions take turns. SQLite has
        # one writer at a time anyway: this process's writers queue here, on the event loop,
        # and only other processes' writers wait in SQLite's busy handler.
        self._turn = asyncio.Lock() if memory else None
        self._write_turn = asyncio.Lock()
        # Each worker thread keeps its connection open between transactions (checking one
        # out of the pool and back costs more than a small transaction); dispose closes them.
        self._local = threading.local()
        self._kept: set[Connection] = set()
        self._kept_lock = threading.Lock()

    async def run(self, body: Callable[[Connection], T], *, write: bool = True) -> T:
        turn: AbstractAsyncContextManager[Any] = nullcontext()
        if self._turn is not None:
            turn = self._turn
        elif write:
            turn = self._write_turn
        async with turn:
            abandoned = threading.Event()
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._threads, self._transaction, body, write, abandoned)
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                # The thread cannot be stopped: it rolls back instead of committing (unless
                # it is committing already), and the turn is kept until it has finished.
                abandoned.set()
                while not future.done():
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.wait([future])
                if not future.cancelled():
                    future.exception()  # retrieved: the caller was cancelled, it wins
                raise

    def _transaction(
        self, body: Callable[[Connection], T], write: bool, abandoned: threading.Event
    ) -> T:
        conn: Connection | None = None
        try:
            conn = self._connection()
            conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE" if write else "DEFERRED"})
            with conn.begin():
                result = body(conn)
                if abandoned.is_set():
                    raise _Abandoned
            return result
        except (exc.OperationalError, exc.InterfaceError) as error:
            if conn is not None:  # a fresh connection for the next transaction
                self._release(conn)
            raise _unavailable(error) from error

    def _connection(self) -> Connection:
        """This worker thread's connection."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.engine.connect()
            with self._kept_lock:
                self._kept.add(conn)
        return conn

    def _release(self, conn: Connection) -> None:
        self._local.conn = None
        with self._kept_lock:
            self._kept.discard(conn)
        conn.close()

    async def dispose(self) -> None:
        def close() -> None:
            self._threads.shutdown(wait=True)  # no thread uses its connection any more
            with self._kept_lock:
                kept, self._kept = self._kept, set()
            for conn in kept:
                conn.close()
            self.engine.dispose()

        await asyncio.to_thread(close)


class _Abandoned(Exception):
    """Rolls back the transaction of a caller that was cancelled."""


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
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

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        driver_execute(connection, f"BEGIN {mode}")


class PostgresDatabase(Database):
    """PostgreSQL through psycopg's asyncio driver."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.engine: AsyncEngine = create_async_engine(
            url, isolation_level="READ COMMITTED", pool_size=10, max_overflow=20, pool_pre_ping=True
        )

    async def run(self, body: Callable[[Connection], T], *, write: bool = True) -> T:
        try:
            async with self.engine.connect() as conn, conn.begin():
                return await conn.run_sync(body)
        except (exc.OperationalError, exc.InterfaceError) as error:
            raise _unavailable(error) from error

    async def dispose(self) -> None:
        await self.engine.dispose()


async def migrate(db: Database) -> None:
    """Bring the schema to Alembic's head revision (creating it in an empty database)."""
    await db.run(_upgrade)


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
