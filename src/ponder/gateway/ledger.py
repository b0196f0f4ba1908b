"""Per-model usage totals of a running server, failed requests included.

A client can also tag a request by appending ``#tag`` to the model name. Tagged usage is kept
under the tag as well, so a caller that sits behind another proxy (a benchmark counting what
optillm spends, a team charging back per job) reads exactly what its own requests cost, even
while other traffic runs concurrently. The proxy only has to pass the model name through.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace

from ponder.types import Usage


@dataclass(slots=True)
class Totals:
    """What one model (or tag) has served so far."""

    requests: int = 0
    failed: int = 0
    usage: Usage = field(default_factory=Usage)
    seconds: float = 0.0


MAX_TAGS = 100_000  # oldest tags are forgotten first, so a long-lived server stays bounded


class UsageLedger:
    def __init__(self, max_tags: int = MAX_TAGS) -> None:
        self._models: dict[str, Totals] = {}
        self._tags: OrderedDict[str, Totals] = OrderedDict()
        self._max_tags = max_tags

    def record(
        self, model: str, usage: Usage, *, ok: bool, seconds: float = 0.0, tag: str | None = None
    ) -> None:
        _add(self._models.setdefault(model, Totals()), usage, ok, seconds)
        if tag:
            if tag not in self._tags and len(self._tags) >= self._max_tags:
                self._tags.popitem(last=False)
            _add(self._tags.setdefault(tag, Totals()), usage, ok, seconds)

    def tagged(self, tag: str) -> dict[str, object]:
        return _row(self._tags.get(tag) or Totals())

    def totals(self, model: str) -> Usage:
        entry = self._models.get(model)
        return entry.usage if entry else Usage()

    def by_model(self) -> dict[str, Totals]:
        return {model: replace(t) for model, t in self._models.items()}

    def snapshot(self) -> dict[str, object]:
        return {model: _row(t) for model, t in self._models.items()}


def _add(totals: Totals, usage: Usage, ok: bool, seconds: float) -> None:
    totals.requests += 1
    totals.failed += 0 if ok else 1
    totals.usage = totals.usage + usage
    totals.seconds += seconds


def _row(t: Totals) -> dict[str, object]:
    return {
        "requests": t.requests,
        "failed": t.failed,
        "prompt_tokens": t.usage.prompt_tokens,
        "completion_tokens": t.usage.completion_tokens,
        "reasoning_tokens": t.usage.reasoning_tokens,
        "total_tokens": t.usage.total_tokens,
        "calls": t.usage.calls,
        "seconds": round(t.seconds, 3),
    }
