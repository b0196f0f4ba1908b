"""LiteLLM's ``router_settings`` and ``litellm_settings`` read as the ``RoutingSettings``
fields they set: the routing strategy, retries, cooldowns, timeout, first backoff,
fallbacks and model group aliases (``router_settings`` over ``litellm_settings``)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ponder.config.litellm_values import as_integer, as_number, as_string
from ponder.config.routing import RoutingStrategyName
from ponder.errors import ConfigError

__all__ = ["FALLBACK_KEYS", "MAP_FIELDS", "STRATEGIES", "routing_fields"]

# LiteLLM's routing_strategy -> Ponder's.
STRATEGIES: Mapping[str, RoutingStrategyName] = MappingProxyType(
    {
        "simple-shuffle": "weighted",
        "least-busy": "least-busy",
        "latency-based-routing": "latency",
        "cost-based-routing": "lowest-cost",
    }
)

FALLBACK_KEYS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")
MAP_FIELDS = frozenset({*FALLBACK_KEYS, "aliases"})


def routing_fields(data: Mapping[str, Any], source: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The RoutingSettings fields the file sets: ``router_settings`` over the same settings
    in ``litellm_settings``."""
    router = _section(data, "router_settings", source)
    module = _section(data, "litellm_settings", source)
    out: dict[str, Any] = {}
    strategy = as_string(router.get("routing_strategy"), source, "routing_strategy", env)
    if strategy is not None:
        if strategy not in STRATEGIES:
            raise ConfigError(
                f"{source}: router_settings.routing_strategy {strategy!r} is not supported; "
                f"Ponder supports {', '.join(STRATEGIES)}"
            )
        out["strategy"] = STRATEGIES[strategy]
    for settings, section in ((module, "litellm_settings"), (router, "router_settings")):
        where = f"{source}: {section}"
        timeout_key = "timeout" if section == "router_settings" else "request_timeout"
        scalars = (
            ("num_retries", "num_retries", True, False),
            ("allowed_fails", "allowed_fails", True, False),
            ("cooldown_time", "cooldown_time", False, False),
            (timeout_key, "timeout", False, True),
            ("retry_after", "backoff", False, False),
        )
        for key, target, integer, positive in scalars:
            if settings.get(key) is None:
                continue
            if integer:
                value: Any = as_integer(settings[key], where, key, env, minimum=0)
            else:
                value = as_number(settings[key], where, key, env, positive=positive)
            if target == "backoff" and not value:
                continue  # LiteLLM's default, no wait: keep Ponder's backoff
            out[target] = value
        for key in FALLBACK_KEYS:
            if settings.get(key) is not None:
                out[key] = {**out.get(key, {}), **_fallbacks(settings[key], f"{where}.{key}")}
        if settings.get("default_fallbacks"):
            raise ConfigError(
                f"{where}.default_fallbacks is not supported; give each model its fallbacks"
            )
    aliases = router.get("model_group_alias")
    if aliases is not None:
        out["aliases"] = _aliases(aliases, f"{source}: router_settings.model_group_alias")
    return out


def _section(data: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {key} must be a mapping")
    return value


def _fallbacks(value: Any, where: str) -> dict[str, tuple[str, ...]]:
    """LiteLLM's ``[{"gpt-4o": ["gpt-4o-mini"]}, ...]`` (or one mapping) -> name: names."""
    if isinstance(value, Mapping):
        groups: list[Mapping[Any, Any]] = [value]
    elif isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
        groups = value
    else:
        raise ConfigError(f'{where} must be a list like [{{"model": ["fallback", ...]}}]')
    out: dict[str, tuple[str, ...]] = {}
    for group in groups:
        for name, targets in group.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{where}: model names must be strings")
            if name == "*":
                raise ConfigError(
                    f"{where}: a '*' fallback is not supported; give each model its fallbacks"
                )
            if isinstance(targets, str):
                targets = [targets]
            if not isinstance(targets, list) or not all(isinstance(t, str) and t for t in targets):
                raise ConfigError(f"{where}: {name!r} must list model names")
            out.setdefault(name, tuple(targets))
    return out


def _aliases(value: Any, where: str) -> dict[str, str]:
    """``{alias: name}`` or ``{alias: {"model": name, "hidden": ...}}`` -> alias: name."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must map aliases to model names")
    out: dict[str, str] = {}
    for alias, target in value.items():
        if isinstance(target, Mapping):
            target = target.get("model")
        if not isinstance(alias, str) or not isinstance(target, str) or not target:
            raise ConfigError(f"{where}: {alias!r} must name a model")
        out[alias] = target
    return out
