"""Choosing a strategy: body field, model name, reasoning_effort."""

from __future__ import annotations

import pytest

from ponder.errors import InvalidRequestError
from ponder.reasoning.selection import parse_model_name, select_strategy


@pytest.mark.parametrize(
    "model",
    [
        "qwen2.5-coder-1.5b-instruct",
        "openrouter/deepseek/deepseek-r1:free",
        "@cf/meta/llama-3-8b",
        "org/m-7b@v2:q4",
    ],
)
def test_model_name_forms_parse_unambiguously(model: str) -> None:
    assert parse_model_name(model) == (None, model)
    raw, base = parse_model_name(f"ponder/self-consistency;n=16;temperature=0.8/{model}")
    assert base == model
    assert raw == {"strategy": "self-consistency", "n": 16, "temperature": 0.8}


def test_model_name_lists_and_errors() -> None:
    raw, base = parse_model_name("ponder/mixture-of-agents;proposers=a,b/m")
    assert raw == {"strategy": "mixture-of-agents", "proposers": ["a", "b"]} and base == "m"
    with pytest.raises(InvalidRequestError):
        parse_model_name("ponder/self-consistency")
    with pytest.raises(InvalidRequestError):
        parse_model_name("ponder/self-consistency;n/m")


def test_body_field_wins_over_effort_and_validates() -> None:
    spec = select_strategy(
        model="m", ponder={"strategy": "self-consistency", "n": 3}, reasoning_effort="high"
    ).spec
    assert spec is not None and spec.name == "self-consistency" and spec.params.n == 3  # type: ignore[attr-defined]
    with pytest.raises(InvalidRequestError) as info:
        select_strategy(
            model="m", ponder={"strategy": "self-consistency", "n": 0}, reasoning_effort=None
        )
    assert info.value.param == "ponder.n"
    with pytest.raises(InvalidRequestError, match="unknown strategy"):
        select_strategy(model="m", ponder={"strategy": "telepathy"}, reasoning_effort=None)
    with pytest.raises(InvalidRequestError, match="not both"):
        select_strategy(model="ponder/cot/m", ponder={"strategy": "cot"}, reasoning_effort=None)


def test_reasoning_effort_maps_through_configuration() -> None:
    spec = select_strategy(model="m", ponder=None, reasoning_effort="low").spec
    assert spec is not None and spec.name == "auto" and spec.params.effort == "low"  # type: ignore[attr-defined]
    spec = select_strategy(model="m", ponder=None, reasoning_effort="none").spec
    assert spec is None
    custom = {"low": {"strategy": "cot"}}
    spec = select_strategy(model="m", ponder=None, reasoning_effort="low", effort_map=custom).spec
    assert spec is not None and spec.name == "cot"
    chosen = select_strategy(model="m", ponder=None, reasoning_effort=None)
    assert (chosen.spec, chosen.model, chosen.source) == (None, "m", "default")
    spec = select_strategy(
        model="m", ponder=None, reasoning_effort=None, default={"strategy": "auto"}
    ).spec
    assert spec is not None and spec.name == "auto"


def test_composition_spec() -> None:
    spec = select_strategy(
        model="m",
        ponder={
            "strategy": "self-consistency",
            "n": 3,
            "over": {"strategy": "program-aided", "n": 1},
        },
        reasoning_effort=None,
    ).spec
    assert spec is not None and spec.over is not None
    assert spec.describe() == "self-consistency over program-aided"


def test_options_without_a_strategy_tune_the_one_the_request_gets() -> None:
    default = {"strategy": "auto"}
    tuned = select_strategy(
        model="m", ponder={"clarify": False}, reasoning_effort=None, default=default
    )
    assert tuned.spec is not None and tuned.spec.name == "auto" and tuned.source == "default"
    assert tuned.spec.params.clarify is False  # type: ignore[attr-defined]
    low = select_strategy(
        model="m", ponder={"clarify": False}, reasoning_effort="low", default=default
    )
    assert low.spec is not None and low.spec.params.effort == "low" and low.source == "effort"  # type: ignore[attr-defined]
    for ponder, effort, base in (
        ({}, None, default),  # nothing to tune: a strategy is still required
        ({"over": {"strategy": "cot"}}, None, default),
        ({"clarify": False}, None, None),  # the default passes straight through
        ({"clarify": False}, "none", default),
        ({"n": 3}, None, default),  # auto has no n
    ):
        with pytest.raises(InvalidRequestError):
            select_strategy(model="m", ponder=ponder, reasoning_effort=effort, default=base)
