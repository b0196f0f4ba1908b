"""Program-aided reasoning (PAL, Gao et al. 2022): the model writes Python that computes the
answer; each program runs in the OS sandbox (``ponder.sandbox``), and the executed results
are voted on. Where the sandbox cannot run, the strategy refuses before any token is spent."""

from __future__ import annotations

import asyncio
import re
from typing import ClassVar

from pydantic import Field

from ponder.errors import SandboxUnavailableError
from ponder.reasoning.answers import extract_answer
from ponder.reasoning.base import RunContext, StrategyParams, StrategyResult
from ponder.reasoning.confidence_vote import mean_confidence
from ponder.reasoning.paths import question_of
from ponder.reasoning.voting import majority_vote
from ponder.sandbox import SandboxLimits
from ponder.types import GenerationRequest, Message

PAL_SYSTEM = (
    "Solve the problem by writing a Python program. Put the whole program in one ```python "
    "code block. Compute the result step by step with clearly named variables, and end the "
    "program with print(answer), printing only the final answer."
)
_CODE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)


class ProgramAidedParams(StrategyParams):
    n: int = Field(default=4, ge=1, le=64)
    timeout_seconds: float = Field(default=5.0, gt=0.0, le=60.0)
    # >0: ask for token logprobs, so that callers (auto's program first pass) can read each
    # program's token confidence in details["confidences"].
    top_logprobs: int = Field(default=0, ge=0, le=20)


def extract_code(text: str) -> str | None:
    blocks = _CODE.findall(text)
    if blocks:
        return str(max(blocks, key=len))
    return None


class ProgramAided:
    name: ClassVar[str] = "program-aided"
    Params: ClassVar[type[StrategyParams]] = ProgramAidedParams

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: ProgramAidedParams
    ) -> StrategyResult:
        status = await ctx.services.sandbox.status()
        if not status.available:
            raise SandboxUnavailableError(
                f"{self.name} runs model-written programs, and {status.detail}",
                fix=status.fix,
                param="ponder.strategy",
            )
        question = question_of(request)
        sampling = request.sampling.replace(
            temperature=params.temperature
            if params.temperature is not None
            else (0.0 if params.n == 1 else 0.7),
            max_tokens=params.max_tokens or request.sampling.max_tokens or 512,
            logprobs=params.top_logprobs > 0,
            top_logprobs=params.top_logprobs,
        )
        sub = request.replace(
            messages=(Message("system", PAL_SYSTEM), *request.messages),
            n=params.n,
            sampling=sampling,
        )
        completion = await ctx.backend.generate(sub, label="programs")
        limits = SandboxLimits(
            wall_seconds=params.timeout_seconds, cpu_seconds=max(1, int(params.timeout_seconds))
        )
        programs = [extract_code(c.text) for c in completion.choices]

        async def execute(code: str | None) -> tuple[str | None, str]:
            if code is None:
                return None, "no code block"
            result = await ctx.services.sandbox.run(code, limits)
            if not result.ok:
                return None, (
                    "timed out"
                    if result.timed_out
                    else result.stderr.strip().splitlines()[-1:] or ["failed"]
                )[0]
            output = result.stdout.strip()
            return extract_answer(output, params.answer_format, question), output

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(execute(code)) for code in programs]
        executed = [t.result() for t in tasks]
        answers = [a for a, _ in executed]
        ctx.trace.calls[-1].annotations.update(answers=answers, outputs=[o for _, o in executed])
        for i, (answer, output) in enumerate(executed):
            ctx.progress(f"program {i + 1}: {answer if answer is not None else output}")
        vote = majority_vote(answers)
        ctx.trace.note("vote", tally=vote.tally, winner=vote.winner, tied=vote.tied)
        chosen = next((i for i, a in enumerate(answers) if a == vote.winner), 0)
        choice = completion.choices[chosen]
        text = (
            choice.text
            if vote.winner is None
            else f"{choice.text.strip()}\n\nThe answer is: {vote.winner}"
        )
        return StrategyResult(
            text=text,
            answer=vote.winner,
            reasoning=choice.text,
            usage=ctx.trace.usage,
            trace=ctx.trace,
            details={
                "votes": vote.tally,
                "executed": sum(a is not None for a in answers),
                "answers": answers,
                "programs": len(programs),
                "confidences": [mean_confidence(c.logprobs) for c in completion.choices],
                "finish_reasons": [c.finish_reason for c in completion.choices],
            },
            shown_tokens=choice.completion_tokens,
        )
