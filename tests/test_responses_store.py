"""Stored responses in the tenancy database (ponder.tenancy.responses): written, read back,
walked as a conversation, deleted, and reopened; and the gateway's ownership rules on top.

Every test runs twice: on a SQLite file and on a real PostgreSQL (tests/postgres.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from ponder.config import PonderConfig
from ponder.errors import ResponseNotFoundError
from ponder.gateway import Gateway
from ponder.gateway.identity import Caller
from ponder.gateway.responses import Responses
from ponder.protocol.responses import ResponsesRequest
from ponder.tenancy import StoredResponse, TenancyStore
from ponder.tenancy.responses import MAX_CHAIN
from tests.postgres import database_url, postgres_server  # noqa: F401
from tests.tenancy_helpers import opened_store  # noqa: F401

T0 = datetime(2031, 3, 14, 12, 0, 30, tzinfo=UTC)


def stored(
    response_id: str,
    previous: str | None = None,
    *,
    key_id: str | None = "key_a",
    team: str | None = "acme",
    said: str = "hi",
) -> StoredResponse:
    return StoredResponse(
        id=response_id,
        key_id=key_id,
        team=team,
        created_at=T0 + timedelta(seconds=len(response_id)),
        model="echo-model",
        status="completed",
        previous_response_id=previous,
        request={"instructions": None, "metadata": {"k": "v"}, "tools": []},
        input_items=[
            {
                "type": "message",
                "id": f"msg_{response_id}",
                "role": "user",
                "content": [{"type": "input_text", "text": said}],
            }
        ],
        output=[
            {
                "type": "function_call",
                "id": f"fc_{response_id}",
                "call_id": f"call_{response_id}",
                "name": "f",
                "arguments": "{}",
            }
        ],
        usage={
            "input_tokens": 3,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 4,
            "output_tokens_details": {"reasoning_tokens": 1},
            "total_tokens": 7,
        },
    )


async def test_a_response_is_written_read_and_deleted(store: TenancyStore) -> None:
    row = stored("resp_1", said="naïve ☃")
    await store.responses.put(row)
    assert await store.responses.get("resp_1") == row  # every field, unicode and time included
    assert await store.responses.get("resp_missing") is None
    assert await store.responses.delete("resp_1") is True
    assert await store.responses.delete("resp_1") is False
    assert await store.responses.get("resp_1") is None


async def test_a_chain_is_walked_oldest_first_and_knows_when_it_is_broken(
    store: TenancyStore,
) -> None:
    for rid, prev in (("resp_a", None), ("resp_b", "resp_a"), ("resp_c", "resp_b")):
        await store.responses.put(stored(rid, prev))
    chain = await store.responses.chain("resp_c")
    assert [r.id for r in chain.rows] == ["resp_a", "resp_b", "resp_c"] and chain.complete
    assert (await store.responses.chain("resp_nope")).rows == ()
    await store.responses.delete("resp_a")
    broken = await store.responses.chain("resp_c")
    assert [r.id for r in broken.rows] == ["resp_b", "resp_c"] and not broken.complete


async def test_a_chain_that_loops_or_is_too_long_is_not_complete(store: TenancyStore) -> None:
    # Only a hand-edited database can loop: the walk still ends.
    await store.responses.put(stored("resp_x", "resp_y"))
    await store.responses.put(stored("resp_y", "resp_x"))
    looped = await store.responses.chain("resp_x")
    assert len(looped.rows) == 2 and not looped.complete
    assert MAX_CHAIN >= 100


async def test_the_migration_made_the_table(store: TenancyStore) -> None:
    def version(conn: Connection) -> Any:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    assert await store._db.run(version, write=False) == "0005"


async def test_responses_survive_reopening(database_url: str) -> None:  # noqa: F811
    first = await TenancyStore.open(database_url)
    await first.responses.put(stored("resp_kept"))
    await first.aclose()
    again = await TenancyStore.open(database_url)
    try:
        kept = await again.responses.get("resp_kept")
        assert kept is not None and kept.output[0]["call_id"] == "call_resp_kept"
    finally:
        await again.aclose()


async def test_the_gateway_scopes_stored_responses_by_key(database_url: str) -> None:  # noqa: F811
    gateway = Gateway(
        PonderConfig(database_url=database_url, default_strategy=None), store_traces=False
    )
    await gateway.start()
    try:
        store = gateway.accounts.store
        assert store is not None
        await store.create_team("acme")
        owner, _ = await store.create_key("acme", "owner")
        other, _ = await store.create_key("acme", "other")
        lead, _ = await store.create_key("acme", "lead", team_admin=True)
        await store.responses.put(stored("resp_o", key_id=owner.id, team="acme"))
        await store.responses.put(stored("resp_p", "resp_o", key_id=owner.id, team="acme"))
        responses = Responses(gateway)
        for caller in (Caller(key=owner), Caller(key=lead), Caller(admin=True)):
            got = await responses.retrieve("resp_p", caller)
            assert got.metadata == {"k": "v"} and got.previous_response_id == "resp_o"
            items = await responses.input_items("resp_p", caller, order="asc")
            assert [i["id"] for i in items.data] == [
                "msg_resp_o",
                "fc_resp_o",
                "msg_resp_p",
            ]
        with pytest.raises(ResponseNotFoundError):
            await responses.retrieve("resp_p", Caller(key=other))
        with pytest.raises(ResponseNotFoundError):
            await responses.delete("resp_p", Caller(key=other))
        request = ResponsesRequest(model="echo-model", input="x", previous_response_id="resp_p")
        with pytest.raises(ResponseNotFoundError):
            await responses.prepare(request, Caller(key=other))
        turn = await responses.prepare(request, Caller(key=owner))
        # The stored function call went into the conversation as the assistant's tool call.
        roles = [m.role for m in turn.call.request.messages]
        assert roles == ["user", "assistant", "user", "assistant", "user"]
        assert turn.call.request.messages[1].tool_calls
        await responses.delete("resp_p", Caller(key=owner))
        assert await store.responses.get("resp_p") is None
    finally:
        await gateway.aclose()
