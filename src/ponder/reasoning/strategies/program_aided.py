"""Program-aided reasoning (PAL, Gao et al. 2022): the model writes Python that computes the
answer; each program runs in the OS sandbox (``ponder.sandbox``), and the executed results
are voted on. Where the sandbox cannot run, the strategy refuses before any token is spent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from ponder.reasoning.base import RunContext, Services, Strategy, StrategyParams, StrategyResult
from ponder.reasoning.programs import with_answer, write_and_run
from ponder.reasoning.prompts import PAL_SYSTEM
from ponder.reasoning.voting import majority_vote
from ponder.types import GenerationRequest


class ProgramAidedParams(StrategyParams):
    n: int = Field(default=4, ge=1, le=64)
    timeout_seconds: float = Field(default=5.0, gt=0.0, le=60.0)


class ProgramAided(Strategy):
    name: ClassVar[str] = "program-aided"
    Params: ClassVar[type[StrategyParams]] = ProgramAidedParams
    example: ClassVar[Mapping[str, Any]] = {"n": 2}

    def worst_case(
        self, params: ProgramAidedParams, request: GenerationRequest, services: Services
    ) -> int:
        max_tokens = params.max_tokens or request.sampling.max_tokens or 512
        return request.prompt_token_bound(PAL_SYSTEM) + params.n * max_tokens

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: ProgramAidedParams
    ) -> StrategyResult:
        temperature = params.temperature
        runs = await write_and_run(
            ctx,
            request,
            n=params.n,
            temperature=temperature if temperature is not None else (0.0 if params.n == 1 else 0.7),
            max_tokens=params.max_tokens or request.sampling.max_tokens or 512,
            answer_format=params.answer_format,
            timeout_seconds=params.timeout_seconds,
            refuser=self.name,
        )
        answers = [r.answer for r in runs]
        vote = majority_vote(answers)
        ctx.trace.note("vote", tally=vote.tally, winner=vote.winner, tied=vote.tied)
        chosen = runs[next((i for i, a in enumerate(answers) if a == vote.winner), 0)]
        return StrategyResult(
            text=with_answer(chosen.text, vote.winner),
            answer=vote.winner,
            reasoning=chosen.text,
            usage=ctx.trace.usage,
            trace=ctx.trace,
            details={
                "votes": vote.tally,
                "executed": sum(a is not None for a in answers),
                "answers": answers,
                "programs": len(runs),
            },
            shown_tokens=chosen.completion_tokens,
        )
