"""Best-of-N (Lightman et al.; search-and-learn): N candidates, a verifier scores each, the
best is kept.

Verifiers:

* ``vote``: a candidate's score is the share of candidates that reached the same answer
  (weighted self-consistency, no extra calls);
* ``judge``: the model grades each candidate against a rubric on a 0-10 scale, in one
  batched call per candidate;
* ``checker``: a Python callable ``(question, answer, text) -> float`` given through the
  library (``BestOfN(checker=...)``); it never runs model-written code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field

from ponder.errors import InvalidRequestError
from ponder.reasoning.base import RunContext, Strategy, StrategyParams, StrategyResult, gather
from ponder.reasoning.paths import Path, question_of, sample_paths
from ponder.reasoning.voting import counts
from ponder.types import GenerationRequest, Message, SamplingParams

Checker = Callable[[str, str | None, str], float]

DEFAULT_RUBRIC = (
    "Check every step of the solution against the question: are the numbers taken from the "
    "question correctly, is every calculation right, and does the final answer answer what "
    "was asked?"
)
_SCORE = re.compile(r"(?:score|grade)\s*[:=]?\s*(\d+(?:\.\d+)?)", re.IGNORECASE)


class BestOfNParams(StrategyParams):
    n: int = Field(default=8, ge=1, le=64)
    verifier: Literal["vote", "judge", "checker"] = "vote"
    rubric: str = DEFAULT_RUBRIC
    judge_max_tokens: int = Field(default=256, ge=16, le=4096)


def parse_score(text: str) -> float | None:
    found = _SCORE.findall(text)
    if not found:
        return None
    return min(float(found[-1]), 10.0) / 10.0


class BestOfN(Strategy):
    name: ClassVar[str] = "best-of-n"
    Params: ClassVar[type[StrategyParams]] = BestOfNParams
    example: ClassVar[Mapping[str, Any]] = {"n": 2, "verifier": "judge", "judge_max_tokens": 16}

    def __init__(self, checker: Checker | None = None) -> None:
        self.checker = checker

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: BestOfNParams
    ) -> StrategyResult:
        paths = await sample_paths(ctx, request, params, n=params.n, temperature=0.7)
        question = question_of(request)
        if params.verifier == "vote":
            tally = counts([p.answer for p in paths])
            scores = [
                tally.get(p.answer, 0) / len(paths) if p.answer is not None else 0.0 for p in paths
            ]
        elif params.verifier == "checker":
            if self.checker is None:
                raise InvalidRequestError(
                    "verifier 'checker' needs a Python callable given through the library"
                )
            scores = [float(self.checker(question, p.answer, p.text)) for p in paths]
        else:
            scores = await self._judge(ctx, question, paths, params)
        best = max(range(len(paths)), key=lambda i: (scores[i], -i))
        chosen = paths[best]
        ctx.trace.note(
            "scores", verifier=params.verifier, scores=[round(s, 4) for s in scores], chosen=best
        )
        ctx.progress(
            f"{params.verifier} scores: {', '.join(f'{s:.2f}' for s in scores)}; keeping path {best + 1}"
        )
        return StrategyResult(
            text=chosen.text,
            answer=chosen.answer,
            reasoning=chosen.text,
            usage=ctx.trace.usage,
            trace=ctx.trace,
            details={"scores": scores, "chosen": best, "verifier": params.verifier},
            shown_tokens=chosen.completion_tokens,
        )

    async def _judge(
        self, ctx: RunContext, question: str, paths: list[Path], params: BestOfNParams
    ) -> list[float]:
        async def grade(path: Path) -> float:
            prompt = (
                f"Question:\n{question}\n\nProposed solution:\n{path.text}\n\n{params.rubric}\n"
                "Explain briefly, then end with a line 'Score: X' where X is 0 (wrong) to 10 (certainly right)."
            )
            judged = await ctx.backend.generate(
                GenerationRequest(
                    messages=(Message("user", prompt),),
                    sampling=SamplingParams(temperature=0.0, max_tokens=params.judge_max_tokens),
                ),
                label=f"judge path {path.index + 1}",
            )
            score = parse_score(judged.text)
            return 0.0 if score is None else score

        return await gather(*(grade(p) for p in paths))
