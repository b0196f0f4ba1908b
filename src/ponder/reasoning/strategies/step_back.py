"""Step-back prompting (Zheng et al. 2023): first ask for the principle behind the question,
then answer with that principle in view.

Two greedy calls: an abstraction ("what concept or formula governs this?"), then the answer,
reasoned step by step from it. It helps where a model knows the principle but applies it
badly when it jumps straight to the details (physics, chemistry, multi-step word problems).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from ponder.reasoning.base import RunContext, Services, Strategy, StrategyParams, StrategyResult
from ponder.reasoning.paths import path_tokens, question_of, sample_paths
from ponder.reasoning.prompts import COT_SYSTEM
from ponder.types import GenerationRequest, Message

STEP_BACK = (
    "Before answering, take a step back. State the general concept, principle or formula "
    "that this question depends on, in at most three sentences. Do not answer the question."
)


class StepBackParams(StrategyParams):
    principle_max_tokens: int = Field(default=128, ge=16, le=1024)


class StepBack(Strategy):
    name: ClassVar[str] = "step-back"
    Params: ClassVar[type[StrategyParams]] = StepBackParams
    example: ClassVar[Mapping[str, Any]] = {"principle_max_tokens": 32}

    def worst_case(
        self, params: StepBackParams, request: GenerationRequest, services: Services
    ) -> int:
        principle = request.prompt_token_bound(STEP_BACK) + params.principle_max_tokens
        answer = request.prompt_token_bound(COT_SYSTEM) + params.principle_max_tokens * 2
        return principle + answer + path_tokens(params, request)

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: StepBackParams
    ) -> StrategyResult:
        question = question_of(request)
        abstraction = await ctx.backend.generate(
            request.replace(
                messages=(Message("system", STEP_BACK), Message("user", question)),
                n=1,
                sampling=request.sampling.replace(
                    temperature=0.0, max_tokens=params.principle_max_tokens, logprobs=False
                ),
            ),
            label="step back",
        )
        principle = abstraction.text.strip()
        ctx.progress(f"principle: {principle}")
        grounded = request.replace(
            messages=(
                *request.messages[:-1],
                Message("user", f"{question}\n\nA principle that applies here:\n{principle}"),
            )
        )
        (path,) = await sample_paths(ctx, grounded, params, n=1, temperature=0.0, label="answer")
        return StrategyResult(
            text=path.text,
            answer=path.answer,
            reasoning=f"{principle}\n\n{path.text}",
            usage=ctx.trace.usage,
            trace=ctx.trace,
            details={"principle": principle, "finish_reason": path.finish_reason},
            shown_tokens=path.completion_tokens,
        )
