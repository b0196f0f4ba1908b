"""Self-consistency and chain of thought over a scripted backend."""

from __future__ import annotations

from ponder.backends.scripted import ScriptedBackend
from ponder.reasoning.voting import majority_vote, weighted_vote
from tests.strategy_helpers import run, solution


async def test_majority_wins_and_usage_is_exact() -> None:
    backend = ScriptedBackend.cycle(
        [solution(7), solution(8), solution(7), solution("$7.00"), solution(9)]
    )
    result = await run("self-consistency", backend, n=5)
    assert result.answer == "7"
    assert result.details["votes"] == {"7": 3, "8": 1, "9": 1}
    # One batched call of 5 paths; usage is its exact usage, every token but the shown path's hidden.
    assert len(backend.calls) == 1 and backend.calls[0].n == 5
    assert result.usage.completion_tokens == 5 * 10
    assert result.hidden_usage.reasoning_tokens == 4 * 10
    assert result.text == solution(7)


async def test_tie_goes_to_the_earliest_path() -> None:
    backend = ScriptedBackend.cycle([solution(2), solution(5), solution(5), solution(2)])
    result = await run("self-consistency", backend, n=4)
    assert result.answer == "2"
    assert result.trace.notes[-1]["tied"] is True


def test_votes_ignore_failed_extractions() -> None:
    vote = majority_vote([None, "3", None])
    assert vote.winner == "3" and vote.total == 1 and vote.share == 1.0
    assert majority_vote([None, None]).winner is None


def test_weighted_vote_can_overturn_a_count_majority() -> None:
    vote = weighted_vote(["a", "a", "b"], [0.1, 0.1, 0.5])
    assert vote.winner == "b"
    assert vote.margin == 0.3


async def test_cot_is_one_greedy_path() -> None:
    backend = ScriptedBackend.cycle([solution(7)])
    result = await run("cot", backend)
    assert result.answer == "7"
    assert backend.calls[0].sampling.temperature == 0.0
    assert backend.calls[0].messages[0].role == "system"
    assert result.hidden_usage.reasoning_tokens == 0


async def test_universal_self_consistency_lets_the_model_select() -> None:
    from ponder.reasoning.semantic import parse_selection
    from ponder.types import GenerationRequest

    def script(request: GenerationRequest, index: int) -> str:
        if "most consistent response" in request.messages[-1].content:
            return "The most consistent response is Response 2"
        return ["Cats sleep a lot.", "Cats nap for most of the day.", "Dogs bark."][index]

    backend = ScriptedBackend(script)
    result = await run("self-consistency", backend, n=3, selector="usc", answer_format="text")
    assert result.text == "Cats nap for most of the day."
    assert result.details["selected"] == 1
    assert result.usage.calls == 2
    assert parse_selection("The most consistent response is Response 9", 3) is None
    assert parse_selection("I pick Response 3.", 3) == 2
