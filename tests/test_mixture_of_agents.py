"""Mixture-of-agents: proposals from named backends, then an aggregator."""

from __future__ import annotations

import pytest

from ponder.backends.scripted import ScriptedBackend
from ponder.errors import InvalidRequestError
from ponder.types import GenerationRequest
from tests.strategy_helpers import run, solution


async def test_named_proposers_and_aggregator() -> None:
    a = ScriptedBackend.cycle([solution(7)])
    b = ScriptedBackend.cycle([solution(8)])

    def aggregate(request: GenerationRequest, index: int) -> str:
        system = request.messages[0].content
        assert "[1]" in system and "[2]" in system
        return solution(7)

    judge = ScriptedBackend(aggregate)
    result = await run("mixture-of-agents", judge, backends={"a": a, "b": b}, proposers=["a", "b"])
    assert result.answer == "7"
    assert len(a.calls) == len(b.calls) == len(judge.calls) == 1
    assert result.usage.calls == 3


async def test_same_model_proposes_when_no_names() -> None:
    backend = ScriptedBackend.cycle([solution(1), solution(2), solution(2), solution(2)])
    result = await run("mixture-of-agents", backend, n_proposals=3)
    assert [c.n for c in backend.calls] == [3, 1]
    assert result.answer == "2"


async def test_unknown_proposer() -> None:
    with pytest.raises(InvalidRequestError):
        await run("mixture-of-agents", ScriptedBackend.cycle(["x"]), proposers=["nope"])
