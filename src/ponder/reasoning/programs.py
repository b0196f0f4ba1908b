"""Programs the model writes and the sandbox runs: the building block of ``program-aided``
and of ``auto``'s program passes, with a typed result for each program.

The sandbox is asked first: where it cannot run, :func:`write_and_run` raises
:class:`~ponder.errors.SandboxUnavailableError` before any token is spent.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from ponder.errors import SandboxUnavailableError
from ponder.reasoning.answers import extract_answer
from ponder.reasoning.base import AnswerFormat, RunContext
from ponder.reasoning.confidence import mean_confidence
from ponder.reasoning.paths import drawn, question_of
from ponder.reasoning.prompts import PAL_SYSTEM
from ponder.sandbox import SandboxLimits
from ponder.types import GenerationRequest, Message

_CODE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)


def extract_code(text: str) -> str | None:
    """The longest fenced code block of a reply."""
    blocks = _CODE.findall(text)
    if blocks:
        return str(max(blocks, key=len))
    return None


def with_answer(text: str, answer: str | None) -> str:
    """A program reply as shown: the reply, then the answer its program printed."""
    return text if answer is None else f"{text.strip()}\n\nThe answer is: {answer}"


@dataclass(frozen=True, slots=True)
class ProgramRun:
    text: str  # the model's reply, program included
    answer: str | None  # extracted from what the program printed; None if it failed
    output: str  # what it printed, or why it gave nothing ("timed out", the error line)
    confidence: float  # mean token confidence of the reply (0 without logprobs)
    completion_tokens: int
    finish_reason: str


async def write_and_run(
    ctx: RunContext,
    request: GenerationRequest,
    *,
    n: int,
    temperature: float,
    max_tokens: int,
    answer_format: AnswerFormat,
    timeout_seconds: float = 5.0,
    top_logprobs: int = 0,
    refuser: str = "this strategy",
) -> list[ProgramRun]:
    """Ask for ``n`` programs in one call and run each in the sandbox, concurrently."""
    status = await ctx.services.sandbox.status()
    if not status.available:
        raise SandboxUnavailableError(
            f"{refuser} runs model-written programs, and {status.detail}",
            fix=status.fix,
            param="ponder.strategy",
        )
    sub = drawn(
        request.replace(messages=(Message("system", PAL_SYSTEM), *request.messages)),
        n=n,
        temperature=temperature,
        max_tokens=max_tokens,
        top_logprobs=top_logprobs,
    )
    completion, call = await ctx.backend.generate_recorded(sub, label="programs")
    limits = SandboxLimits(wall_seconds=timeout_seconds, cpu_seconds=max(1, int(timeout_seconds)))
    question = question_of(request)

    async def execute(text: str) -> tuple[str | None, str]:
        code = extract_code(text)
        if code is None:
            return None, "no code block"
        result = await ctx.services.sandbox.run(code, limits)
        if not result.ok:
            failure = "timed out" if result.timed_out else None
            return None, failure or (result.stderr.strip().splitlines()[-1:] or ["failed"])[0]
        output = result.stdout.strip()
        return extract_answer(output, answer_format, question), output

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(execute(c.text)) for c in completion.choices]
    executed = [t.result() for t in tasks]
    call.annotations.update(answers=[a for a, _ in executed], outputs=[o for _, o in executed])
    for i, (answer, output) in enumerate(executed):
        ctx.progress(f"program {i + 1}: {answer if answer is not None else output}")
    return [
        ProgramRun(
            text=choice.text,
            answer=answer,
            output=output,
            confidence=mean_confidence(choice.logprobs),
            completion_tokens=choice.completion_tokens,
            finish_reason=choice.finish_reason,
        )
        for choice, (answer, output) in zip(completion.choices, executed, strict=True)
    ]
