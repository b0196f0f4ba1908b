"""Adaptive-Consistency (Aggarwal et al. 2023) and Early-Stopping Self-Consistency (Li et al.
2024): sample in small windows and stop as soon as the majority is stable.

Stopping rules:

* ``beta``: with ``a`` votes for the leader and ``b`` for the runner-up, stop when
  P(p_leader > p_runner_up) under Beta(a+1, b+1) exceeds ``threshold``.
* ``dirichlet``: the same question over all answers, under Dirichlet(counts + 1), estimated
  with a fixed-seed Monte Carlo.
* ``esc``: stop when every answer in the latest window is the same (window rule of ESC).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from ponder.reasoning.base import RunContext, StrategyParams, StrategyResult
from ponder.reasoning.paths import Path, sample_paths
from ponder.reasoning.self_consistency import result_from_vote
from ponder.reasoning.voting import counts, majority_vote
from ponder.types import GenerationRequest


class AdaptiveConsistencyParams(StrategyParams):
    rule: Literal["beta", "dirichlet", "esc"] = "beta"
    window: int = Field(default=4, ge=1, le=32)
    max_n: int = Field(default=16, ge=1, le=64)
    threshold: float = Field(default=0.95, gt=0.5, lt=1.0)

    @model_validator(mode="after")
    def _window_fits(self) -> AdaptiveConsistencyParams:
        if self.window > self.max_n:
            raise ValueError("window must not exceed max_n")
        return self


def beta_stop_probability(leader: int, runner_up: int) -> float:
    """P(p1 > p2) for (p1, p2) ~ Beta(leader+1, runner_up+1) on the two-answer simplex.

    For integer parameters, I_x(a, b) = P(Binomial(a+b-1, x) >= a); at x = 1/2 this gives
    P(p1 <= 1/2) exactly, with no numerical integration.
    """
    a, b = leader + 1, runner_up + 1
    n = a + b - 1
    below: float = sum(math.comb(n, k) for k in range(a, n + 1)) / 2**n
    return 1.0 - below


def dirichlet_stop_probability(tally: Sequence[int], samples: int = 4000, seed: int = 0) -> float:
    """P(the current leader has the largest probability) under Dirichlet(tally + 1)."""
    if len(tally) < 2:
        tally = [*tally, 0]
    alpha = np.asarray(tally, dtype=np.float64) + 1.0
    draws = np.random.default_rng(seed).dirichlet(alpha, size=samples)
    leader = int(np.argmax(alpha))
    return float(np.mean(np.argmax(draws, axis=1) == leader))


def should_stop(
    rule: str, answers: Sequence[str | None], window: Sequence[str | None], threshold: float
) -> tuple[bool, float]:
    """Whether to stop, and the confidence the rule computed."""
    tally = sorted(counts(answers).values(), reverse=True)
    if not tally:
        return False, 0.0
    if rule == "esc":
        same = len(window) > 0 and window[0] is not None and all(a == window[0] for a in window)
        return same, 1.0 if same else 0.0
    if rule == "dirichlet":
        confidence = dirichlet_stop_probability(tally)
    else:
        confidence = beta_stop_probability(tally[0], tally[1] if len(tally) > 1 else 0)
    return confidence >= threshold, confidence


class AdaptiveConsistency:
    name: ClassVar[str] = "adaptive-consistency"
    Params: ClassVar[type[StrategyParams]] = AdaptiveConsistencyParams

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: AdaptiveConsistencyParams
    ) -> StrategyResult:
        paths: list[Path] = []
        confidence = 0.0
        stopped_early = False
        while len(paths) < params.max_n:
            size = min(params.window, params.max_n - len(paths))
            window = await sample_paths(
                ctx,
                request,
                params,
                n=size,
                temperature=0.7,
                offset=len(paths),
                label=f"window {len(paths) // params.window + 1}",
            )
            paths.extend(window)
            stop, confidence = should_stop(
                params.rule, [p.answer for p in paths], [p.answer for p in window], params.threshold
            )
            ctx.trace.note(
                "stop-test",
                rule=params.rule,
                paths=len(paths),
                confidence=round(confidence, 4),
                stop=stop,
            )
            ctx.progress(f"after {len(paths)} paths: {params.rule} confidence {confidence:.3f}")
            if stop:
                stopped_early = len(paths) < params.max_n
                break
        vote = majority_vote([p.answer for p in paths])
        return result_from_vote(
            ctx, paths, vote, stop_confidence=round(confidence, 4), stopped_early=stopped_early
        )
