"""Code requests: one greedy program, checked against the request's own tests in the sandbox;
where it fails one, more candidates are sampled and the one that passes the most is kept
(test-driven best-of-n, as in CodeT and AlphaCode's filtering, with the request's tests).

A request with no tests, a level with no samples, or a server whose sandbox cannot run
programs is answered by the greedy program alone; ``details.tests`` says which.
"""

from __future__ import annotations

import asyncio

from ponder.reasoning.base import RunContext, StrategyResult
from ponder.reasoning.code_tests import Score, candidate_program, request_tests, score
from ponder.reasoning.ladder import Budget
from ponder.reasoning.outcome import result_from_choice
from ponder.reasoning.paths import question_of, replies
from ponder.reasoning.profile import CodeEffort
from ponder.types import Choice, GenerationRequest


def worst_case(request: GenerationRequest, effort: CodeEffort, max_tokens: int) -> int:
    """The most a code request can spend at this level: the greedy program and the samples."""
    prompt = request.prompt_token_bound()
    return prompt + max_tokens + (prompt + effort.samples * max_tokens if effort.samples else 0)


async def solve_code(
    ctx: RunContext,
    request: GenerationRequest,
    effort: CodeEffort,
    budget: Budget,
    max_tokens: int,
) -> StrategyResult:
    tests = request_tests(question_of(request))
    prompt = request.prompt_token_bound()
    tokens = budget.first_call(ctx.trace.usage, prompt, max_tokens)
    greedy = await replies(
        ctx, request, n=1, temperature=0.0, max_tokens=tokens, label="greedy program"
    )
    candidates: list[Choice] = list(greedy)
    details: dict[str, object] = {"rungs": ["first"], "tests": tests.count}
    sandbox = await ctx.services.sandbox.status()
    if not tests.count or not sandbox.available:
        why = "the request has no tests" if not tests.count else f"not run: {sandbox.detail}"
        details["stop"] = why
        details["decision"] = f"a code request: one greedy program ({why})"
        return result_from_choice(ctx, candidates[0], details)
    scores = [
        await score(ctx.services.sandbox, candidate_program(candidates[0].text, tests), tests)
    ]
    ctx.progress(f"greedy program: {scores[0].passed} of {scores[0].total} tests")
    stop = "passed the request's tests"
    if not scores[0].all_passed:
        stop = "no samples at this level"
        spent = ctx.trace.usage
        width, tokens = budget.largest(
            spent.prompt_tokens, spent.completion_tokens, prompt, effort.samples, max_tokens
        )
        if effort.samples and width == 0:
            stop = "budget spent"
        elif width:
            details["rungs"] = ["first", "samples"]
            drawn = await replies(
                ctx,
                request,
                n=width,
                temperature=effort.temperature,
                max_tokens=tokens,
                label=f"{width} more programs",
            )
            more = await asyncio.gather(
                *(
                    score(ctx.services.sandbox, candidate_program(c.text, tests), tests)
                    for c in drawn
                )
            )
            candidates += drawn
            scores += more
            stop = "selected by tests passed"
    best = max(range(len(candidates)), key=lambda i: (scores[i].passed, scores[i].loaded, -i))
    details.update(
        stop=stop,
        passed=[s.passed for s in scores],
        chosen=best,
        decision=f"a code request: program {best + 1} of {len(candidates)} kept, "
        f"{_summary(scores[best])} ({stop})",
    )
    ctx.trace.note("tests", passed=[s.passed for s in scores], total=tests.count, chosen=best)
    ctx.progress(f"chose program {best + 1}: {_summary(scores[best])}")
    return result_from_choice(ctx, candidates[best], details)


def _summary(result: Score) -> str:
    if not result.loaded:
        return f"did not load ({result.detail})"
    return f"passing {result.passed} of the request's {result.total} tests"
