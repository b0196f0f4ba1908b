"""Thinking budgets (budget forcing, Muennighoff et al. 2025, s1) for thinking models.

The model thinks inside ``<think>…</think>`` (or a reasoning field). With ``max_thinking``
the thought is cut at that many tokens and the end of thought is forced, so the model must
answer; with ``min_thinking`` an early end of thought is suppressed and "Wait" is appended,
so the model keeps checking its work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, model_validator

from ponder.errors import UnsupportedFeatureError
from ponder.reasoning.answers import extract_answer
from ponder.reasoning.base import RunContext, Strategy, StrategyParams, StrategyResult
from ponder.reasoning.paths import question_of
from ponder.types import GenerationRequest

OPEN, CLOSE = "<think>\n", "</think>"


class ThinkingBudgetParams(StrategyParams):
    max_thinking: int = Field(default=1024, ge=1, le=65536)
    min_thinking: int = Field(default=0, ge=0, le=65536)
    max_extensions: int = Field(default=2, ge=0, le=8)
    wait_word: str = "Wait"
    answer_max_tokens: int = Field(default=512, ge=1, le=16384)

    @model_validator(mode="after")
    def _ordered(self) -> ThinkingBudgetParams:
        if self.min_thinking > self.max_thinking:
            raise ValueError("min_thinking must not exceed max_thinking")
        return self


class ThinkingBudget(Strategy):
    name: ClassVar[str] = "thinking-budget"
    Params: ClassVar[type[StrategyParams]] = ThinkingBudgetParams
    example: ClassVar[Mapping[str, Any]] = {
        "max_thinking": 12,
        "min_thinking": 8,
        "answer_max_tokens": 12,
    }

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: ThinkingBudgetParams
    ) -> StrategyResult:
        if not ctx.backend.capabilities.prefill:
            raise UnsupportedFeatureError(
                "thinking-budget needs a backend that can continue a partial answer"
            )
        thought = ""
        thinking_tokens = 0
        extensions = 0
        sampling = request.sampling.replace(
            temperature=params.temperature
            if params.temperature is not None
            else request.sampling.temperature,
            stop=(CLOSE,),
            logprobs=False,
            top_logprobs=0,
        )
        while True:
            remaining = params.max_thinking - thinking_tokens
            if remaining <= 0:
                break
            out = await ctx.backend.generate(
                request.replace(
                    n=1, prefill=OPEN + thought, sampling=sampling.replace(max_tokens=remaining)
                ),
                label=f"think {extensions + 1}",
            )
            choice = out.choices[0]
            thought += choice.text
            thinking_tokens += choice.completion_tokens
            ended_early = choice.finish_reason == "stop"
            if not ended_early:
                ctx.progress(
                    f"thinking budget of {params.max_thinking} tokens reached: forcing the answer"
                )
                break
            if thinking_tokens >= params.min_thinking or extensions >= params.max_extensions:
                break
            extensions += 1
            thought = thought.rstrip() + f"\n{params.wait_word}"
            ctx.progress(
                f"thought ended after {thinking_tokens} tokens (< {params.min_thinking}): appending '{params.wait_word}'"
            )
        ctx.trace.note("thinking", tokens=thinking_tokens, extensions=extensions)
        answer_out = await ctx.backend.generate(
            request.replace(
                n=1,
                prefill=OPEN + thought.rstrip() + f"\n{CLOSE}\n\n",
                sampling=request.sampling.replace(
                    stop=request.sampling.stop, max_tokens=params.answer_max_tokens
                ),
            ),
            label="answer",
        )
        text = answer_out.text.strip()
        answer = extract_answer(text, params.answer_format, question_of(request))
        return StrategyResult(
            text=text,
            answer=answer,
            reasoning=thought.strip(),
            usage=ctx.trace.usage,
            trace=ctx.trace,
            details={"thinking_tokens": thinking_tokens, "extensions": extensions},
            shown_tokens=answer_out.choices[0].completion_tokens,
        )
