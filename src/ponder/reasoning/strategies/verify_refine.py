"""Verify and refine, the "triple check" (Madaan et al. 2023, Self-Refine), made safe.

Solve, have the model critique the solution against the question, and revise when the
critique finds a mistake. Unchecked self-correction makes maths answers worse (Huang et al.
2024), so a revision only replaces the original answer when independent evidence supports
it: ``resolves`` fresh solutions are sampled, and the revision must agree with strictly more
of them than the original does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from ponder.reasoning.answers import extract_answer
from ponder.reasoning.base import RunContext, Strategy, StrategyParams, StrategyResult
from ponder.reasoning.paths import Path, question_of, sample_paths
from ponder.reasoning.voting import counts
from ponder.types import GenerationRequest, Message

CRITIQUE = (
    "Review the solution below against the question. Check each step: quantities taken from "
    "the question, each calculation, and whether the final answer answers what was asked. "
    "If everything is right, reply with exactly: VERDICT: CORRECT\n"
    "Otherwise describe the first mistake and end with: VERDICT: WRONG"
)
REVISE = (
    "A reviewer found a problem in your solution. Write a corrected solution step by step, "
    "and finish with a last line of the form: The answer is: <answer>"
)


class VerifyRefineParams(StrategyParams):
    rounds: int = Field(default=1, ge=1, le=3)
    resolves: int = Field(default=3, ge=1, le=16)
    critique_max_tokens: int = Field(default=384, ge=16, le=4096)


class VerifyRefine(Strategy):
    name: ClassVar[str] = "verify-refine"
    Params: ClassVar[type[StrategyParams]] = VerifyRefineParams
    example: ClassVar[Mapping[str, Any]] = {"resolves": 2, "critique_max_tokens": 24}

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: VerifyRefineParams
    ) -> StrategyResult:
        question = question_of(request)
        (current,) = await sample_paths(ctx, request, params, n=1, temperature=0.0, label="solve")
        evidence: list[str | None] | None = None
        accepted = refused = 0
        for round_ in range(1, params.rounds + 1):
            critique = await self._critique(ctx, request, current, params, round_)
            if "VERDICT: WRONG" not in critique.upper():
                ctx.progress(f"round {round_}: the critique found no mistake")
                break
            revised = await self._revise(ctx, request, current, critique, params, round_)
            if revised.answer == current.answer:
                ctx.progress(f"round {round_}: the revision kept the answer {current.answer}")
                current = revised
                continue
            if evidence is None:
                resolved = await sample_paths(
                    ctx,
                    request,
                    params,
                    n=params.resolves,
                    temperature=0.7,
                    offset=1,
                    label="re-solve",
                )
                evidence = [p.answer for p in resolved]
            tally = counts(evidence)
            support_new, support_old = (
                tally.get(revised.answer or "", 0),
                tally.get(current.answer or "", 0),
            )
            if revised.answer is not None and support_new > support_old:
                ctx.trace.note(
                    "revision",
                    accepted=True,
                    old=current.answer,
                    new=revised.answer,
                    evidence=dict(tally),
                )
                ctx.progress(
                    f"round {round_}: revision {current.answer} -> {revised.answer} accepted ({support_new} vs {support_old} re-solves)"
                )
                current = revised
                accepted += 1
            else:
                ctx.trace.note(
                    "revision",
                    accepted=False,
                    old=current.answer,
                    new=revised.answer,
                    evidence=dict(tally),
                )
                ctx.progress(
                    f"round {round_}: revision to {revised.answer} refused ({support_new} vs {support_old} re-solves)"
                )
                refused += 1
                break
        return StrategyResult(
            text=current.text,
            answer=current.answer
            if current.answer is not None
            else extract_answer(current.text, params.answer_format, question),
            reasoning=current.text,
            usage=ctx.trace.usage,
            trace=ctx.trace,
            details={
                "revisions_accepted": accepted,
                "revisions_refused": refused,
                "evidence": evidence,
            },
            shown_tokens=current.completion_tokens,
        )

    async def _critique(
        self,
        ctx: RunContext,
        request: GenerationRequest,
        path: Path,
        params: VerifyRefineParams,
        round_: int,
    ) -> str:
        prompt = f"{CRITIQUE}\n\nQuestion:\n{question_of(request)}\n\nSolution:\n{path.text}"
        sampling = request.sampling.replace(
            temperature=0.0, max_tokens=params.critique_max_tokens, logprobs=False, top_logprobs=0
        )
        result = await ctx.backend.generate(
            request.replace(messages=(Message("user", prompt),), n=1, sampling=sampling),
            label=f"critique {round_}",
        )
        return result.text

    async def _revise(
        self,
        ctx: RunContext,
        request: GenerationRequest,
        path: Path,
        critique: str,
        params: VerifyRefineParams,
        round_: int,
    ) -> Path:
        messages = (
            *request.messages,
            Message("assistant", path.text),
            Message("user", f"{REVISE}\n\nReviewer's notes:\n{critique}"),
        )
        sampling = request.sampling.replace(
            temperature=0.0, max_tokens=params.max_tokens or request.sampling.max_tokens or 768
        )
        result, call = await ctx.backend.generate_recorded(
            request.replace(messages=messages, n=1, sampling=sampling), label=f"revise {round_}"
        )
        choice = result.choices[0]
        answer = extract_answer(choice.text, params.answer_format, question_of(request))
        call.annotations["answers"] = [answer]
        return Path(path.index, choice.text, answer, choice.completion_tokens, choice.finish_reason)
