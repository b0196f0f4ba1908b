"""The server's usage ledger: per-model totals and per-tag rows."""

from __future__ import annotations

from ponder.gateway.ledger import UsageLedger
from ponder.types import Usage


def test_tags_are_counted_apart_from_models_and_evicted_oldest_first() -> None:
    ledger = UsageLedger(max_tags=2)
    ledger.record("m", Usage(prompt_tokens=3, completion_tokens=4, calls=1), ok=True, tag="a")
    ledger.record("m", Usage(prompt_tokens=1, completion_tokens=1, calls=1), ok=False, tag="b")
    ledger.record("m", Usage(prompt_tokens=2, completion_tokens=2, calls=1), ok=True, tag="a")
    ledger.record("m", Usage(prompt_tokens=5, completion_tokens=5, calls=1), ok=True, seconds=0.5)
    assert ledger.tagged("a")["total_tokens"] == 11 and ledger.tagged("a")["requests"] == 2
    assert ledger.tagged("b")["failed"] == 1
    assert ledger.snapshot()["m"] == {
        "requests": 4,
        "failed": 1,
        "prompt_tokens": 11,
        "completion_tokens": 12,
        "reasoning_tokens": 0,
        "total_tokens": 23,
        "calls": 4,
        "seconds": 0.5,
    }
    ledger.record("m", Usage(prompt_tokens=1, calls=1), ok=True, tag="c")
    assert ledger.tagged("a")["requests"] == 0  # the oldest tag went first
    assert ledger.tagged("c")["requests"] == 1
