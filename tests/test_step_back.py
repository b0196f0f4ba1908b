"""Step-back prompting: the principle is asked for first and handed to the answer."""

from __future__ import annotations

from ponder.backends.scripted import ScriptedBackend
from ponder.types import GenerationRequest
from tests.strategy_helpers import ask, run, solution

PRINCIPLE = "Total equals the sum of the parts."


def script(request: GenerationRequest, index: int) -> str:
    if request.messages[0].content.startswith("Before answering, take a step back"):
        return PRINCIPLE
    return solution(7)


async def test_the_principle_comes_first_and_grounds_the_answer() -> None:
    backend = ScriptedBackend(script)
    result = await run("step-back", backend)
    assert result.answer == "7"
    assert result.details["principle"] == PRINCIPLE
    abstraction, answer = backend.calls
    assert abstraction.sampling.temperature == 0.0 and abstraction.sampling.max_tokens == 128
    assert PRINCIPLE in answer.messages[-1].content
    assert answer.messages[-1].content.startswith(ask().messages[-1].content)
    # Exact usage: both calls, and only the answer is shown.
    assert result.usage.calls == 2
    assert result.hidden_usage.reasoning_tokens == len(PRINCIPLE.split())
