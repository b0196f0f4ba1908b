"""One log record per request: the ``ponder.requests`` logger, which
:mod:`ponder.logs` formats as text or a JSON line (fields in ``REQUEST_FIELDS``)."""

from __future__ import annotations

import logging

from ponder.errors import PolicyError, PonderError
from ponder.gateway.call import Plan
from ponder.metering import outcome_of
from ponder.reasoning.trace import Trace
from ponder.types import Usage

# One record per request; its fields are in ponder.logs.REQUEST_FIELDS.
REQUESTS_LOG = logging.getLogger("ponder.requests")


def log_request(
    plan: Plan,
    usage: Usage,
    error: BaseException | None,
    seconds: float,
    trace: Trace | None,
    *,
    ok: bool | None = None,
) -> None:
    """One ``ponder.requests`` record per request (ponder.logs formats it)."""
    if not REQUESTS_LOG.isEnabledFor(logging.INFO):
        return
    if error is None:
        status = 200 if ok is None or ok else 400
    else:
        status = error.status_code if isinstance(error, PonderError) else 500
    key = plan.caller.key
    spec = plan.spec
    REQUESTS_LOG.info(
        "%s %s %d",
        plan.model,
        spec.describe() if spec is not None else "-",
        status,
        extra={
            "request_id": plan.request_id,
            "key": key.prefix if key is not None else None,
            "team": key.team if key is not None else None,
            "model": plan.model,
            "strategy": spec.describe() if spec is not None else None,
            "outcome": outcome_of(error),
            "status": status,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "seconds": round(seconds, 4),
            "trace_id": trace.id if trace is not None else None,
        },
    )


def log_refusal(error: PolicyError) -> None:
    """The record of a request policy refused before it ran."""
    REQUESTS_LOG.info(
        "refused: %s",
        error.message,
        extra={"status": error.status_code, "outcome": "error", "total_tokens": 0},
    )
