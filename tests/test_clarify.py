"""Clarify: ask when answers split, answer when they agree."""

from __future__ import annotations

from ponder.backends.scripted import ScriptedBackend
from ponder.reasoning.strategies.clarify import is_ambiguous
from ponder.types import GenerationRequest
from tests.strategy_helpers import ask, run, solution

AMBIGUOUS = "How long does it take to get from the station to the airport?"


def test_ambiguity_rule() -> None:
    assert is_ambiguous(["a", "a", "b", "b", "c"], agreement=0.6, min_cluster=2)
    assert not is_ambiguous(["a", "a", "a", "a", "b"], agreement=0.6, min_cluster=2)
    assert not is_ambiguous(["a", "b", "c", "d"], agreement=0.6, min_cluster=2)


async def test_split_answers_give_a_clarifying_question() -> None:
    replies = iter([solution("20 minutes by train"), solution("1 hour walking")] * 3)

    def script(request: GenerationRequest, index: int) -> str:
        if request.messages[-1].content.startswith("The request below"):
            return "Are you travelling by train or on foot?"
        return next(replies)

    backend = ScriptedBackend(script)
    result = await run("clarify", backend, ask(AMBIGUOUS), k=6, answer_format="text")
    assert result.details["clarify"] is True
    assert result.text == "Are you travelling by train or on foot?"
    assert result.answer is None


async def test_agreement_gives_the_answer() -> None:
    backend = ScriptedBackend.cycle([solution(7)])
    result = await run("clarify", backend, k=4)
    assert result.details.get("clarify") is False
    assert result.answer == "7"
