"""Strategies as Backends: composition, honest streaming, exact accounting, traces."""

from __future__ import annotations

from ponder.backends.scripted import ScriptedBackend
from ponder.reasoning.runner import StrategyBackend, StrategySpec, run_strategy
from ponder.types import GenerationRequest
from tests.strategy_helpers import ask, solution


def spec(raw: dict[str, object]) -> StrategySpec:
    return StrategySpec.parse(raw)


async def test_generate_reports_hidden_tokens_as_reasoning() -> None:
    backend = ScriptedBackend.cycle([solution(7), solution(7), solution(8)])
    sc = StrategyBackend(spec({"strategy": "self-consistency", "n": 3}), backend)
    completion = await sc.generate(ask())
    (choice,) = completion.choices
    assert choice.text == solution(7)
    assert "vote: 7×2, 8×1 -> 7" in (choice.reasoning or "")
    assert completion.usage.completion_tokens == 30
    assert completion.usage.reasoning_tokens == 20  # everything but the shown path
    assert completion.trace is not None and len(completion.trace.calls) == 1


async def test_stream_sends_progress_before_the_answer() -> None:
    backend = ScriptedBackend.cycle([solution(1), solution(2), solution(2), solution(2)])
    sc = StrategyBackend(
        spec({"strategy": "adaptive-consistency", "window": 2, "max_n": 4}), backend
    )
    stream = sc.stream(ask())
    events = [d async for d in stream]
    reasoning = [d for d in events if d.reasoning]
    answer = [d for d in events if d.text]
    # Progress arrived in several pieces, before the answer, not as one chunk at the end.
    assert len(reasoning) >= 5
    assert events.index(answer[0]) > events.index(reasoning[-1])
    assert answer[0].finish_reason == "stop"
    assert stream.usage.completion_tokens == 40
    assert stream.trace is not None


async def test_composition_program_aided_inside_self_consistency() -> None:
    def script(request: GenerationRequest, index: int) -> str:
        # Three PAL runs; the middle one computes a different result.
        return (
            "```python\nprint(3 + 4)\n```"
            if request.sampling.seed != 1000
            else "```python\nprint(12)\n```"
        )

    backend = ScriptedBackend(script)
    outer = spec(
        {"strategy": "self-consistency", "n": 3, "over": {"strategy": "program-aided", "n": 1}}
    )
    result = await run_strategy(outer, backend, ask(seed=0))
    assert result.answer == "7"
    assert result.details["votes"] == {"7": 2, "12": 1}
    # Every inner call is counted: three PAL generations.
    assert result.usage.calls == 3
    assert len(backend.calls) == 3
    assert result.trace.calls[0].child is not None
