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
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

from ponder.config.litellm_models import deployment_from_entry
from ponder.config.litellm_router import MAP_FIELDS, routing_fields
from ponder.config.litellm_values import environment
from ponder.config.routing import DeploymentConfig, RoutingSettings
from ponder.errors import ConfigError

__all__ = ["ModelList", "load_model_list", "model_list_from_mapping"]

log = logging.getLogger("ponder.config")


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
    env = environment(data.get("environment_variables"), source)
    entries = data.get("model_list")
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: model_list must be a list of models")
    deployments: list[DeploymentConfig] = []
    ignored: set[str] = set()
    ids: set[str] = set()
    for index, entry in enumerate(entries):
        deployment = deployment_from_entry(entry, index, source, env, ignored)
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
    routing = routing_fields(data, source, env)
    return ModelList(deployments=tuple(deployments), routing=routing)
