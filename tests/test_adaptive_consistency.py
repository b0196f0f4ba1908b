"""Adaptive stopping: the Beta, Dirichlet and ESC rules, over a scripted backend."""

from __future__ import annotations

import pytest

from ponder.backends.scripted import ScriptedBackend
from ponder.errors import InvalidRequestError
from ponder.reasoning.stopping import beta_stop_probability, dirichlet_stop_probability, should_stop
from tests.strategy_helpers import run, solution


def test_beta_probability_exact_values() -> None:
    # Beta(4, 1): P(p > 1/2) = 1 - 1/16.
    assert beta_stop_probability(3, 0) == pytest.approx(15 / 16)
    assert beta_stop_probability(4, 0) == pytest.approx(31 / 32)
    assert beta_stop_probability(2, 2) == pytest.approx(0.5)


def test_dirichlet_agrees_with_beta_on_two_answers() -> None:
    assert dirichlet_stop_probability([4, 0]) == pytest.approx(
        beta_stop_probability(4, 0), abs=0.02
    )


def test_rules() -> None:
    assert should_stop("beta", ["1"] * 4, ["1"] * 4, 0.95)[0]
    assert not should_stop("beta", ["1"] * 3, ["1"] * 3, 0.95)[0]
    assert should_stop("esc", ["1", "2", "3", "3"], ["3", "3"], 0.95)[0]
    assert not should_stop("esc", ["3", "3", "3", "2"], ["3", "2"], 0.95)[0]


async def test_stops_after_first_window_on_agreement() -> None:
    backend = ScriptedBackend.cycle([solution(7)])
    result = await run("adaptive-consistency", backend, window=4, max_n=16)
    assert len(backend.calls) == 1
    assert result.answer == "7"
    assert result.details["stopped_early"] is True


async def test_keeps_sampling_on_disagreement_up_to_max_n() -> None:
    backend = ScriptedBackend.cycle([solution(1), solution(2)])
    result = await run("adaptive-consistency", backend, window=4, max_n=12)
    assert [c.n for c in backend.calls] == [4, 4, 4]
    assert result.details["paths"] == 12
    assert result.details["stopped_early"] is False
    assert result.usage.calls == 3


async def test_esc_window_rule() -> None:
    backend = ScriptedBackend.cycle(
        [solution(1), solution(2), solution(3), solution(3), solution(3), solution(3)]
    )
    result = await run("adaptive-consistency", backend, rule="esc", window=2, max_n=10)
    # Windows: (1,2) (3,3) -> all equal, stop after 4 paths.
    assert result.details["paths"] == 4
    assert result.answer == "3"


def test_bad_parameters_are_refused() -> None:
    from ponder.reasoning.runner import StrategySpec

    with pytest.raises(InvalidRequestError, match="window"):
        StrategySpec.parse({"strategy": "adaptive-consistency", "window": 8, "max_n": 4})
    with pytest.raises(InvalidRequestError, match="threshold"):
        StrategySpec.parse({"strategy": "adaptive-consistency", "threshold": 1.5})
    with pytest.raises(InvalidRequestError, match="windw: Extra inputs"):
        StrategySpec.parse({"strategy": "adaptive-consistency", "windw": 3})
