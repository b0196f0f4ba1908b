"""Plan-and-solve (Wang et al. 2023) with least-to-most decomposition (Zhou et al. 2023):
split the problem into sub-questions, answer them in order (each answer feeds the next),
then compose the final answer."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from ponder.reasoning.answers import extract_answer
from ponder.reasoning.base import RunContext, Strategy, StrategyParams, StrategyResult
from ponder.reasoning.paths import question_of
from ponder.reasoning.prompts import COT_SYSTEM
from ponder.types import GenerationRequest, Message

PLAN = (
    "Break the problem below into the smallest sequence of simpler sub-questions whose answers "
    "lead to the solution. Do not solve them. Write one sub-question per line, numbered 1., 2., ..."
)
_NUMBERED = re.compile(r"^\s*(?:\d+[.)]|[-*])\s+(.+)$", re.MULTILINE)


class PlanSolveParams(StrategyParams):
    max_steps: int = Field(default=5, ge=1, le=12)
    step_max_tokens: int = Field(default=256, ge=16, le=4096)


def parse_plan(text: str, limit: int) -> list[str]:
    steps = [s.strip() for s in _NUMBERED.findall(text) if s.strip()]
    return steps[:limit]


class PlanSolve(Strategy):
    name: ClassVar[str] = "plan-solve"
    Params: ClassVar[type[StrategyParams]] = PlanSolveParams
    example: ClassVar[Mapping[str, Any]] = {"max_steps": 2, "step_max_tokens": 16}

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: PlanSolveParams
    ) -> StrategyResult:
        question = question_of(request)
        greedy = request.sampling.replace(
            temperature=params.temperature if params.temperature is not None else 0.0,
            logprobs=False,
            top_logprobs=0,
        )
        plan = await ctx.backend.generate(
            request.replace(
                messages=(Message("user", f"{PLAN}\n\nProblem:\n{question}"),),
                n=1,
                sampling=greedy.replace(max_tokens=params.step_max_tokens),
            ),
            label="plan",
        )
        steps = parse_plan(plan.text, params.max_steps)
        ctx.trace.note("plan", steps=steps)
        ctx.progress("plan: " + " | ".join(steps) if steps else "plan: (none; solving directly)")
        conversation: list[Message] = [
            Message("user", f"Problem:\n{question}\n\nWe will solve it one sub-question at a time.")
        ]
        conversation.append(Message("assistant", "Understood."))
        worked: list[str] = []
        for k, step in enumerate(steps, start=1):
            conversation.append(
                Message(
                    "user",
                    f"Sub-question {k}: {step}\nAnswer it briefly, using the earlier answers.",
                )
            )
            answer = await ctx.backend.generate(
                request.replace(
                    messages=tuple(conversation),
                    n=1,
                    sampling=greedy.replace(max_tokens=params.step_max_tokens),
                ),
                label=f"step {k}",
            )
            conversation.append(Message("assistant", answer.text))
            worked.append(f"{k}. {step}\n{answer.text.strip()}")
            ctx.progress(
                f"step {k}: {answer.text.strip().splitlines()[-1] if answer.text.strip() else ''}"
            )
        conversation.append(Message("user", f"Now answer the original problem. {COT_SYSTEM}"))
        final, call = await ctx.backend.generate_recorded(
            request.replace(
                messages=tuple(conversation),
                n=1,
                sampling=greedy.replace(
                    max_tokens=params.max_tokens or request.sampling.max_tokens or 512
                ),
            ),
            label="compose",
        )
        answer_value = extract_answer(final.text, params.answer_format, question)
        call.annotations["answers"] = [answer_value]
        return StrategyResult(
            text=final.text,
            answer=answer_value,
            reasoning="\n\n".join([*worked, final.text]),
            usage=ctx.trace.usage,
            trace=ctx.trace,
            details={"steps": steps},
            shown_tokens=final.choices[0].completion_tokens,
        )
