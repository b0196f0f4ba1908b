"""Choosing a strategy for a request, three ways.

1. The ``ponder`` body field: ``{"strategy": "self-consistency", "n": 16}``, optionally
   with ``"over": {...}`` to run it over another strategy.
2. The model name, for clients that can only set ``model``:
   ``ponder/<strategy>[;key=value...]/<model>``. Only the first two ``/`` are read, so the
   model part may contain anything (``/``, ``:``, ``-``, ``@``), e.g.
   ``ponder/self-consistency;n=16/openrouter/deepseek/deepseek-r1:free``.
3. OpenAI's ``reasoning_effort``, mapped to a strategy through configuration; by default
   to the adaptive controller ``auto`` at that effort.

An explicit choice (1 or 2) wins over ``reasoning_effort``; giving both 1 and 2 is an error.
A request that chooses nothing gets the configured default (``auto`` unless configured
otherwise; ``None`` passes the request straight to the model). A ``ponder`` field with options
but no strategy (``{"clarify": false}``) tunes the strategy the request would otherwise get.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ponder.config import DEFAULT_EFFORT
from ponder.errors import InvalidRequestError
from ponder.reasoning.registry import StrategyRegistry
from ponder.reasoning.runner import StrategySpec

MODEL_PREFIX = "ponder/"


def _coerce(value: str) -> Any:
    if "," in value:
        return [_coerce(v) for v in value.split(",") if v]
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def parse_model_name(model: str) -> tuple[Mapping[str, Any] | None, str]:
    """Split ``ponder/<strategy>[;k=v...]/<model>`` into (raw spec, model)."""
    if not model.startswith(MODEL_PREFIX):
        return None, model
    segment, sep, base = model[len(MODEL_PREFIX) :].partition("/")
    if not sep or not base or not segment:
        raise InvalidRequestError(
            "model names starting with 'ponder/' take the form ponder/<strategy>[;key=value...]/<model>",
            param="model",
        )
    name, *pairs = segment.split(";")
    raw: dict[str, Any] = {"strategy": name}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise InvalidRequestError(
                f"strategy parameter {pair!r} in the model name is not key=value", param="model"
            )
        raw[key] = _coerce(value)
    return raw, base


@dataclass(frozen=True, slots=True)
class Selection:
    spec: StrategySpec | None  # None: pass the request straight to the model
    model: str  # the model it runs on, as named (before routing)
    # Who chose: the request itself (``ponder`` or the model name), its reasoning_effort,
    # or the server's default. A strategy the client named must honour every field it sent.
    source: Literal["request", "effort", "default"]


def select_strategy(
    *,
    model: str,
    ponder: Mapping[str, Any] | None,
    reasoning_effort: str | None,
    effort_map: Mapping[str, Mapping[str, Any] | None] = DEFAULT_EFFORT,
    default: Mapping[str, Any] | None = None,
    registry: StrategyRegistry | None = None,
) -> Selection:
    """The strategy for a request (None: pass through) and the model it runs on."""
    from_name, base = parse_model_name(model)
    if ponder is not None and from_name is not None:
        raise InvalidRequestError(
            "choose a strategy in the model name or in 'ponder', not both", param="ponder"
        )
    raw = ponder if ponder is not None else from_name
    if raw is not None and "strategy" in raw:
        return Selection(StrategySpec.parse(raw, registry), base, "request")
    if raw is not None:
        return _tuned(raw, base, reasoning_effort, effort_map, default, registry)
    return _unnamed(base, reasoning_effort, effort_map, default, registry)


def _tuned(
    raw: Mapping[str, Any],
    base: str,
    reasoning_effort: str | None,
    effort_map: Mapping[str, Mapping[str, Any] | None],
    default: Mapping[str, Any] | None,
    registry: StrategyRegistry | None,
) -> Selection:
    """Options without a strategy (``{"clarify": false}``) tune the strategy the request
    would get anyway; who chose it stays the same, so a request the default would pass
    straight to the model (one with tools, say) still is."""
    if not raw or "over" in raw:
        raise InvalidRequestError(
            "ponder.strategy is required" + (" with ponder.over" if raw else ""),
            param="ponder.strategy",
        )
    chosen = _unnamed(base, reasoning_effort, effort_map, default, registry)
    tuned = effort_map[reasoning_effort] if reasoning_effort is not None else default
    if chosen.spec is None or tuned is None:
        why = f"reasoning_effort {reasoning_effort!r}" if reasoning_effort else "the default"
        raise InvalidRequestError(
            f"ponder options without ponder.strategy tune the strategy the request would get, "
            f"and with {why} it gets none; name one in ponder.strategy",
            param="ponder.strategy",
        )
    spec = StrategySpec.parse({**tuned, **raw}, registry)
    return Selection(spec, base, chosen.source)


def _unnamed(
    base: str,
    reasoning_effort: str | None,
    effort_map: Mapping[str, Mapping[str, Any] | None],
    default: Mapping[str, Any] | None,
    registry: StrategyRegistry | None,
) -> Selection:
    """The strategy a request gets that names none: its reasoning_effort's, else the default."""
    if reasoning_effort is not None:
        if reasoning_effort not in effort_map:
            known = ", ".join(effort_map)
            raise InvalidRequestError(
                f"unknown reasoning_effort {reasoning_effort!r}; known: {known}",
                param="reasoning_effort",
            )
        mapped = effort_map[reasoning_effort]
        spec = StrategySpec.parse(mapped, registry) if mapped is not None else None
        return Selection(spec, base, "effort")
    spec = StrategySpec.parse(default, registry) if default is not None else None
    return Selection(spec, base, "default")
