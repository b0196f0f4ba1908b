"""Best-of-N with each verifier."""

from __future__ import annotations

import pytest

from ponder.backends.scripted import ScriptedBackend
from ponder.errors import InvalidRequestError
from ponder.reasoning.base import RunContext
from ponder.reasoning.runner import StrategySpec
from ponder.reasoning.strategies.best_of_n import BestOfN, parse_score
from ponder.reasoning.trace import Trace, TracingBackend
from ponder.types import GenerationRequest
from tests.strategy_helpers import ask, run, solution


def test_parse_score() -> None:
    assert parse_score("fine.\nScore: 8") == 0.8
    assert parse_score("Score: 12") == 1.0
    assert parse_score("no score") is None


async def test_vote_verifier_keeps_an_agreeing_candidate() -> None:
    backend = ScriptedBackend.cycle([solution(1), solution(2), solution(2)])
    result = await run("best-of-n", backend, n=3, verifier="vote")
    assert result.answer == "2"
    assert len(backend.calls) == 1


async def test_judge_verifier_grades_each_candidate() -> None:
    def script(request: GenerationRequest, index: int) -> str:
        prompt = request.messages[-1].content
        if "Proposed solution" in prompt:
            return "Looks right.\nScore: 9" if "answer is: 5" in prompt else "Wrong.\nScore: 2"
        return solution(5) if index == 2 else solution(4)

    backend = ScriptedBackend(script)
    result = await run("best-of-n", backend, n=3, verifier="judge")
    assert result.answer == "5"
    assert result.details["scores"] == [0.2, 0.2, 0.9]
    assert len(backend.calls) == 4


async def test_checker_verifier_needs_a_callable() -> None:
    backend = ScriptedBackend.cycle([solution(3), solution(4)])
    with pytest.raises(InvalidRequestError):
        await run("best-of-n", backend, n=2, verifier="checker")
    spec = StrategySpec.parse({"strategy": "best-of-n", "n": 2, "verifier": "checker"})
    trace = Trace("best-of-n")
    ctx = RunContext(backend=TracingBackend(backend, trace), trace=trace)
    strategy = BestOfN(checker=lambda question, answer, text: 1.0 if answer == "4" else 0.0)
    result = await strategy.run(ctx, ask(), spec.params)  # type: ignore[arg-type]
    assert result.answer == "4"
