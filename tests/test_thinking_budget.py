"""Budget forcing: cap thinking, or extend it with "Wait"."""

from __future__ import annotations

from ponder.backends.scripted import ScriptedBackend
from ponder.types import GenerationRequest
from tests.strategy_helpers import run


def script(request: GenerationRequest, index: int) -> str:
    if "</think>" in request.prefill:
        return "The answer is: 7"
    if request.prefill.rstrip().endswith("Wait"):
        return "let me double check: 3 plus 4 is 7."
    return "three plus four is seven so"


async def test_thinking_is_capped_and_the_answer_forced() -> None:
    backend = ScriptedBackend(script)
    result = await run("thinking-budget", backend, max_thinking=3)
    assert result.answer == "7"
    assert result.details["thinking_tokens"] == 3
    assert backend.calls[0].sampling.max_tokens == 3
    assert backend.calls[-1].prefill.endswith("</think>\n\n")
    assert result.hidden_usage.reasoning_tokens == 3


async def test_early_end_of_thought_is_extended_with_wait() -> None:
    backend = ScriptedBackend(script)
    result = await run("thinking-budget", backend, max_thinking=100, min_thinking=8)
    assert result.details["extensions"] == 1
    assert "Wait" in result.reasoning
    assert "double check" in result.reasoning
    assert result.answer == "7"
