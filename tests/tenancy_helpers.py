"""What the tenancy store's tests share: a store on the test's database (fixture ``store``,
once on SQLite and once on PostgreSQL through tests/postgres.py's ``database_url``), a fixed
time, and ledger rows.

A test module takes the fixture by importing it, with tests/postgres.py's::

    from tests.postgres import database_url, postgres_server  # noqa: F401
    from tests.tenancy_helpers import opened_store  # noqa: F401
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from ponder.metering import CallRecord
from ponder.tenancy import RequestRow, TenancyStore
from ponder.types import Usage

T0 = datetime(2031, 3, 14, 12, 0, 30, tzinfo=UTC)


@pytest.fixture(name="store")
async def opened_store(database_url: str) -> AsyncIterator[TenancyStore]:
    opened = await TenancyStore.open(database_url)
    try:
        yield opened
    finally:
        await opened.aclose()


def ledger_row(
    request_id: str,
    key_id: str | None,
    team: str | None,
    *,
    cost: float = 0.0,
    prompt: int = 0,
    completion: int = 0,
    model: str = "m",
    strategy: str | None = None,
    outcome: str = "ok",
    at: datetime = T0,
) -> RequestRow:
    return RequestRow(
        request_id=request_id,
        key_id=key_id,
        team=team,
        model=model,
        strategy=strategy,
        effort=None,
        usage=Usage(prompt_tokens=prompt, completion_tokens=completion, calls=1),
        cost_usd=cost,
        seconds=0.5,
        outcome=outcome,  # type: ignore[arg-type]
        calls=(CallRecord("remote:m", Usage(prompt, completion, calls=1), 0.5, "ok"),),
        created_at=at,
    )
