"""The tenancy store (ponder.tenancy): keys and their secrets, its schema, and opening it.
Budgets and rate limits: tests/test_tenancy_budgets.py; the ledger and traces:
tests/test_tenancy_ledger.py.

Every test that takes a store runs twice: on a SQLite file and on a real PostgreSQL
(tests/postgres.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from ponder.config import PonderConfig, config_from_mapping
from ponder.errors import (
    AuthenticationError,
    InvalidRequestError,
    StoreUnavailableError,
    TenantNotFoundError,
)
from ponder.tenancy import TenancyStore, resolve_database_url
from tests.postgres import database_url, postgres_server  # noqa: F401
from tests.tenancy_helpers import opened_store  # noqa: F401


async def test_keys_are_created_authenticated_rotated_and_revoked(store: TenancyStore) -> None:
    team = await store.create_team("acme", allowed_models=["gpt-*"], max_effort="high")
    assert (team.name, team.allowed_models, team.max_effort) == ("acme", ("gpt-*",), "high")
    key, secret = await store.create_key("acme", "ci", team_admin=True, allowed_strategies=["auto"])
    assert secret.startswith("pk-") and len(secret) >= 43
    assert key.prefix == secret[3:11] and key.team_admin and key.allowed_strategies == ("auto",)
    assert await store.authenticate(secret) == key
    assert await store.authenticate(secret + "x") is None
    assert await store.authenticate("pk-" + "A" * 43) is None
    assert await store.authenticate("sk-nothing") is None

    rotated, new_secret = await store.rotate_key(key.id)
    assert rotated.id == key.id and rotated.allowed_strategies == ("auto",)
    assert new_secret != secret and rotated.prefix == new_secret[3:11]
    assert await store.authenticate(secret) is None
    assert (await store.authenticate(new_secret)) == rotated

    other, other_secret = await store.create_key("acme", "batch")
    await store.revoke_key(key.id)
    await store.revoke_key(key.id)  # idempotent
    assert await store.authenticate(new_secret) is None
    assert await store.authenticate(other_secret) == other
    listed = await store.list_keys("acme")
    assert [k.id for k in listed] == [key.id, other.id]
    assert listed[0].revoked and not listed[1].revoked
    with pytest.raises(InvalidRequestError, match="revoked"):
        await store.rotate_key(key.id)
    with pytest.raises(AuthenticationError):
        await store.reserve(listed[0], usd=0.0, tokens=0)

    with pytest.raises(TenantNotFoundError):
        await store.create_key("nobody", "x")
    with pytest.raises(TenantNotFoundError):
        await store.revoke_key("key_missing")
    with pytest.raises(TenantNotFoundError):
        await store.rotate_key("key_missing")
    with pytest.raises(InvalidRequestError, match="already exists"):
        await store.create_team("acme")
    await store.create_team("zeta")
    assert [t.name for t in await store.list_teams()] == ["acme", "zeta"]
    assert await store.list_keys("zeta") == []
    assert len(await store.list_keys()) == 2
    assert (await store.get_team("acme")) == team and await store.get_team("nope") is None


async def test_only_the_hash_of_a_secret_is_stored(
    store: TenancyStore,
    database_url: str,  # noqa: F811
) -> None:
    await store.create_team("acme")
    key, secret = await store.create_key("acme", "ci")
    _, rotated = await store.rotate_key(key.id)
    body = secret[3:]

    def dump(conn: Connection) -> tuple[list[str], str]:
        tables = inspect(conn).get_table_names()
        return tables, "".join(repr(conn.execute(text(f"SELECT * FROM {t}")).all()) for t in tables)

    tables, dumped = await store._db.run(dump, write=False)
    assert "api_keys" in tables
    for value in (secret, rotated):
        assert value[3:] not in dumped
    if database_url.startswith("sqlite"):
        await store.aclose()
        path = Path(database_url.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert body.encode() not in raw and rotated[3:].encode() not in raw
        assert key.id.encode() in raw  # the file was really read


async def test_schema_matches_the_migrations(store: TenancyStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from ponder.tenancy.schema import metadata

    def diff(conn: object) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))  # type: ignore[arg-type]

    def check(conn: Connection) -> str | None:
        assert diff(conn) == []
        if store.dialect == "sqlite":
            pragmas = [
                conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            ]
            assert pragmas == ["wal", 1, 60_000]
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    assert await store._db.run(check, write=False) == "0005"


async def test_reopening_keeps_everything(database_url: str) -> None:  # noqa: F811
    first = await TenancyStore.open(database_url)
    await first.create_team("acme")
    key, secret = await first.create_key("acme", "ci")
    await first.aclose()
    again = await TenancyStore.open(database_url)
    try:
        assert await again.authenticate(secret) == key
    finally:
        await again.aclose()


async def test_in_memory_sqlite_serializes_its_one_connection() -> None:
    import asyncio

    store = await TenancyStore.open("sqlite://")
    try:
        await store.create_team("acme")
        key, _ = await store.create_key("acme", "ci")
        await store.set_budget("key", key.id, unit="tokens", period="total", limit=10)
        results = await asyncio.gather(
            *(store.reserve(key, usd=0, tokens=3) for _ in range(10)), return_exceptions=True
        )
        assert sum(not isinstance(r, BaseException) for r in results) == 3
    finally:
        await store.aclose()


async def test_an_unreachable_database_fails_closed() -> None:
    with pytest.raises(StoreUnavailableError):
        await TenancyStore.open("postgresql://nobody@127.0.0.1:9/none?connect_timeout=2")


def test_the_database_url_comes_from_env_then_config_then_default() -> None:
    config = config_from_mapping({"database_url": "postgresql://db/ponder"})
    assert resolve_database_url(config, {}) == "postgresql://db/ponder"
    env = {"PONDER_DATABASE_URL": "sqlite:////tmp/x.db"}
    assert resolve_database_url(config, env) == "sqlite:////tmp/x.db"
    default = resolve_database_url(PonderConfig(), {})
    assert default.startswith("sqlite:///") and default.endswith("tenancy.sqlite3")
