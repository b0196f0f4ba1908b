"""Every strategy end to end on a real embedded model (the tiny one: plumbing, not accuracy)."""

from __future__ import annotations

import pytest

from ponder.backends.embedded import EmbeddedBackend
from ponder.reasoning.registry import BUILTIN
from ponder.reasoning.runner import StrategyBackend, StrategySpec, run_strategy
from ponder.types import GenerationRequest, Message, SamplingParams


def test_every_strategy_has_an_example_that_validates() -> None:
    for name, cls in BUILTIN.items():
        StrategySpec.parse({"strategy": name, **cls.example})


@pytest.mark.parametrize("name", sorted(BUILTIN))
async def test_strategy_runs_on_the_embedded_model(
    tiny_backend: EmbeddedBackend, name: str
) -> None:
    spec = StrategySpec.parse({"strategy": name, "max_tokens": 24, **BUILTIN[name].example})
    request = GenerationRequest(
        messages=(Message("user", "What is 2 + 3?"),),
        sampling=SamplingParams(seed=1, max_tokens=24),
    )
    result = await run_strategy(spec, tiny_backend, request)
    assert result.usage.calls >= 1
    assert result.usage.completion_tokens > 0
    # Usage is the sum of the traced calls, to the token.
    assert result.usage == result.trace.usage
    assert (
        sum(c.usage.completion_tokens for c in result.trace.calls) == result.usage.completion_tokens
    )
    assert result.hidden_usage.reasoning_tokens <= result.usage.completion_tokens


async def test_confidence_vote_over_the_engine_cancels_for_real(
    tiny_backend: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A threshold no path can meet: every online path is cancelled by the engine as soon as
    # its first confidence window is full, and stops costing tokens.
    import ponder.reasoning.strategies.confidence_vote as deepconf

    monkeypatch.setattr(deepconf, "keep_threshold", lambda confidences, keep_percent: 1e9)
    spec = StrategySpec.parse(
        {"strategy": "confidence-vote", "n": 4, "warmup": 1, "window": 2, "max_tokens": 48}
    )
    request = GenerationRequest(
        messages=(Message("user", "Tell me about cats."),), sampling=SamplingParams(seed=3)
    )
    result = await run_strategy(spec, tiny_backend, request)
    online = result.trace.calls[-1]
    assert online.label == "online"
    assert [o["finish_reason"] for o in online.outputs] == ["cancelled"] * 3
    assert all(o["completion_tokens"] < 48 for o in online.outputs)
    assert online.usage.completion_tokens == sum(o["completion_tokens"] for o in online.outputs)
    assert result.details["cancelled"] == 3


async def test_strategy_backend_streams_over_the_engine(tiny_backend: EmbeddedBackend) -> None:
    backend = StrategyBackend(
        StrategySpec.parse({"strategy": "self-consistency", "n": 2, "max_tokens": 16}), tiny_backend
    )
    stream = backend.stream(
        GenerationRequest(messages=(Message("user", "Hi"),), sampling=SamplingParams(seed=1))
    )
    deltas = [d async for d in stream]
    assert any(d.reasoning for d in deltas)
    assert deltas[-1].finish_reason == "stop"
    assert stream.usage.completion_tokens > 0
