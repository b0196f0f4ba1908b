"""Stored responses (``/v1/responses`` with ``store``): written once when a response ends,
read back by ``GET /v1/responses/{id}`` and by a request that continues one with
``previous_response_id``, deleted by ``DELETE``.

A row holds the response's own input items and output items, not the conversation before
it: a continuation walks the ``previous_response_id`` links back (:meth:`ResponseStore.chain`,
one read transaction), so storage grows with what was said, not with its square. Who may read
a row is the gateway's decision (the row names its key and team, as a trace does).

The table is declared here, on the schema's one ``MetaData`` (the store imports this module,
so it is known wherever the schema is); migration ``v0005_responses`` creates it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, String, Table, Text, bindparam, delete, select
from sqlalchemy.engine import Connection

from ponder.tenancy.engine import Database
from ponder.tenancy.models import from_db, to_db
from ponder.tenancy.schema import metadata

responses = Table(
    "responses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("key_id", String(40), index=True),
    Column("team", String(200), index=True),
    Column("created_at", DateTime, nullable=False),
    Column("model", String(300), nullable=False),
    Column("status", String(16), nullable=False),
    Column("previous_response_id", String(64)),
    Column("request", Text, nullable=False),  # JSON: the parameters a response echoes
    Column("input_items", Text, nullable=False),  # JSON list, ids assigned
    Column("output", Text, nullable=False),  # JSON list of output items
    Column("usage", Text),  # JSON, NULL: none (a response that failed before any call)
)

_GET = select(responses).where(responses.c.id == bindparam("id"))
_DELETE = delete(responses).where(responses.c.id == bindparam("id"))

# The longest chain of previous_response_id links a continuation walks: a bound on one
# request's reads, far past any conversation a context window holds.
MAX_CHAIN = 1000


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    key_id: str | None
    team: str | None
    created_at: datetime
    model: str
    status: str
    previous_response_id: str | None
    request: dict[str, Any]
    input_items: list[dict[str, Any]]
    output: list[dict[str, Any]]
    usage: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Chain:
    """A response and the ones it continues, oldest first. ``complete`` is False when a link
    is missing (deleted, or never stored) or the chain is longer than MAX_CHAIN."""

    rows: tuple[StoredResponse, ...]
    complete: bool


class ResponseStore:
    """The ``responses`` table, on the tenancy database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, row: StoredResponse) -> None:
        values = {
            "id": row.id,
            "key_id": row.key_id,
            "team": row.team,
            "created_at": to_db(row.created_at),
            "model": row.model,
            "status": row.status,
            "previous_response_id": row.previous_response_id,
            "request": json.dumps(row.request),
            "input_items": json.dumps(row.input_items),
            "output": json.dumps(row.output),
            "usage": json.dumps(row.usage) if row.usage is not None else None,
        }
        await self._db.run(lambda conn: conn.execute(responses.insert().values(**values)))

    async def get(self, response_id: str) -> StoredResponse | None:
        """The response with its owner; the caller decides who may see it."""
        return await self._db.run(lambda conn: _get(conn, response_id), write=False)

    async def delete(self, response_id: str) -> bool:
        """Delete the response; False if there was none."""
        result = await self._db.run(lambda conn: conn.execute(_DELETE, {"id": response_id}))
        return bool(result.rowcount)

    async def chain(self, response_id: str) -> Chain:
        """The response and every one it continues, oldest first (empty: no such response)."""

        def walk(conn: Connection) -> Chain:
            found: list[StoredResponse] = []
            seen: set[str] = set()
            next_id: str | None = response_id
            while next_id is not None:
                row = _get(conn, next_id) if next_id not in seen else None
                if row is None or len(found) >= MAX_CHAIN:
                    return Chain(tuple(reversed(found)), complete=False)
                seen.add(next_id)
                found.append(row)
                next_id = row.previous_response_id
            return Chain(tuple(reversed(found)), complete=True)

        return await self._db.run(walk, write=False)


def _get(conn: Connection, response_id: str) -> StoredResponse | None:
    row = conn.execute(_GET, {"id": response_id}).first()
    if row is None:
        return None
    return StoredResponse(
        id=row.id,
        key_id=row.key_id,
        team=row.team,
        created_at=from_db(row.created_at),
        model=row.model,
        status=row.status,
        previous_response_id=row.previous_response_id,
        request=json.loads(row.request),
        input_items=json.loads(row.input_items),
        output=json.loads(row.output),
        usage=json.loads(row.usage) if row.usage is not None else None,
    )
