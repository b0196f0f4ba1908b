"""Chain of thought (Wei et al. 2022): reason step by step, then state the answer."""

from __future__ import annotations

from typing import ClassVar

from ponder.reasoning.base import RunContext, StrategyParams, StrategyResult
from ponder.types import GenerationRequest, Message

COT_SYSTEM = (
    "Think through the problem step by step, showing your reasoning. "
    "Finish with a last line of the form: The answer is: <answer>"
)


def with_cot_prompt(request: GenerationRequest) -> GenerationRequest:
    """Add the step-by-step instruction to the system message (or add one)."""
    messages = request.messages
    if messages and messages[0].role == "system":
        system = Message("system", messages[0].content + "\n\n" + COT_SYSTEM)
        messages = (system, *messages[1:])
    else:
        messages = (Message("system", COT_SYSTEM), *messages)
    return request.replace(messages=messages)


class CotParams(StrategyParams):
    pass


class ChainOfThought:
    name: ClassVar[str] = "cot"
    Params: ClassVar[type[StrategyParams]] = CotParams

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: CotParams
    ) -> StrategyResult:
        # Imported here: paths builds on this module's prompt.
        from ponder.reasoning.paths import sample_paths

        (path,) = await sample_paths(ctx, request, params, n=1, temperature=0.0, label="cot")
        return StrategyResult(
            text=path.text,
            answer=path.answer,
            reasoning=path.text,
            usage=ctx.trace.usage,
            trace=ctx.trace,
            details={"finish_reason": path.finish_reason},
            shown_tokens=path.completion_tokens,
        )
