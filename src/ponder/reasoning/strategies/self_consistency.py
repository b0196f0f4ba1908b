"""Self-consistency (Wang et al. 2022): sample N reasoning paths, majority-vote the answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field

from ponder.reasoning.base import RunContext, Services, Strategy, StrategyParams, StrategyResult
from ponder.reasoning.outcome import result_from_vote
from ponder.reasoning.paths import path_tokens, question_of, sample_paths
from ponder.reasoning.prompts import COT_SYSTEM
from ponder.reasoning.semantic import usc_select
from ponder.reasoning.voting import majority_vote
from ponder.types import GenerationRequest


class SelfConsistencyParams(StrategyParams):
    n: int = Field(default=8, ge=1, le=64)
    # How to vote: "answers" compares extracted answers as strings; "usc" asks the model
    # which response agrees most with the others (for free-form answers).
    selector: Literal["answers", "usc"] = "answers"


class SelfConsistency(Strategy):
    name: ClassVar[str] = "self-consistency"
    Params: ClassVar[type[StrategyParams]] = SelfConsistencyParams
    example: ClassVar[Mapping[str, Any]] = {"n": 3}

    def worst_case(
        self, params: SelfConsistencyParams, request: GenerationRequest, services: Services
    ) -> int:
        paths = request.prompt_token_bound(COT_SYSTEM) + params.n * path_tokens(params, request)
        if params.selector == "usc":  # one more call that reads every path
            paths += request.prompt_token_bound() + params.n * path_tokens(params, request) * 2
        return paths

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: SelfConsistencyParams
    ) -> StrategyResult:
        paths = await sample_paths(ctx, request, params, n=params.n, temperature=0.7)
        if params.selector == "usc":
            chosen = await usc_select(ctx, question_of(request), [p.text for p in paths])
            ctx.progress(f"universal self-consistency selected path {chosen + 1}")
            pick = paths[chosen]
            return StrategyResult(
                text=pick.text,
                answer=pick.answer,
                reasoning=pick.text,
                usage=ctx.trace.usage,
                trace=ctx.trace,
                details={"selector": "usc", "selected": chosen, "paths": len(paths)},
                shown_tokens=pick.completion_tokens,
            )
        return result_from_vote(ctx, paths, majority_vote([p.answer for p in paths]))
