"""DeepConf: confidence measures, offline filtering, online cancellation."""

from __future__ import annotations

import pytest

from ponder.backends.scripted import Reply, ScriptedBackend
from ponder.reasoning.confidence import keep_threshold, lowest_group_confidence, token_confidence
from ponder.types import TokenLogprob, TopLogprob
from tests.strategy_helpers import run, solution


def entry(*top: float) -> TokenLogprob:
    return TokenLogprob("x", top[0], None, tuple(TopLogprob("x", v) for v in top))


def test_token_and_group_confidence() -> None:
    assert token_confidence(entry(-1.0, -3.0)) == pytest.approx(2.0)
    # A path that gets lost in the middle has a low lowest-window confidence.
    steady = [entry(-5.0, -5.0)] * 6
    lost = [entry(-5.0, -5.0)] * 3 + [entry(-0.1, -0.2)] * 3
    assert lowest_group_confidence(steady, window=3) == pytest.approx(5.0)
    assert lowest_group_confidence(lost, window=3) == pytest.approx(0.15)


def test_keep_threshold() -> None:
    assert keep_threshold([1.0, 2.0, 3.0, 4.0, 5.0], 100.0) == 1.0
    assert keep_threshold([1.0, 2.0, 3.0, 4.0, 5.0], 40.0) == pytest.approx(3.4)


def confident(answer: int) -> Reply:
    text = solution(answer)
    return Reply(text, [-0.01] * 20)


def unsure(answer: int) -> Reply:
    text = solution(answer)
    return Reply(text, [-3.0] * 20)


async def test_offline_filter_lets_few_confident_paths_beat_many_unsure_ones() -> None:
    backend = ScriptedBackend.cycle([unsure(1), unsure(1), unsure(1), confident(2), confident(2)])
    # Top 40% by confidence: only the two confident paths vote.
    result = await run(
        "confidence-vote", backend, mode="offline", n=5, keep_percent=40, window=4, top_logprobs=2
    )
    assert result.answer == "2"
    assert result.details["kept"] == 2
    assert backend.calls[0].sampling.top_logprobs == 2


async def test_online_cancels_paths_below_the_warmup_threshold() -> None:
    replies = [confident(3), confident(3), unsure(9), unsure(9), confident(3), unsure(9)]
    backend = ScriptedBackend.cycle(replies)
    backend.token_delay = 0.001
    result = await run(
        "confidence-vote",
        backend,
        mode="online",
        n=6,
        warmup=2,
        keep_percent=90,
        window=4,
        top_logprobs=2,
    )
    assert result.answer == "3"
    assert result.details["cancelled"] == 3
    # The cancelled paths stopped early, so they cost fewer tokens than finished ones.
    online = result.trace.calls[-1]
    tokens = [o["completion_tokens"] for o in online.outputs]
    finished = [o for o in online.outputs if o["finish_reason"] != "cancelled"]
    assert len(finished) == 1
    assert min(tokens) < max(tokens)
    assert result.usage.completion_tokens == 2 * 10 + sum(tokens)
