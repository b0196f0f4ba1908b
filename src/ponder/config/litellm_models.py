"""LiteLLM ``model_list`` entries read as Ponder deployments: the provider prefix of
``litellm_params.model`` mapped to a vendor and an OpenAI-compatible endpoint (with the
default addresses of OpenAI and Ollama, Azure's ``/openai/v1`` path), the providers Ponder
cannot speak to refused, and the rest of ``litellm_params``/``model_info`` (key, timeout,
limits, weight, region, costs, context window) carried over."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from ponder.config.litellm_values import as_integer, as_number, as_string, first_set, resolve
from ponder.config.routing import DeploymentConfig
from ponder.config.tables import EndpointConfig, Price
from ponder.errors import ConfigError

__all__ = ["deployment_from_entry"]

log = logging.getLogger("ponder.config")

OPENAI_URL = "https://api.openai.com/v1"
OLLAMA_URL = "http://localhost:11434"

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


def deployment_from_entry(
    entry: Any, index: int, source: str, env: Mapping[str, str], ignored: set[str]
) -> DeploymentConfig | None:
    """The deployment ``model_list[index]`` describes, or None for a model that is not a
    chat model; the ``litellm_params`` keys Ponder does not use are added to ``ignored``."""
    where = f"{source}: model_list[{index}]"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a mapping with model_name and litellm_params")
    name = as_string(entry.get("model_name"), where, "model_name", env, required=True)
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
    model = as_string(params.get("model"), where, "litellm_params.model", env, required=True)
    assert model is not None
    if "*" in model or "*" in name:
        raise ConfigError(f"{where}: wildcard models are not supported; list each model")
    forced = as_string(params.get("custom_llm_provider"), where, "custom_llm_provider", env)
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
    base_url = as_string(api_base, where, "api_base", env)
    base_url = _base_url(provider, base_url, where)
    api_key = as_string(params.get("api_key"), where, "api_key", env, missing_ok=True)
    endpoint: dict[str, Any] = {"base_url": base_url, "api_key": api_key, "max_retries": 0}
    timeout = as_number(params.get("timeout"), where, "litellm_params.timeout", env, positive=True)
    if timeout is not None:
        endpoint["timeout"] = timeout
    if provider == "hosted_vllm":
        endpoint["prefill"] = "vllm"
    elif provider in ("ollama", "ollama_chat"):
        endpoint["prefill"] = "trailing"

    metadata = info.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise ConfigError(f"{where}: model_info.metadata must be a mapping")
    vendor = as_string(info.get("vendor"), where, "model_info.vendor", env) or as_string(
        metadata.get("vendor"), where, "model_info.metadata.vendor", env
    )
    region = as_string(info.get("region"), where, "model_info.region", env) or as_string(
        params.get("region_name"), where, "litellm_params.region_name", env
    )
    local = resolve(info.get("local"), where, "model_info.local", env)
    if isinstance(local, str) and local.lower() in ("true", "false"):
        local = local.lower() == "true"
    if local is not None and not isinstance(local, bool):
        raise ConfigError(f"{where}: model_info.local must be true or false")
    deployment_id = resolve(info.get("id"), where, "model_info.id", env)
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
        context_window=as_integer(
            first_set(info, "max_input_tokens", "max_tokens"),
            where,
            "model_info.max_input_tokens",
            env,
        ),
        rpm=as_integer(first_set(params, "rpm", default=entry.get("rpm")), where, "rpm", env),
        tpm=as_integer(first_set(params, "tpm", default=entry.get("tpm")), where, "tpm", env),
        weight=as_number(params.get("weight"), where, "weight", env, positive=True) or 1.0,
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
        value = first_set(info, key, default=params.get(key))
        costs.append(as_number(value, where, key, env))
    if costs[0] is None and costs[1] is None:
        return None
    # Dollars per token -> per million, rounded off the float noise (1.5e-7 * 1e6).
    prompt, completion = (round((c or 0.0) * 1_000_000, 9) for c in costs)
    return Price(prompt, completion)
