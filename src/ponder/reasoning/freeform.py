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
from ponder.reasoning.outcome import result_from_choice
from ponder.reasoning.paths import question_of, replies
from ponder.reasoning.profile import ChatEffort
from ponder.reasoning.semantic import usc_prompt_bound, usc_select
from ponder.types import GenerationRequest

SELECT_TOKENS = 64  # what the selection call may write
SHOWN_BYTES = 2048  # of each answer, to the selection call


def worst_case(request: GenerationRequest, effort: ChatEffort, max_tokens: int) -> int:
    """The most a chat request can spend at this level: its answers and the selection."""
    prompt = request.prompt_token_bound()
    total = prompt + max_tokens
    if effort.samples:
        selection = usc_prompt_bound(question_of(request), effort.samples + 1, SHOWN_BYTES)
        total += prompt + effort.samples * max_tokens + selection + SELECT_TOKENS
    return total


async def answer_directly(
    ctx: RunContext,
    request: GenerationRequest,
    effort: ChatEffort,
    budget: Budget,
    max_tokens: int,
) -> StrategyResult:
    prompt = request.prompt_token_bound()
    tokens = budget.first_call(ctx.trace.usage, prompt, max_tokens)
    first = await replies(
        ctx,
        request,
        n=1,
        temperature=0.0,
        max_tokens=tokens,
        top_logprobs=effort.top_logprobs,
        label="direct answer",
    )
    logprobs = first[0].logprobs
    confidence = mean_confidence(logprobs)
    ctx.progress(f"direct answer (confidence {confidence:.2f})")
    details: dict[str, object] = {"rungs": ["first"], "first_confidence": round(confidence, 4)}
    if not logprobs or confidence >= effort.accept_confidence or effort.samples == 0:
        # Without logprobs there is nothing to judge the answer by: it stands.
        details["stop"] = (
            "one answer at this level"
            if effort.samples == 0
            else "no logprobs to judge by"
            if not logprobs
            else "confident direct answer"
        )
        details["decision"] = f"a chat request: answered directly (confidence {confidence:.2f})"
        return result_from_choice(ctx, first[0], details)
    usage = ctx.trace.usage
    width, tokens = budget.largest(
        usage.prompt_tokens, usage.completion_tokens, prompt, effort.samples, max_tokens
    )
    selection = usc_prompt_bound(question_of(request), width + 1, SHOWN_BYTES)
    if width == 0 or not budget.fits(
        usage.prompt_tokens + prompt + selection,
        usage.completion_tokens + width * tokens,
        0,
        SELECT_TOKENS,
    ):
        details["stop"] = "budget spent"
        details["decision"] = "a chat request: answered directly; the budget left no room for more"
        return result_from_choice(ctx, first[0], details)
    more = await replies(
        ctx,
        request,
        n=width,
        temperature=effort.temperature,
        max_tokens=tokens,
        label=f"{width} more answers",
    )
    candidates = first + more
    chosen = await usc_select(
        ctx,
        question_of(request),
        [c.text for c in candidates],
        max_tokens=SELECT_TOKENS,
        limit=SHOWN_BYTES,
    )
    details.update(
        rungs=["first", "samples", "select"],
        stop="selected by meaning",
        chosen=chosen,
        decision=f"a chat request: the direct answer was unsure ({confidence:.2f}), so "
        f"{width} more were sampled and answer {chosen + 1} of {len(candidates)} was kept as "
        "the most consistent",
    )
    return result_from_choice(ctx, candidates[chosen], details)
