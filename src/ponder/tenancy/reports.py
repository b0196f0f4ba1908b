"""The request ledger and traces: writing rows, and reading usage back grouped.

Ledger rows are keyed by request id and written at most once (a second write of the same
request is ignored), so retries cannot double-count. Token sums are integers and money sums
are integer micro-dollars, added up by the database.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, Table, bindparam, case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ponder.errors import InvalidRequestError
from ponder.tenancy.models import (
    GROUPS,
    GroupBy,
    RequestRow,
    TraceRow,
    from_db,
    micros_to_usd,
    to_db,
    usd_to_micros,
)
from ponder.tenancy.prepared import Prepared
from ponder.tenancy.schema import request_calls, requests, traces

_DIALECTS = ("sqlite", "postgresql")
_TRACE_COLUMNS = ("body", "key_id", "team", "model", "created_at")


def insert_once(dialect: str, table: Table, key: str) -> Insert:
    """``INSERT`` that does nothing when a row with the same ``key`` exists."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=[key])
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])


def _put(dialect: str) -> Insert:
    """``INSERT`` of a trace that replaces one stored under the same id."""
    if dialect == "postgresql":
        pg = postgresql.insert(traces)
        return pg.on_conflict_do_update(
            index_elements=["trace_id"], set_={c: pg.excluded[c] for c in _TRACE_COLUMNS}
        )
    lite = sqlite.insert(traces)
    return lite.on_conflict_do_update(
        index_elements=["trace_id"], set_={c: lite.excluded[c] for c in _TRACE_COLUMNS}
    )


# Built once per dialect, run as prepared statements (a ledger row is on every request's
# path); a Core execution keeps an INSERT's row count only when asked to.
_WRITE_REQUEST = {
    d: Prepared(insert_once(d, requests, "request_id").execution_options(preserve_rowcount=True))
    for d in _DIALECTS
}
_WRITE_CALLS = Prepared(request_calls.insert())
_PUT_TRACE = {d: Prepared(_put(d)) for d in _DIALECTS}
_GET_TRACE = select(traces).where(traces.c.trace_id == bindparam("trace_id"))


def write_request(conn: Connection, row: RequestRow) -> bool:
    """Insert a ledger row and its calls; False if the request is already in the ledger."""
    created = to_db(row.created_at)
    usage = row.usage
    counts = [usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens]
    counts += [usage.cached_prompt_tokens, usage.calls]
    if any(not isinstance(n, int) or n < 0 for n in counts) or not row.seconds >= 0:
        raise InvalidRequestError(f"request {row.request_id!r}: negative usage or duration")
    result = _WRITE_REQUEST[conn.dialect.name].run(
        conn,
        {
            "request_id": row.request_id,
            "key_id": row.key_id,
            "team": row.team,
            "model": row.model,
            "strategy": row.strategy,
            "effort": row.effort,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "cached_prompt_tokens": usage.cached_prompt_tokens,
            "calls": usage.calls,
            "cost_micros": usd_to_micros(row.cost_usd, "cost_usd"),
            "seconds": row.seconds,
            "outcome": row.outcome,
            "trace_id": row.trace_id,
            "created_at": created,
            "day": created.strftime("%Y-%m-%d"),
            "routing": json.dumps(list(row.routing)) if row.routing else None,
        },
    )
    if result.rowcount != 1:
        return False
    if row.calls:
        _WRITE_CALLS.run_many(
            conn,
            [
                {
                    "request_id": row.request_id,
                    "seq": seq,
                    "backend": call.backend,
                    "prompt_tokens": call.usage.prompt_tokens,
                    "completion_tokens": call.usage.completion_tokens,
                    "reasoning_tokens": call.usage.reasoning_tokens,
                    "cached_prompt_tokens": call.usage.cached_prompt_tokens,
                    "seconds": call.seconds,
                    "outcome": call.outcome,
                }
                for seq, call in enumerate(row.calls)
            ],
        )
    return True


def usage(
    conn: Connection,
    *,
    group_by: GroupBy,
    since: datetime | None,
    until: datetime | None,
    key_id: str | None,
    team: str | None,
) -> list[dict[str, Any]]:
    """Totals per group, from ``since`` (inclusive) to ``until`` (exclusive)."""
    if group_by not in GROUPS:
        raise InvalidRequestError(f"group_by must be one of {', '.join(GROUPS)}", param="group_by")
    column = {
        "key": requests.c.key_id,
        "team": requests.c.team,
        "model": requests.c.model,
        "strategy": requests.c.strategy,
        "day": requests.c.day,
    }[group_by]
    query = select(
        column,
        func.count(),
        func.sum(case((requests.c.outcome == "ok", 1), else_=0)),
        func.sum(requests.c.prompt_tokens),
        func.sum(requests.c.completion_tokens),
        func.sum(requests.c.reasoning_tokens),
        func.sum(requests.c.cached_prompt_tokens),
        func.sum(requests.c.calls),
        func.sum(requests.c.cost_micros),
        func.sum(requests.c.seconds),
    )
    if since is not None:
        query = query.where(requests.c.created_at >= to_db(since))
    if until is not None:
        query = query.where(requests.c.created_at < to_db(until))
    if key_id is not None:
        query = query.where(requests.c.key_id == key_id)
    if team is not None:
        query = query.where(requests.c.team == team)
    query = query.group_by(column).order_by(column.is_(None), column)
    out = []
    for group, count, ok, prompt, completion, reasoning, cached, calls, micros, seconds in (
        conn.execute(query)
    ).all():
        out.append(
            {
                group_by: group,
                "requests": int(count),
                "ok": int(ok),
                "prompt_tokens": int(prompt),
                "completion_tokens": int(completion),
                "reasoning_tokens": int(reasoning),
                "cached_prompt_tokens": int(cached),
                "total_tokens": int(prompt) + int(completion),
                "calls": int(calls),
                "cost_usd": micros_to_usd(int(micros)),
                "seconds": float(seconds),
            }
        )
    return out


def put_trace(
    conn: Connection,
    trace_id: str,
    body: dict[str, Any],
    *,
    key_id: str | None,
    team: str | None,
    model: str | None,
    now: datetime,
) -> None:
    """Store a trace, replacing one stored under the same id (one statement, so two
    writers of the same id cannot collide)."""
    values = {
        "trace_id": trace_id,
        "body": json.dumps(body),
        "key_id": key_id,
        "team": team,
        "model": model,
        "created_at": to_db(now),
    }
    _PUT_TRACE[conn.dialect.name].run(conn, values)


def get_trace(conn: Connection, trace_id: str) -> TraceRow | None:
    row = conn.execute(_GET_TRACE, {"trace_id": trace_id}).first()
    if row is None:
        return None
    return TraceRow(
        trace_id=row.trace_id,
        body=json.loads(row.body),
        key_id=row.key_id,
        team=row.team,
        model=row.model,
        created_at=from_db(row.created_at),
    )
