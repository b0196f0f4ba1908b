"""Verify-refine keeps a revision only when independent re-solves support it."""

from __future__ import annotations

from ponder.backends.scripted import ScriptedBackend
from ponder.types import GenerationRequest
from tests.strategy_helpers import run, solution


def scripted(first: int, critique: str, revised: int, resolves: list[int]) -> ScriptedBackend:
    resolve_iter = iter(resolves * 4)

    def script(request: GenerationRequest, index: int) -> str:
        prompt = request.messages[-1].content
        if prompt.startswith("Review the solution"):
            return critique
        if "A reviewer found a problem" in prompt:
            return solution(revised)
        if request.n > 1:
            return solution(next(resolve_iter))
        return solution(first)

    return ScriptedBackend(script)


async def test_correct_solution_is_kept_without_revision() -> None:
    backend = scripted(7, "All good.\nVERDICT: CORRECT", 99, [7])
    result = await run("verify-refine", backend)
    assert result.answer == "7"
    assert len(backend.calls) == 2  # solve + critique
    assert result.details["revisions_accepted"] == 0


async def test_unsupported_revision_is_refused() -> None:
    backend = scripted(7, "Step 2 is wrong.\nVERDICT: WRONG", 9, [7, 7, 9])
    result = await run("verify-refine", backend, resolves=3)
    assert result.answer == "7"
    assert result.details["revisions_refused"] == 1
    assert result.trace.notes[-1]["accepted"] is False


async def test_supported_revision_is_accepted() -> None:
    backend = scripted(7, "Step 2 is wrong.\nVERDICT: WRONG", 9, [9, 9, 7])
    result = await run("verify-refine", backend, resolves=3)
    assert result.answer == "9"
    assert result.details["revisions_accepted"] == 1
    # Every call is accounted for: solve, critique, revise, one batched re-solve.
    assert result.usage.calls == 4
