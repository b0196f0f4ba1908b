"""Opening a request in the in-flight journal, and recording the requests a killed process
left in its own.

At start-up the gateway hands each interrupted request (:mod:`ponder.gateway.journal`) to
:func:`record_interrupted`: its ledger row is written with outcome ``interrupted`` and what
its calls had spent, priced as any row is, and its reservation is settled with that instead
of being held until the stale-reservation sweep. Both writes are idempotent by id, so a row
that was committed just before the kill is neither written nor charged again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from ponder.gateway.accounts import Accounts
from ponder.gateway.call import ChatCall, Plan
from ponder.gateway.journal import Interrupted, Journal, RequestJournal, begun_at, orphaned
from ponder.tenancy import RequestRow, Reservation
from ponder.types import Usage

log = logging.getLogger("ponder.gateway")


async def record_interrupted(accounts: Accounts, directory: Path) -> int:
    """Write the rows of every request begun and never recorded in journals no live process
    holds; returns how many. Journals are removed once their requests are recorded."""
    store = accounts.store
    if store is None:
        return 0
    with orphaned(directory) as interrupted:
        for entry in interrupted:
            row = _row(entry, accounts)
            reservation = _reservation(entry)
            if reservation is not None:
                await store.settle(reservation, row)
            else:
                await store.record(row)
    if interrupted:
        log.warning(
            "recorded %d request(s) that a stopped process left unfinished (outcome "
            "'interrupted'), from its journal in %s",
            len(interrupted),
            directory,
        )
    return len(interrupted)


def journal_begin(journal: Journal, plan: Plan, call: ChatCall) -> RequestJournal:
    """Open a planned request's lines in the journal: who and what, and its reservation."""
    held = plan.admission.reservation
    spec = plan.spec
    return journal.begin(
        plan.request_id,
        key_id=plan.caller.key_id,
        team=plan.caller.team_name,
        model=plan.model,
        strategy=spec.describe() if spec is not None else None,
        effort=call.reasoning_effort,
        reservation=None
        if held is None
        else {
            "id": held.id,
            "key_id": held.key_id,
            "team": held.team,
            "usd": held.usd,
            "tokens": held.tokens,
            "created": held.created_at.isoformat(),
        },
    )


def _row(entry: Interrupted, accounts: Accounts) -> RequestRow:
    begun = entry.begun
    calls = entry.calls
    started = begun_at(entry)
    return RequestRow(
        request_id=entry.request_id,
        key_id=_text(begun.get("key")),
        team=_text(begun.get("team")),
        model=_text(begun.get("model")),
        strategy=_text(begun.get("strategy")),
        effort=_text(begun.get("effort")),
        usage=Usage.sum([c.usage for c in calls]),
        cost_usd=accounts.cost(calls),
        seconds=0.0,  # unknown: the process died at some point after its last line
        outcome="interrupted",
        calls=calls,
        created_at=started,
        routing=("interrupted: the process serving it stopped; recorded from its journal",),
    )


def _reservation(entry: Interrupted) -> Reservation | None:
    held = entry.begun.get("res")
    if not isinstance(held, dict) or not held.get("id"):
        return None
    return Reservation(
        id=str(held["id"]),
        key_id=str(held.get("key_id") or entry.begun.get("key") or ""),
        team=str(held.get("team") or entry.begun.get("team") or ""),
        usd=float(held.get("usd") or 0.0),
        tokens=int(held.get("tokens") or 0),
        created_at=datetime.fromisoformat(str(held["created"]))
        if held.get("created")
        else begun_at(entry),
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)
