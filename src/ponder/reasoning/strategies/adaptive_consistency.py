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

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from ponder.reasoning.base import RunContext, Strategy, StrategyParams, StrategyResult
from ponder.reasoning.outcome import result_from_vote
from ponder.reasoning.paths import Path, sample_paths
from ponder.reasoning.stopping import should_stop
from ponder.reasoning.voting import majority_vote
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


class AdaptiveConsistency(Strategy):
    name: ClassVar[str] = "adaptive-consistency"
    Params: ClassVar[type[StrategyParams]] = AdaptiveConsistencyParams
    example: ClassVar[Mapping[str, Any]] = {"window": 2, "max_n": 4}

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
