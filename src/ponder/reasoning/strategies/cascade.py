"""Cascade (FrugalGPT, Chen et al. 2023): the cheap model first, a stronger one only when
the cheap one is unsure.

The request's own model answers once, greedily, with logprobs. Its confidence is the
geometric mean of its tokens' probabilities; at or above ``min_confidence``, with an answer
that could be extracted, the answer stands. Otherwise the next of ``models`` (stronger, and
dearer, in the order given) is asked, and so on; the last one's answer stands whatever its
confidence. A backend without logprobs counts as unsure.

Every model is a name the gateway routes and checks like any request: a stronger model that
policy denies is left out (the trace notes it), and each call is priced at the deployment
that served it, so the ledger shows what escalating cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from ponder.reasoning.base import (
    ModelUse,
    RunContext,
    Services,
    Strategy,
    StrategyParams,
    StrategyResult,
)
from ponder.reasoning.paths import Path, path_request, path_tokens, question_of, to_path
from ponder.reasoning.prompts import COT_SYSTEM
from ponder.reasoning.trace import TracingBackend
from ponder.types import GenerationRequest, TokenLogprob


class CascadeParams(StrategyParams):
    # The stronger models, tried in this order after the request's own.
    models: list[str] = Field(default_factory=list, max_length=4)
    # Geometric-mean token probability at or above which an answer stands.
    min_confidence: float = Field(default=0.85, gt=0.0, le=1.0)


def confidence(logprobs: tuple[TokenLogprob, ...] | None) -> float | None:
    """The geometric mean of the sampled tokens' probabilities; None without logprobs."""
    if not logprobs:
        return None
    return math.exp(sum(e.logprob for e in logprobs) / len(logprobs))


class Cascade(Strategy):
    name: ClassVar[str] = "cascade"
    Params: ClassVar[type[StrategyParams]] = CascadeParams
    example: ClassVar[Mapping[str, Any]] = {"min_confidence": 0.5}

    def models(self, params: CascadeParams, services: Services) -> tuple[ModelUse, ...]:
        return tuple(ModelUse(name, "escalation", required=False) for name in params.models)

    def worst_case(
        self, params: CascadeParams, request: GenerationRequest, services: Services
    ) -> int:
        one = request.prompt_token_bound(COT_SYSTEM) + path_tokens(params, request)
        return one * (1 + len(params.models))

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: CascadeParams
    ) -> StrategyResult:
        question = question_of(request)
        rungs: list[tuple[str | None, TracingBackend]] = [(None, ctx.backend)]
        for stronger in params.models:
            if stronger in ctx.backends:
                rungs.append((stronger, ctx.backends[stronger]))
            else:
                ctx.trace.note("escalation skipped", model=stronger, reason="not allowed")
        path: Path | None = None
        step = 0
        for step, (name, backend) in enumerate(rungs):
            asked = path_request(request, params, n=1, temperature=0.0, top_logprobs=1)
            if not backend.capabilities.logprobs:
                asked = asked.with_sampling(logprobs=False, top_logprobs=0)
            label = "first pass" if name is None else f"escalate to {name}"
            completion, call = await backend.generate_recorded(asked, label=label)
            path = to_path(completion.choices[0], params, question)
            sure = confidence(path.logprobs)
            call.annotations["answers"] = [path.answer]
            call.annotations["confidence"] = sure
            ctx.progress(f"{label}: {path.answer} (confidence {_shown(sure)})")
            last = step == len(rungs) - 1
            if last or (
                path.answer is not None and sure is not None and sure >= params.min_confidence
            ):
                break
        assert path is not None
        return StrategyResult(
            text=path.text,
            answer=path.answer,
            reasoning=path.text,
            usage=ctx.trace.usage,
            trace=ctx.trace,
            details={"answered_by": rungs[step][0] or "request model", "rungs": step + 1},
            shown_tokens=path.completion_tokens,
        )


def _shown(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}"
