"""Mixture-of-agents (Wang et al. 2024): several proposers answer, an aggregator synthesises.

Proposers are named backends (other models or providers, given as ``proposers``); without
names, the request's own model proposes ``n_proposals`` diverse answers. Each extra layer
lets the proposers see the previous layer's answers before answering again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from ponder.errors import InvalidRequestError
from ponder.reasoning.answers import extract_answer
from ponder.reasoning.base import (
    ModelUse,
    RunContext,
    Services,
    Strategy,
    StrategyParams,
    StrategyResult,
    gather,
)
from ponder.reasoning.paths import question_of
from ponder.reasoning.prompts import with_cot_prompt
from ponder.reasoning.trace import TraceCall, TracingBackend
from ponder.types import Completion, GenerationRequest, Message

AGGREGATE = (
    "You have been given several responses to the user's question from different assistants. "
    "Critically evaluate them: some may be wrong. Write a single, correct, well-reasoned answer "
    "of your own, and finish with a last line of the form: The answer is: <answer>\n\nResponses:\n"
)


class MixtureOfAgentsParams(StrategyParams):
    proposers: list[str] = Field(default_factory=list)  # backend names; empty: the request's model
    aggregator: str | None = None  # backend name; None: the request's model
    n_proposals: int = Field(default=3, ge=1, le=16)
    layers: int = Field(default=1, ge=1, le=3)


def _aggregate_prompt(request: GenerationRequest, proposals: list[str]) -> GenerationRequest:
    listing = "\n\n".join(f"[{i + 1}] {text.strip()}" for i, text in enumerate(proposals))
    system = Message("system", AGGREGATE + listing)
    return request.replace(
        messages=(system, *[m for m in request.messages if m.role != "system"]), n=1
    )


class MixtureOfAgents(Strategy):
    name: ClassVar[str] = "mixture-of-agents"
    Params: ClassVar[type[StrategyParams]] = MixtureOfAgentsParams
    example: ClassVar[Mapping[str, Any]] = {"n_proposals": 2}

    def models(self, params: MixtureOfAgentsParams, services: Services) -> tuple[ModelUse, ...]:
        names = [*params.proposers, *([params.aggregator] if params.aggregator else [])]
        return tuple(ModelUse(name, "proposer") for name in dict.fromkeys(names))

    def _backend(self, ctx: RunContext, name: str | None) -> TracingBackend:
        if name is None:
            return ctx.backend
        if name not in ctx.backends:
            raise InvalidRequestError(
                f"mixture-of-agents: unknown backend {name!r}", param="ponder.proposers"
            )
        return ctx.backends[name]

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: MixtureOfAgentsParams
    ) -> StrategyResult:
        question = question_of(request)
        temperature = params.temperature if params.temperature is not None else 0.7
        max_tokens = params.max_tokens or request.sampling.max_tokens or 768
        sampling = request.sampling.replace(
            temperature=temperature, max_tokens=max_tokens, logprobs=False, top_logprobs=0
        )
        proposals: list[str] = []
        for layer in range(1, params.layers + 1):
            base = with_cot_prompt(request) if layer == 1 else _aggregate_prompt(request, proposals)
            if params.proposers:
                calls = [
                    self._backend(ctx, name).generate_recorded(
                        base.replace(n=1, sampling=sampling), label=f"layer {layer}: {name}"
                    )
                    for name in params.proposers
                ]
                results: list[tuple[Completion, TraceCall]] = await gather(*calls)
                proposals = [completion.text for completion, _ in results]
                answers = [extract_answer(p, params.answer_format, question) for p in proposals]
                for (_, call), answer in zip(results, answers, strict=True):
                    call.annotations["answers"] = [answer]
            else:
                result, call = await ctx.backend.generate_recorded(
                    base.replace(n=params.n_proposals, sampling=sampling), label=f"layer {layer}"
                )
                proposals = [c.text for c in result.choices]
                answers = [extract_answer(p, params.answer_format, question) for p in proposals]
                call.annotations["answers"] = answers
            ctx.progress(f"layer {layer} proposals: {', '.join(str(a) for a in answers)}")
        aggregator = self._backend(ctx, params.aggregator)
        final, call = await aggregator.generate_recorded(
            _aggregate_prompt(request, proposals).replace(
                sampling=sampling.replace(temperature=0.0)
            ),
            label="aggregate",
        )
        answer = extract_answer(final.text, params.answer_format, question)
        call.annotations["answers"] = [answer]
        return StrategyResult(
            text=final.text,
            answer=answer,
            reasoning=final.text,
            usage=ctx.trace.usage,
            trace=ctx.trace,
            details={"proposals": len(proposals), "layers": params.layers},
            shown_tokens=final.choices[0].completion_tokens,
        )
