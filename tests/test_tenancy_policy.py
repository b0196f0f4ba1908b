"""Teams' and keys' own routing policies in the tenancy store: stored as JSON, set and
cleared, a corrupt stored policy failing closed, and the v0003 migration (a v0002 database's
teams and keys keep their rows, with no policy).

Every test runs on SQLite and on PostgreSQL (tests/postgres.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, column, inspect, table, text
from sqlalchemy.engine import Connection

from ponder.config.routing import PolicyRule, PolicySettings
from ponder.errors import ConfigError, StoreUnavailableError, TenantNotFoundError
from ponder.tenancy import TenancyStore, engine
from ponder.tenancy.keys import parse_policy
from tests.postgres import database_url, postgres_server  # noqa: F401
from tests.tenancy_helpers import opened_store  # noqa: F401

NAIVE = datetime(2031, 3, 14, 12, 0, 30, tzinfo=UTC).replace(tzinfo=None)

LOCAL = PolicySettings(local_only=True)
STRICT = PolicySettings(
    mode="allow",
    rules=(
        PolicyRule(effect="allow", vendor="openai*", region="eu"),
        PolicyRule(effect="deny", model="gpt-4o-mini", local=False),
    ),
    redact=True,
    fallbacks={"gpt-4o": ("local-llama",)},
)


async def stored_policy(store: TenancyStore, table: str, ident: str) -> str | None:
    column = "name" if table == "teams" else "id"
    return await store._db.run(
        lambda conn: conn.execute(
            text(f"SELECT policy FROM {table} WHERE {column} = :ident"), {"ident": ident}
        ).scalar(),
        write=False,
    )


async def corrupt(store: TenancyStore, table: str, ident: str, stored: str) -> None:
    column = "name" if table == "teams" else "id"
    await store._db.run(
        lambda conn: conn.execute(
            text(f"UPDATE {table} SET policy = :stored WHERE {column} = :ident"),
            {"stored": stored, "ident": ident},
        )
    )


async def test_policies_are_created_read_set_and_cleared(store: TenancyStore) -> None:
    team = await store.create_team("acme", policy=STRICT)
    assert team.policy == STRICT
    assert (await store.get_team("acme")) == team
    key, secret = await store.create_key("acme", "ci", policy=LOCAL)
    assert key.policy == LOCAL
    assert (await store.authenticate(secret)) == key
    plain, _ = await store.create_key("acme", "batch")
    assert plain.policy is None and (await store.get_key(plain.id)) == plain
    # Stored as the JSON policy_as_mapping gives; an empty policy is stored as no policy.
    assert await stored_policy(store, "api_keys", key.id) == '{"local_only":true}'
    empty, _ = await store.create_key("acme", "empty", policy=PolicySettings())
    assert empty.policy is None and await stored_policy(store, "api_keys", empty.id) is None

    changed = await store.set_policy("key", plain.id, STRICT)
    assert changed.policy == STRICT and changed.id == plain.id
    assert (await store.get_key(plain.id)) == changed
    rotated, _ = await store.rotate_key(plain.id)
    assert rotated.policy == STRICT  # rotation keeps it
    cleared = await store.set_policy("team", "acme", None)
    assert cleared.policy is None and await stored_policy(store, "teams", "acme") is None
    assert (await store.list_teams()) == [cleared]
    cleared_key = await store.set_policy("key", key.id, PolicySettings())
    assert cleared_key.policy is None
    assert [k.policy for k in await store.list_keys("acme")] == [None, STRICT, None]

    await store.revoke_key(key.id)
    revoked = await store.set_policy("key", key.id, LOCAL)  # a revoked key's record too
    assert revoked.revoked and revoked.policy == LOCAL
    with pytest.raises(TenantNotFoundError):
        await store.set_policy("team", "nobody", LOCAL)
    with pytest.raises(TenantNotFoundError):
        await store.set_policy("key", "key_missing", None)


@pytest.mark.parametrize(
    "stored",
    ['{"local_only": tru', '{"mode": "maybe"}', '{"rules": 5}', '["local_only"]', "null"],
)
async def test_a_corrupt_stored_policy_fails_closed(store: TenancyStore, stored: str) -> None:
    await store.create_team("acme", policy=LOCAL)
    key, secret = await store.create_key("acme", "ci", policy=LOCAL)
    await corrupt(store, "api_keys", key.id, stored)
    await corrupt(store, "teams", "acme", stored)
    # Never a record without its restrictions: every read of the row refuses.
    with pytest.raises(StoreUnavailableError, match=f"key {key.id!r} policy"):
        await store.authenticate(secret)
    with pytest.raises(StoreUnavailableError, match=f"key {key.id!r} policy"):
        await store.get_key(key.id)
    with pytest.raises(StoreUnavailableError):
        await store.list_keys()
    with pytest.raises(StoreUnavailableError):
        await store.rotate_key(key.id)
    with pytest.raises(StoreUnavailableError, match="team 'acme' policy"):
        await store.get_team("acme")
    # Setting the policy again repairs the row; the failed rotation changed nothing.
    assert (await store.set_policy("key", key.id, None)).policy is None
    assert (await store.set_policy("team", "acme", LOCAL)).policy == LOCAL
    assert (await store.authenticate(secret)) == await store.get_key(key.id)


def test_parse_policy_reads_the_json_form() -> None:
    assert parse_policy(None, "p") is None and parse_policy({}, "p") is None
    assert parse_policy({"local_only": True}, "p") == LOCAL
    for bad in ({"rules": 5}, {"rules": None}, {"mode": "x"}, {"nope": 1}, [1]):
        with pytest.raises(ConfigError, match=r"\bp\b"):
            parse_policy(bad, "p")


def alembic(connection: Connection, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", engine.SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    getattr(command, action)(config, revision)


def insert(conn: Connection, name: str, row: dict[str, Any]) -> None:
    columns = [column(c, DateTime() if isinstance(v, datetime) else None) for c, v in row.items()]
    conn.execute(table(name, *columns).insert(), [row])


def v0002_data(conn: Connection) -> None:
    insert(conn, "teams", {"name": "acme", "max_effort": "high", "created_at": NAIVE})
    key = {"id": "key_1", "team": "acme", "name": "ci", "prefix": "abcdefgh"}
    insert(
        conn, "api_keys", {**key, "secret_sha256": "f00", "team_admin": True, "created_at": NAIVE}
    )


async def test_the_v0003_upgrade_keeps_teams_and_keys_without_a_policy(
    database_url: str,  # noqa: F811
) -> None:
    db = engine.open_database(database_url)
    try:
        await db.run(lambda conn: alembic(conn, "upgrade", "0002"))
        await db.run(v0002_data)
    finally:
        await db.dispose()

    store = await TenancyStore.open(database_url)  # migrates to the newest revision
    try:
        team = await store.get_team("acme")
        key = await store.get_key("key_1")
        assert team is not None and (team.max_effort, team.policy) == ("high", None)
        assert key is not None and key.team_admin and key.policy is None
        assert await stored_policy(store, "api_keys", "key_1") is None
        await store.set_policy("key", "key_1", LOCAL)
        await store.set_policy("team", "acme", STRICT)

        def columns(conn: Connection) -> dict[str, set[str]]:
            found = inspect(conn)
            return {t: {c["name"] for c in found.get_columns(t)} for t in ("teams", "api_keys")}

        # Down to v0002: the column goes, the rows stay; and up again.
        await store._db.run(lambda conn: alembic(conn, "downgrade", "0002"))
        assert all("policy" not in c for c in (await store._db.run(columns)).values())
        await store._db.run(lambda conn: alembic(conn, "upgrade", "head"))
        assert all("policy" in c for c in (await store._db.run(columns)).values())
        key = await store.get_key("key_1")
        assert key is not None and key.policy is None and key.name == "ci"
    finally:
        await store.aclose()
