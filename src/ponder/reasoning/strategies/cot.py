"""Chain of thought (Wei et al. 2022): reason step by step, then state the answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ponder.reasoning.base import RunContext, Services, Strategy, StrategyParams, StrategyResult
from ponder.reasoning.paths import path_tokens, sample_paths
from ponder.reasoning.prompts import COT_SYSTEM
from ponder.types import GenerationRequest


class CotParams(StrategyParams):
    pass


class ChainOfThought(Strategy):
    name: ClassVar[str] = "cot"
    Params: ClassVar[type[StrategyParams]] = CotParams
    example: ClassVar[Mapping[str, Any]] = {}

    def worst_case(self, params: CotParams, request: GenerationRequest, services: Services) -> int:
        return request.prompt_token_bound(COT_SYSTEM) + path_tokens(params, request)

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: CotParams
    ) -> StrategyResult:
        (path,) = await sample_paths(ctx, request, params, n=1, temperature=0.0, label="cot")
        return StrategyResult(
            text=path.text,
            answer=path.answer,
            reasoning=path.text,
            usage=ctx.trace.usage,
            trace=ctx.trace,
            details={"finish_reason": path.finish_reason},
            shown_tokens=path.completion_tokens,
        )
