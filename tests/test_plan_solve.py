"""Plan-and-solve: plan, answer sub-questions in order, compose."""

from __future__ import annotations

from ponder.backends.scripted import ScriptedBackend
from ponder.reasoning.strategies.plan_solve import parse_plan
from ponder.types import GenerationRequest
from tests.strategy_helpers import run, solution


def test_parse_plan() -> None:
    assert parse_plan("1. How many at first?\n2) How many bought?\n- Sum them", 5) == [
        "How many at first?",
        "How many bought?",
        "Sum them",
    ]
    assert parse_plan("1. a\n2. b\n3. c", 2) == ["a", "b"]


async def test_sub_answers_feed_the_next_step() -> None:
    def script(request: GenerationRequest, index: int) -> str:
        last = request.messages[-1].content
        if last.startswith("Break the problem"):
            return "1. How many apples at first?\n2. How many after buying?"
        if last.startswith("Sub-question 1"):
            return "He has 3."
        if last.startswith("Sub-question 2"):
            assert any(m.content == "He has 3." for m in request.messages)
            return "3 + 4 = 7."
        return solution(7)

    backend = ScriptedBackend(script)
    result = await run("plan-solve", backend)
    assert result.answer == "7"
    assert result.details["steps"] == ["How many apples at first?", "How many after buying?"]
    assert result.usage.calls == 4
