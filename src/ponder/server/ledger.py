"""Per-model usage totals of a running server, failed requests included."""

from __future__ import annotations

from dataclasses import dataclass, field

from ponder.types import Usage


@dataclass(slots=True)
class _Totals:
    requests: int = 0
    failed: int = 0
    usage: Usage = field(default_factory=Usage)
    seconds: float = 0.0


class UsageLedger:
    def __init__(self) -> None:
        self._models: dict[str, _Totals] = {}

    def record(self, model: str, usage: Usage, *, ok: bool, seconds: float = 0.0) -> None:
        totals = self._models.setdefault(model, _Totals())
        totals.requests += 1
        totals.failed += 0 if ok else 1
        totals.usage = totals.usage + usage
        totals.seconds += seconds

    def totals(self, model: str) -> Usage:
        entry = self._models.get(model)
        return entry.usage if entry else Usage()

    def snapshot(self) -> dict[str, object]:
        return {
            model: {
                "requests": t.requests,
                "failed": t.failed,
                "prompt_tokens": t.usage.prompt_tokens,
                "completion_tokens": t.usage.completion_tokens,
                "reasoning_tokens": t.usage.reasoning_tokens,
                "total_tokens": t.usage.total_tokens,
            }
            for model, t in self._models.items()
        }
