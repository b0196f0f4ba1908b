"""Step-level beam search (Snell et al. 2024; search-and-learn): extend each of K partial
solutions by one reasoning step, score the extensions with a verifier, keep the best K.

A step is the text up to the next blank line. Scorers:

* ``logprob``: the mean token log-probability of the step (no extra calls);
* ``judge``: the model's probability of "Yes" when asked whether the partial solution is
  correct so far, read from its top logprobs (a self-evaluating process reward).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import Field

from ponder.errors import UnsupportedFeatureError
from ponder.reasoning.answers import extract_answer, final_answer_text
from ponder.reasoning.base import RunContext, Strategy, StrategyParams, StrategyResult, gather
from ponder.reasoning.paths import question_of
from ponder.reasoning.prompts import with_cot_prompt
from ponder.types import Completion, GenerationRequest, Message, SamplingParams

STEP_END = "\n\n"


class BeamSearchParams(StrategyParams):
    beam_width: int = Field(default=3, ge=1, le=16)
    expand: int = Field(default=2, ge=1, le=16)
    max_steps: int = Field(default=8, ge=1, le=40)
    step_max_tokens: int = Field(default=128, ge=8, le=2048)
    scorer: Literal["logprob", "judge"] = "logprob"


@dataclass(slots=True)
class Beam:
    text: str
    scores: list[float] = field(default_factory=list)
    tokens: int = 0
    done: bool = False

    @property
    def score(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else -math.inf


class BeamSearch(Strategy):
    name: ClassVar[str] = "beam-search"
    Params: ClassVar[type[StrategyParams]] = BeamSearchParams
    example: ClassVar[Mapping[str, Any]] = {
        "beam_width": 2,
        "expand": 2,
        "max_steps": 2,
        "step_max_tokens": 12,
    }

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: BeamSearchParams
    ) -> StrategyResult:
        if not ctx.backend.capabilities.prefill:
            raise UnsupportedFeatureError(
                "beam-search needs a backend that can continue a partial answer"
            )
        question = question_of(request)
        base = with_cot_prompt(request)
        beams = [Beam("")]
        finished: list[Beam] = []
        for step in range(1, params.max_steps + 1):
            candidates: list[Beam] = []

            def extend(b: int, beam: Beam, step: int = step) -> Awaitable[Completion]:
                sampling = request.sampling.replace(
                    temperature=params.temperature if params.temperature is not None else 0.7,
                    max_tokens=params.step_max_tokens,
                    stop=(STEP_END,),
                    logprobs=True,
                    top_logprobs=0,
                    seed=None
                    if request.sampling.seed is None
                    else request.sampling.seed + step * 100 + b,
                )
                return ctx.backend.generate(
                    base.replace(prefill=beam.text, n=params.expand, sampling=sampling),
                    label=f"step {step} beam {b + 1}",
                )

            # All beams extend at once, so the engine decodes their paths in one batch.
            outs = await gather(*(extend(b, beam) for b, beam in enumerate(beams)))
            for beam, out in zip(beams, outs, strict=True):
                for choice in out.choices:
                    lp = [t.logprob for t in choice.logprobs or ()]
                    text = beam.text + choice.text
                    done = (
                        final_answer_text(choice.text) is not None
                        or not choice.text.strip()
                        or choice.finish_reason == "length"
                    )
                    score = sum(lp) / len(lp) if lp else -math.inf
                    candidates.append(
                        Beam(
                            text + ("" if done else STEP_END),
                            [*beam.scores, score],
                            beam.tokens + choice.completion_tokens,
                            done,
                        )
                    )
            if params.scorer == "judge":
                await self._judge(ctx, question, candidates, step)
            candidates.sort(key=lambda c: c.score, reverse=True)
            kept = candidates[: params.beam_width]
            finished.extend(c for c in kept if c.done)
            beams = [c for c in kept if not c.done]
            ctx.trace.note(
                "step", step=step, scores=[round(c.score, 4) for c in kept], finished=len(finished)
            )
            ctx.progress(
                f"step {step}: kept {len(kept)} of {len(candidates)} (best {kept[0].score:.3f}), {len(finished)} finished"
            )
            if not beams or len(finished) >= params.beam_width:
                break
        pool = finished or beams
        best = max(pool, key=lambda c: c.score)
        answer = extract_answer(best.text, params.answer_format, question)
        return StrategyResult(
            text=best.text.strip(),
            answer=answer,
            reasoning=best.text.strip(),
            usage=ctx.trace.usage,
            trace=ctx.trace,
            details={"finished": len(finished), "score": best.score},
            shown_tokens=best.tokens,
        )

    async def _judge(
        self, ctx: RunContext, question: str, candidates: list[Beam], step: int
    ) -> None:
        async def judge(k: int, cand: Beam) -> None:
            prompt = (
                f"Question:\n{question}\n\nPartial solution:\n{cand.text.strip()}\n\n"
                "Is every step of this partial solution correct so far? Answer Yes or No."
            )
            judged = await ctx.backend.generate(
                GenerationRequest(
                    messages=(Message("user", prompt),),
                    sampling=SamplingParams(
                        temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=10
                    ),
                ),
                label=f"judge step {step} candidate {k + 1}",
            )
            entry = (judged.choices[0].logprobs or (None,))[0]
            p_yes = (
                sum(math.exp(t.logprob) for t in entry.top if t.token.strip().lower() == "yes")
                if entry
                else 0.0
            )
            cand.scores[-1] = math.log(max(p_yes, 1e-9))

        await gather(*(judge(k, cand) for k, cand in enumerate(candidates)))
