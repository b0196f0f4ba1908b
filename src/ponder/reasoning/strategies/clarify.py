"""Clarifying questions (Kuhn et al., CLAM; Mu et al., ClarifyGPT): when sampled answers split
into clusters that the question does not decide between, ask instead of guessing.

``k`` answers are sampled; if no answer holds ``agreement`` of them and at least two distinct
answers each have ``min_cluster`` supporters, the request is ambiguous and the model is asked
to write one question that would tell the readings apart. Otherwise the majority answer is
returned, as self-consistency would.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from ponder.reasoning.base import RunContext, Strategy, StrategyParams, StrategyResult
from ponder.reasoning.outcome import result_from_vote
from ponder.reasoning.paths import question_of, sample_paths
from ponder.reasoning.voting import counts, majority_vote
from ponder.types import GenerationRequest, Message

ASK = (
    "The request below can be read in more than one way: different careful readers arrived at "
    "these different answers:\n{answers}\n\nWrite one short clarifying question to the user that "
    "would decide which reading they mean. Reply with the question only.\n\nRequest:\n{question}"
)


class ClarifyParams(StrategyParams):
    k: int = Field(default=6, ge=2, le=32)
    agreement: float = Field(default=0.6, gt=0.0, le=1.0)
    min_cluster: int = Field(default=2, ge=1, le=16)


def is_ambiguous(answers: list[str | None], agreement: float, min_cluster: int) -> bool:
    tally = counts(answers)
    if not tally:
        return False
    top = max(tally.values())
    substantial = [a for a, c in tally.items() if c >= min_cluster]
    return top / len(answers) < agreement and len(substantial) >= 2


class Clarify(Strategy):
    name: ClassVar[str] = "clarify"
    Params: ClassVar[type[StrategyParams]] = ClarifyParams
    example: ClassVar[Mapping[str, Any]] = {"k": 3}

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: ClarifyParams
    ) -> StrategyResult:
        paths = await sample_paths(ctx, request, params, n=params.k, temperature=0.8)
        answers = [p.answer for p in paths]
        vote = majority_vote(answers)
        if not is_ambiguous(answers, params.agreement, params.min_cluster):
            return result_from_vote(ctx, paths, vote, clarify=False)
        clusters = sorted(counts(answers).items(), key=lambda kv: -kv[1])
        listing = "\n".join(f"- {answer} ({count} of {len(answers)})" for answer, count in clusters)
        ctx.trace.note("ambiguous", clusters=dict(clusters))
        ctx.progress(
            f"answers split: {', '.join(a for a, _ in clusters)}; asking for clarification"
        )
        prompt = ASK.format(answers=listing, question=question_of(request))
        asked = await ctx.backend.generate(
            request.replace(
                messages=(Message("user", prompt),),
                n=1,
                sampling=request.sampling.replace(
                    temperature=0.0, max_tokens=96, logprobs=False, top_logprobs=0, stop=()
                ),
            ),
            label="clarifying question",
        )
        question = asked.text.strip()
        return StrategyResult(
            text=question,
            answer=None,
            reasoning=listing,
            usage=ctx.trace.usage,
            trace=ctx.trace,
            details={"clarify": True, "clusters": dict(clusters)},
            shown_tokens=asked.choices[0].completion_tokens,
        )
