"""Votes over extracted answers: plain majority, weighted, with deterministic tie-breaks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Vote:
    winner: str | None
    tally: dict[str, float]  # answer -> votes (or weight)
    total: float  # votes cast for some answer (extraction failures excluded)
    tied: bool = False

    @property
    def share(self) -> float:
        """Fraction of the cast votes that the winner holds."""
        if self.winner is None or self.total <= 0:
            return 0.0
        return self.tally[self.winner] / self.total

    @property
    def margin(self) -> float:
        ranked = sorted(self.tally.values(), reverse=True)
        if not ranked:
            return 0.0
        return ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0)


def weighted_vote(answers: Sequence[str | None], weights: Sequence[float] | None = None) -> Vote:
    """Sum weights per answer. Ties go to the answer that reached the top weight first
    (earliest path), so results do not depend on dict ordering."""
    if weights is None:
        weights = [1.0] * len(answers)
    tally: dict[str, float] = {}
    first_seen: dict[str, int] = {}
    for i, (answer, weight) in enumerate(zip(answers, weights, strict=True)):
        if answer is None:
            continue
        tally[answer] = tally.get(answer, 0.0) + weight
        first_seen.setdefault(answer, i)
    if not tally:
        return Vote(winner=None, tally={}, total=0.0)
    best = max(tally.values())
    leaders = [a for a, w in tally.items() if w == best]
    winner = min(leaders, key=lambda a: first_seen[a])
    return Vote(winner=winner, tally=tally, total=sum(tally.values()), tied=len(leaders) > 1)


def majority_vote(answers: Sequence[str | None]) -> Vote:
    return weighted_vote(answers)


def counts(answers: Sequence[str | None]) -> Counter[str]:
    return Counter(a for a in answers if a is not None)
