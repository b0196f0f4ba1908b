"""A LiteLLM proxy ``config.yaml`` read as Ponder deployments and routing settings, so a
LiteLLM user can bring their configuration (``model_list = "litellm.yaml"`` in Ponder's TOML).

What is read:

* ``model_list``: each entry is a deployment of its ``model_name``. ``litellm_params.model``
  is ``PROVIDER/MODEL`` (``openai/gpt-4o``, ``azure/my-deploy``,
  ``hosted_vllm/Qwen/Qwen2.5-7B``; a bare name is OpenAI's): the provider becomes the
  vendor and the rest the model id sent to the endpoint. ``api_base`` is the endpoint, which
  must speak OpenAI's HTTP API; only OpenAI (and Ollama, on localhost) have a default.
  Azure's resource URL gets Azure's OpenAI-compatible ``/openai/v1`` path. Providers that
  LiteLLM reaches through their own APIs (Anthropic, Bedrock, Vertex AI, Gemini, ...) are
  refused: point ``openai/MODEL`` at an OpenAI-compatible address instead.
  ``api_key``, ``timeout``, ``rpm``, ``tpm``, ``weight``, ``region_name`` and
  ``input_cost_per_token``/``output_cost_per_token`` are read from ``litellm_params``;
  ``id``, ``vendor``, ``region``, ``local``, the costs and ``max_input_tokens`` (or
  ``max_tokens``) from ``model_info``. Entries whose ``model_info.mode`` is not ``chat`` or
  ``completion`` (embeddings, images, audio) are skipped; wildcard entries are refused.
* ``router_settings``: ``routing_strategy`` (``simple-shuffle``, ``least-busy``,
  ``latency-based-routing``, ``cost-based-routing``), ``num_retries``, ``allowed_fails``,
  ``cooldown_time``, ``timeout``, ``retry_after`` (the first backoff), ``fallbacks``,
  ``context_window_fallbacks``, ``content_policy_fallbacks`` and ``model_group_alias``.
  ``litellm_settings`` may set the same retry settings and fallbacks (``request_timeout``
  for ``timeout``); ``router_settings`` wins.
* ``environment_variables``: as in LiteLLM, they take precedence over the process's
  environment when a value ``os.environ/VAR`` is resolved (nothing is written to it).

Everything else (``general_settings``, other ``litellm_settings``, caching, callbacks) is
ignored. Secret values are never logged nor quoted in errors.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import yaml  # type: ignore[import-untyped, unused-ignore]

from ponder.config.routing import DeploymentConfig, RoutingSettings, RoutingStrategyName
from ponder.config.tables import EndpointConfig, Price
from ponder.errors import ConfigError

__all__ = ["ModelList", "load_model_list", "model_list_from_mapping"]

log = logging.getLogger("ponder.config")

ENV_PREFIX = "os.environ/"
OPENAI_URL = "https://api.openai.com/v1"
OLLAMA_URL = "http://localhost:11434"

# LiteLLM's routing_strategy -> Ponder's.
STRATEGIES: Mapping[str, RoutingStrategyName] = MappingProxyType(
    {
        "simple-shuffle": "weighted",
        "least-busy": "least-busy",
        "latency-based-routing": "latency",
        "cost-based-routing": "lowest-cost",
    }
)

# LiteLLM's provider prefix -> the vendor, where the two differ.
VENDORS: Mapping[str, str] = MappingProxyType(
    {"hosted_vllm": "vllm", "text-completion-openai": "openai", "ollama_chat": "ollama"}
)

# Providers LiteLLM reaches through their own (not OpenAI-compatible) APIs.
NATIVE_PROVIDERS = frozenset(
    {
        "anthropic",
        "bedrock",
        "bedrock_converse",
        "vertex_ai",
        "vertex_ai_beta",
        "gemini",
        "palm",
        "cohere",
        "cohere_chat",
        "sagemaker",
        "sagemaker_chat",
        "replicate",
        "huggingface",
        "watsonx",
        "cloudflare",
        "ai21",
        "aleph_alpha",
        "triton",
        "predibase",
        "clarifai",
        "petals",
        "baseten",
        "nlp_cloud",
    }
)

# Model modes a chat gateway serves (model_info.mode); other entries are skipped.
CHAT_MODES = frozenset({"chat", "completion"})

# litellm_params Ponder reads; any other is named (never its value) in a warning.
USED_PARAMS = frozenset(
    {
        "model",
        "api_base",
        "base_url",
        "api_key",
        "timeout",
        "rpm",
        "tpm",
        "weight",
        "region_name",
        "input_cost_per_token",
        "output_cost_per_token",
        "custom_llm_provider",
    }
)

FALLBACK_KEYS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")
MAP_FIELDS = frozenset({*FALLBACK_KEYS, "aliases"})


@dataclass(frozen=True, slots=True)
class ModelList:
    """What a LiteLLM config contributes: its deployments, and the routing settings it set
    (``RoutingSettings`` field -> value; only those the file gave)."""

    deployments: tuple[DeploymentConfig, ...] = ()
    routing: Mapping[str, Any] = field(default_factory=dict)

    def merged_into(self, routing: RoutingSettings) -> RoutingSettings:
        """``routing`` (the TOML's) with this file's settings filling the fields it left at
        their defaults; fallbacks and aliases are merged, the TOML's entries winning."""
        defaults = RoutingSettings()
        changes: dict[str, Any] = {}
        for name, value in self.routing.items():
            current = getattr(routing, name)
            if name in MAP_FIELDS:
                changes[name] = {**value, **current}
            elif current == getattr(defaults, name):
                changes[name] = value
        if "backoff" in changes and routing.backoff_max == defaults.backoff_max:
            # LiteLLM's retry_after is a minimum wait: let the backoff reach it.
            changes["backoff_max"] = max(routing.backoff_max, changes["backoff"])
        return replace(routing, **changes)


def load_model_list(path: Path, base: Path | None = None) -> ModelList:
    """Read a LiteLLM config file; a relative ``path`` starts from ``base`` when given."""
    if not path.is_absolute() and base is not None:
        path = base / path
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the LiteLLM config {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # The problem and where, never the offending line itself (it may hold a key).
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{path}: not valid YAML{at}: {problem}") from None
    return model_list_from_mapping(data, source=str(path))


def model_list_from_mapping(data: Any, *, source: str = "LiteLLM config") -> ModelList:
    """A parsed LiteLLM config (``yaml.safe_load``'s result); ``source`` names it in errors."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a LiteLLM config must be a mapping with a model_list")
    env = _environment(data.get("environment_variables"), source)
    entries = data.get("model_list")
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: model_list must be a list of models")
    deployments: list[DeploymentConfig] = []
    ignored: set[str] = set()
    ids: set[str] = set()
    for index, entry in enumerate(entries):
        deployment = _deployment(entry, index, source, env, ignored)
        if deployment is None:
            continue
        if deployment.id is not None:
            if deployment.id in ids:
                raise ConfigError(f"{source}: two models have the id {deployment.id!r}")
            ids.add(deployment.id)
        deployments.append(deployment)
    if ignored:
        log.warning(
            "%s: Ponder does not use these litellm_params: %s", source, ", ".join(sorted(ignored))
        )
    routing = _routing(data, source, env)
    return ModelList(deployments=tuple(deployments), routing=routing)


# -- model_list ---------------------------------------------------------------------------
def _deployment(
    entry: Any, index: int, source: str, env: Mapping[str, str], ignored: set[str]
) -> DeploymentConfig | None:
    where = f"{source}: model_list[{index}]"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a mapping with model_name and litellm_params")
    name = _string(entry.get("model_name"), where, "model_name", env, required=True)
    assert name is not None
    where = f"{where} ({name!r})"
    params = entry.get("litellm_params")
    if not isinstance(params, Mapping):
        raise ConfigError(f"{where}: litellm_params must be a mapping with a model")
    info = entry.get("model_info") or {}
    if not isinstance(info, Mapping):
        raise ConfigError(f"{where}: model_info must be a mapping")
    mode = info.get("mode")
    if mode is not None and mode not in CHAT_MODES:
        log.warning("%s: skipped, its mode is %r (Ponder serves chat models)", where, mode)
        return None
    model = _string(params.get("model"), where, "litellm_params.model", env, required=True)
    assert model is not None
    if "*" in model or "*" in name:
        raise ConfigError(f"{where}: wildcard models are not supported; list each model")
    forced = _string(params.get("custom_llm_provider"), where, "custom_llm_provider", env)
    provider, model_id = _split_model(model, forced)
    if not model_id:
        raise ConfigError(f"{where}: litellm_params.model {model!r} names no model")
    if provider in NATIVE_PROVIDERS:
        raise ConfigError(
            f"{where}: LiteLLM reaches {provider!r} through its own API, and Ponder only "
            f"speaks OpenAI-compatible HTTP; use openai/{model_id} with an api_base that "
            "serves OpenAI's API"
        )
    ignored.update(str(k) for k in params if k not in USED_PARAMS)

    api_base = params.get("api_base")
    if api_base is None:
        api_base = params.get("base_url")
    base_url = _string(api_base, where, "api_base", env)
    base_url = _base_url(provider, base_url, where)
    api_key = _string(params.get("api_key"), where, "api_key", env, missing_ok=True)
    endpoint: dict[str, Any] = {"base_url": base_url, "api_key": api_key, "max_retries": 0}
    timeout = _number(params.get("timeout"), where, "litellm_params.timeout", env, positive=True)
    if timeout is not None:
        endpoint["timeout"] = timeout
    if provider == "hosted_vllm":
        endpoint["prefill"] = "vllm"
    elif provider in ("ollama", "ollama_chat"):
        endpoint["prefill"] = "trailing"

    metadata = info.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise ConfigError(f"{where}: model_info.metadata must be a mapping")
    vendor = _string(info.get("vendor"), where, "model_info.vendor", env) or _string(
        metadata.get("vendor"), where, "model_info.metadata.vendor", env
    )
    region = _string(info.get("region"), where, "model_info.region", env) or _string(
        params.get("region_name"), where, "litellm_params.region_name", env
    )
    local = _resolve(info.get("local"), where, "model_info.local", env)
    if isinstance(local, str) and local.lower() in ("true", "false"):
        local = local.lower() == "true"
    if local is not None and not isinstance(local, bool):
        raise ConfigError(f"{where}: model_info.local must be true or false")
    deployment_id = _resolve(info.get("id"), where, "model_info.id", env)
    if deployment_id is not None and (isinstance(deployment_id, bool) or deployment_id == ""):
        raise ConfigError(f"{where}: model_info.id must be a non-empty string")

    return DeploymentConfig(
        model_name=name,
        model=model_id,
        endpoint=EndpointConfig(**endpoint),
        id=None if deployment_id is None else str(deployment_id),
        vendor=vendor or VENDORS.get(provider, provider),
        region=region,
        local=bool(local),
        price=_price(info, params, where, env),
        context_window=_integer(
            _first(info, "max_input_tokens", "max_tokens"),
            where,
            "model_info.max_input_tokens",
            env,
        ),
        rpm=_integer(_first(params, "rpm", default=entry.get("rpm")), where, "rpm", env),
        tpm=_integer(_first(params, "tpm", default=entry.get("tpm")), where, "tpm", env),
        weight=_number(params.get("weight"), where, "weight", env, positive=True) or 1.0,
    )


def _split_model(model: str, forced: str | None) -> tuple[str, str]:
    """(provider, the model id the endpoint knows) from LiteLLM's ``PROVIDER/MODEL``."""
    if forced:
        return forced, model.removeprefix(f"{forced}/")
    provider, slash, rest = model.partition("/")
    if not slash:
        return "openai", model  # LiteLLM's bare names are OpenAI's
    return provider, rest


def _base_url(provider: str, api_base: str | None, where: str) -> str:
    if api_base is None:
        if provider in ("openai", "text-completion-openai"):
            return OPENAI_URL
        if provider in ("ollama", "ollama_chat"):
            api_base = OLLAMA_URL
        else:
            raise ConfigError(
                f"{where}: {provider!r} models need an api_base; Ponder only speaks "
                "OpenAI-compatible HTTP and knows no default address for this provider"
            )
    parts = urlsplit(api_base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{where}: api_base must be an http:// or https:// URL")
    url = api_base.rstrip("/")
    path = parts.path.rstrip("/")
    if provider == "azure":
        # Azure's resource URL; its OpenAI-compatible API lives under /openai/v1.
        if path == "":
            url += "/openai/v1"
        elif path == "/openai":
            url += "/v1"
    elif provider in ("ollama", "ollama_chat") and not path.endswith("/v1"):
        url += "/v1"  # Ollama's OpenAI-compatible API
    return url


def _price(
    info: Mapping[str, Any], params: Mapping[str, Any], where: str, env: Mapping[str, str]
) -> Price | None:
    costs = []
    for key in ("input_cost_per_token", "output_cost_per_token"):
        value = _first(info, key, default=params.get(key))
        costs.append(_number(value, where, key, env))
    if costs[0] is None and costs[1] is None:
        return None
    # Dollars per token -> per million, rounded off the float noise (1.5e-7 * 1e6).
    prompt, completion = (round((c or 0.0) * 1_000_000, 9) for c in costs)
    return Price(prompt, completion)


# -- router_settings / litellm_settings ---------------------------------------------------
def _routing(data: Mapping[str, Any], source: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The RoutingSettings fields the file sets: ``router_settings`` over the same settings
    in ``litellm_settings``."""
    router = _section(data, "router_settings", source)
    module = _section(data, "litellm_settings", source)
    out: dict[str, Any] = {}
    strategy = _string(router.get("routing_strategy"), source, "routing_strategy", env)
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
                value: Any = _integer(settings[key], where, key, env, minimum=0)
            else:
                value = _number(settings[key], where, key, env, positive=positive)
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


# -- values -------------------------------------------------------------------------------
def _environment(value: Any, source: str) -> Mapping[str, str]:
    """The variables ``os.environ/VAR`` reads: the file's environment_variables over the
    process's (as LiteLLM sets them)."""
    if value is None:
        return os.environ
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: environment_variables must be a mapping")
    return {**os.environ, **{str(k): str(v) for k, v in value.items() if v is not None}}


def _resolve(
    value: Any, where: str, key: str, env: Mapping[str, str], *, missing_ok: bool = False
) -> Any:
    """``value``, or the environment variable an ``os.environ/VAR`` value names."""
    if not (isinstance(value, str) and value.startswith(ENV_PREFIX)):
        return value
    var = value.removeprefix(ENV_PREFIX)
    if not var:
        raise ConfigError(f"{where}: {key} names no environment variable")
    if var in env:
        return env[var]
    if missing_ok:
        log.warning("%s: %s names %s, which is not set; going without it", where, key, var)
        return None
    raise ConfigError(f"{where}: {key} names the environment variable {var}, which is not set")


def _string(
    value: Any,
    where: str,
    key: str,
    env: Mapping[str, str],
    *,
    required: bool = False,
    missing_ok: bool = False,
) -> str | None:
    value = _resolve(value, where, key, env, missing_ok=missing_ok)
    if value is None or value == "":
        if required:
            raise ConfigError(f"{where}: {key} must be a non-empty string")
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string")
    return value


def _number(
    value: Any, where: str, key: str, env: Mapping[str, str], *, positive: bool = False
) -> float | None:
    value = _resolve(value, where, key, env)
    if value is None:
        return None
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number < 0 or (positive and number == 0):
        kind = "a positive" if positive else "a non-negative"
        raise ConfigError(f"{where}: {key} must be {kind} number")
    return number


def _integer(
    value: Any, where: str, key: str, env: Mapping[str, str], *, minimum: int = 1
) -> int | None:
    value = _resolve(value, where, key, env)
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and value.strip().isdigit()
    ):
        number = int(value)
    if number is None or number < minimum:
        kind = "a positive" if minimum >= 1 else "a non-negative"
        raise ConfigError(f"{where}: {key} must be {kind} integer")
    return number


def _first(mapping: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    """The first of ``keys`` set (not None) in ``mapping``, else ``default``."""
    for key in keys:
        if mapping.get(key) is not None:
            return mapping[key]
    return default
