"""Turning records into a report: accuracy with bootstrap intervals, tokens, time, calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ponder.bench.runner import Record


@dataclass(frozen=True, slots=True)
class Summary:
    system: str
    questions: int
    accuracy: float
    ci_low: float
    ci_high: float
    prompt_tokens: float
    completion_tokens: float
    total_tokens: float
    seconds: float
    calls: float
    errors: int
    usage_complete: bool


def bootstrap_ci(
    outcomes: Sequence[bool], *, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of 0/1 outcomes (fixed seed: reproducible)."""
    if not outcomes:
        return 0.0, 0.0
    values = np.asarray(outcomes, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def summarize(records: Sequence[Record], order: Sequence[str] | None = None) -> list[Summary]:
    systems = list(order) if order else list(dict.fromkeys(r.system for r in records))
    out = []
    for system in systems:
        rows = [r for r in records if r.system == system]
        if not rows:
            continue
        correct = [r.correct for r in rows]
        low, high = bootstrap_ci(correct)
        out.append(
            Summary(
                system=system,
                questions=len(rows),
                accuracy=float(np.mean(correct)),
                ci_low=low,
                ci_high=high,
                prompt_tokens=float(np.mean([r.prompt_tokens for r in rows])),
                completion_tokens=float(np.mean([r.completion_tokens for r in rows])),
                total_tokens=float(np.mean([r.total_tokens for r in rows])),
                seconds=float(np.mean([r.seconds for r in rows])),
                calls=float(np.mean([r.calls for r in rows])),
                errors=sum(r.error is not None for r in rows),
                usage_complete=all(r.usage_complete for r in rows),
            )
        )
    return out


def markdown_table(summaries: Sequence[Summary]) -> str:
    lines = [
        "| system | questions | accuracy | 95% CI | prompt tok | completion tok | total tok | s/question | calls | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in summaries:
        flag = "" if s.usage_complete else " (under-reported)"
        lines.append(
            f"| {s.system} | {s.questions} | {s.accuracy:.1%} | {s.ci_low:.1%}–{s.ci_high:.1%} | "
            f"{s.prompt_tokens:.0f} | {s.completion_tokens:.0f} | {s.total_tokens:.0f}{flag} | "
            f"{s.seconds:.1f} | {s.calls:.1f} | {s.errors} |"
        )
    return "\n".join(lines)
