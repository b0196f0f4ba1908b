"""Step-level beam search over a scripted backend that continues partial answers."""

from __future__ import annotations

import pytest

from ponder.backends.base import Capabilities
from ponder.backends.scripted import Reply, ScriptedBackend
from ponder.errors import UnsupportedFeatureError
from ponder.types import GenerationRequest
from tests.strategy_helpers import run


def script(request: GenerationRequest, index: int) -> Reply:
    """Two steps. Path "good" (index 0) is confident; "bad" (index 1) is not."""
    done_steps = request.prefill.count("\n\n")
    if done_steps == 0:
        return Reply("First add.", [-0.1] * 2) if index == 0 else Reply("Guess wildly.", [-3.0] * 2)
    if "Guess" in request.prefill:
        return Reply("The answer is: 99", [-2.0] * 4)
    return Reply("The answer is: 7", [-0.1] * 4)


async def test_keeps_the_best_scored_steps() -> None:
    backend = ScriptedBackend(script)
    result = await run("beam-search", backend, beam_width=1, expand=2, max_steps=4)
    assert result.answer == "7"
    assert result.text == "First add.\n\nThe answer is: 7"
    # Step 1: one beam expanded twice; step 2: the single kept beam expanded twice.
    assert [c.n for c in backend.calls] == [2, 2]
    assert backend.calls[1].prefill == "First add.\n\n"
    assert all(c.sampling.stop == ("\n\n",) for c in backend.calls)


async def test_needs_prefill() -> None:
    backend = ScriptedBackend(script, capabilities=Capabilities(prefill=False))
    with pytest.raises(UnsupportedFeatureError):
        await run("beam-search", backend)
