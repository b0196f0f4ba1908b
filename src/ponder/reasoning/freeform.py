"""Chat and free-form requests: System 1. One greedy answer to the request as written, with
no program and no reasoning prompt, accepted when its token confidence reaches the level's
threshold. Below it, more answers are sampled and the model picks the one that agrees most
with the rest (universal self-consistency: a vote by meaning, since free text cannot be
compared as strings).
"""

from __future__ import annotations

from ponder.reasoning.base import RunContext, StrategyResult
from ponder.reasoning.confidence import mean_confidence
from ponder.reasoning.ladder import Budget
from ponder.reasoning.paths import question_of
from ponder.reasoning.profile import ChatEffort
from ponder.reasoning.semantic import usc_select
from ponder.types import Choice, GenerationRequest

SELECT_TOKENS = 64  # what the selection call may write


async def answer_directly(
    ctx: RunContext,
    request: GenerationRequest,
    effort: ChatEffort,
    budget: Budget,
    max_tokens: int,
) -> StrategyResult:
    prompt_bound = sum(len(m.content) for m in request.messages) + 64
    _, tokens = budget.largest(0, 0, prompt_bound, 1, max_tokens)
    first = await _answers(ctx, request, 1, 0.0, tokens or max_tokens, effort.top_logprobs)
    confidence = mean_confidence(first[0].logprobs)
    ctx.progress(f"direct answer (confidence {confidence:.2f})")
    details: dict[str, object] = {"rungs": ["first"], "first_confidence": round(confidence, 4)}
    if confidence >= effort.accept_confidence or effort.samples == 0:
        details["stop"] = (
            "confident direct answer" if effort.samples else "one answer at this level"
        )
        return _result(ctx, first[0], details)
    spent = ctx.trace.usage
    prompt = spent.prompt_tokens
    width, tokens = budget.largest(
        spent.prompt_tokens, spent.completion_tokens, prompt, effort.samples, max_tokens
    )
    # The selection shows every answer again: its prompt is bounded by their characters.
    select_bound = prompt + (width + 1) * tokens * 4 + 256
    if width == 0 or not budget.fits(
        spent.prompt_tokens + prompt,
        spent.completion_tokens + width * tokens,
        select_bound,
        SELECT_TOKENS,
    ):
        details["stop"] = "budget spent"
        details["decision"] = "a chat request: answered directly; the budget left no room for more"
        return _result(ctx, first[0], details)
    more = await _answers(ctx, request, width, effort.temperature, tokens, 0)
    candidates = first + more
    chosen = await usc_select(
        ctx, question_of(request), [c.text for c in candidates], max_tokens=SELECT_TOKENS
    )
    details.update(
        rungs=["first", "samples", "select"],
        stop="selected by meaning",
        chosen=chosen,
        decision=f"a chat request: the direct answer was unsure ({confidence:.2f}), so "
        f"{width} more were sampled and answer {chosen + 1} of {len(candidates)} was kept as "
        "the most consistent",
    )
    return _result(ctx, candidates[chosen], details)


async def _answers(
    ctx: RunContext,
    request: GenerationRequest,
    n: int,
    temperature: float,
    max_tokens: int,
    top_logprobs: int,
) -> list[Choice]:
    sub = request.replace(
        n=n,
        sampling=request.sampling.replace(
            temperature=temperature,
            max_tokens=max_tokens,
            logprobs=top_logprobs > 0,
            top_logprobs=top_logprobs,
        ),
    )
    label = "direct answer" if n == 1 and temperature == 0.0 else f"{n} more answers"
    completion = await ctx.backend.generate(sub, label=label)
    return list(completion.choices)


def _result(ctx: RunContext, choice: Choice, details: dict[str, object]) -> StrategyResult:
    return StrategyResult(
        text=choice.text,
        answer=None,
        reasoning="",
        usage=ctx.trace.usage,
        trace=ctx.trace,
        details=details,
        shown_tokens=choice.completion_tokens,
    )
