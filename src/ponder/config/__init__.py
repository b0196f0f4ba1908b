"""Configuration as immutable values, passed down explicitly (never a global).

A TOML file may set any of it::

    default_model = "qwen2.5-coder-1.5b-instruct"
    max_n = 64

    [engine]
    n_ctx = 16384
    n_seq_max = 16

    [providers.local-vllm]
    base_url = "http://127.0.0.1:8000/v1"
    api_key_env = "VLLM_API_KEY"
    models = ["Qwen/Qwen2.5-7B-Instruct"]
    prefill = "vllm"

    [sandbox]
    mode = "bwrap"        # or "process": no isolation, only where every prompt is trusted

A remote model is then addressed as ``local-vllm/Qwen/Qwen2.5-7B-Instruct``, or by its bare
name when no other provider lists it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ponder.config.routing import (
    DeploymentConfig,
    PolicyRule,
    PolicySettings,
    RoutingSettings,
    RoutingStrategyName,
    parse_deployment,
    parse_routing,
    policy_as_mapping,
    policy_from_mapping,
)
from ponder.config.tables import (
    ContextConfig,
    EndpointConfig,
    Price,
    ProviderConfig,
    SandboxMode,
    SandboxSettings,
    check_keys,
    parse_prices,
    parse_sandbox,
    strategy_choice,
)
from ponder.errors import ConfigError

__all__ = [
    "DEFAULT_EFFORT",
    "DEFAULT_MODEL",
    "ContextConfig",
    "DeploymentConfig",
    "EndpointConfig",
    "PolicyRule",
    "PolicySettings",
    "PonderConfig",
    "Price",
    "ProviderConfig",
    "RoutingSettings",
    "RoutingStrategyName",
    "SandboxMode",
    "SandboxSettings",
    "config_from_mapping",
    "load_config",
    "policy_as_mapping",
    "policy_from_mapping",
]

# The bundled model a request gets when it names none (see ponder.engine.weights).
DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"

DEFAULT_EFFORT: Mapping[str, Mapping[str, Any] | None] = {
    "none": None,
    **{
        effort: {"strategy": "auto", "effort": effort}
        for effort in ("minimal", "low", "medium", "high", "xhigh")
    },
}


@dataclass(frozen=True, slots=True)
class PonderConfig:
    default_model: str = DEFAULT_MODEL
    max_n: int = 64  # largest n a request may ask for
    engine: ContextConfig = field(default_factory=ContextConfig)
    providers: tuple[ProviderConfig, ...] = ()
    cache_dir: Path | None = None  # where bundled models are assembled
    host: str = "127.0.0.1"
    port: int = 8000
    # reasoning_effort -> a "ponder" strategy choice (None: answer directly).
    effort: Mapping[str, Mapping[str, Any] | None] = field(
        default_factory=lambda: dict(DEFAULT_EFFORT)
    )
    # The SQLite file of the database when database_url is unset (its older name, from when
    # it held only traces); ":memory:" keeps everything in the process.
    trace_db: str | None = None
    # Teams, API keys, budgets, rate limits and the request ledger (ponder.tenancy): a
    # SQLAlchemy URL, "sqlite:///PATH" or "postgresql://...". PONDER_DATABASE_URL overrides;
    # None: a SQLite file in the user data dir, next to the trace DB.
    database_url: str | None = None
    # Dollars per million prompt and completion tokens, by model name; a budget in dollars
    # needs a price for every remote model a request may reach.
    prices: Mapping[str, Price] = field(default_factory=dict)
    # The tokens reserved for a request whose worst case is unknown (no max_tokens, a
    # strategy that declares no bound); None: such a request is refused under a budget.
    default_request_tokens: int | None = None
    # The strategy for requests that name none; None passes them straight to the model.
    default_strategy: Mapping[str, Any] | None = field(default_factory=lambda: {"strategy": "auto"})
    # The adaptive controller's profile (from `ponder calibrate`); None: the shipped one.
    auto_profile: Path | None = None
    # Glob patterns of models no request, escalation or proposer may reach (a [policy]
    # deny rule on ``model`` each).
    deny_models: tuple[str, ...] = ()
    # Public model names and where they are served ([[deployments]], or a LiteLLM
    # model_list file named by ``model_list``), how they are routed, and the global policy.
    deployments: tuple[DeploymentConfig, ...] = ()
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    # The server's bounds: a larger request body is a 413; past this many chat requests
    # at once, a request gets 503 with Retry-After (None: no bound).
    max_body_bytes: int = 10 * 1024 * 1024
    max_concurrent_requests: int | None = 1024
    # On SIGTERM the server stops accepting and lets requests in flight finish for this long;
    # past it they are cancelled, and what they spent is still recorded.
    shutdown_grace_seconds: int = 30
    # How model-written programs are isolated ([sandbox]); see docs/security.md.
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)

    def replace(self, **changes: Any) -> PonderConfig:
        return replace(self, **changes)


def load_config(path: Path | None) -> PonderConfig:
    """Read a TOML configuration file; ``None`` gives the defaults."""
    if path is None:
        return PonderConfig()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
    return config_from_mapping(data, base=path.parent)


TABLES = frozenset(
    {
        "engine",
        "providers",
        "effort",
        "sandbox",
        "prices",
        "deployments",
        "routing",
        "policy",
        "model_list",
    }
)


def config_from_mapping(data: Mapping[str, Any], *, base: Path | None = None) -> PonderConfig:
    """A configuration from parsed TOML; ``base``: the directory relative paths start from."""
    top = {k: v for k, v in data.items() if k not in TABLES}
    check_keys("top level", top, {f.name for f in fields(PonderConfig)} | {"model_list"})
    engine_data = dict(data.get("engine", {}))
    check_keys("[engine]", engine_data, {f.name for f in fields(ContextConfig)})
    providers = []
    for name, raw in dict(data.get("providers", {})).items():
        raw = dict(raw)
        key_env = raw.pop("api_key_env", None)
        if key_env is not None:
            raw["api_key"] = os.environ.get(key_env)
        raw["models"] = tuple(raw.get("models", ()))
        check_keys(f"[providers.{name}]", raw, {f.name for f in fields(ProviderConfig)} - {"name"})
        providers.append(ProviderConfig(name=name, **raw))
    for key in ("cache_dir", "auto_profile"):
        if key in top:
            top[key] = Path(top[key]).expanduser()
    if "default_strategy" in top:
        top["default_strategy"] = strategy_choice(top["default_strategy"])
    if "deny_models" in top:
        top["deny_models"] = tuple(top["deny_models"])
    if "effort" in data:
        top["effort"] = {
            **DEFAULT_EFFORT,
            **{k: (v or None) for k, v in dict(data["effort"]).items()},
        }
    if "sandbox" in data:
        top["sandbox"] = parse_sandbox(dict(data["sandbox"]))
    if "prices" in data:
        top["prices"] = parse_prices(dict(data["prices"]))
    deployments = [parse_deployment(dict(raw)) for raw in data.get("deployments", ())]
    routing = parse_routing(dict(data.get("routing", {})))
    if "model_list" in data:
        from ponder.config.litellm import load_model_list

        listed = load_model_list(Path(data["model_list"]).expanduser(), base)
        deployments.extend(listed.deployments)
        routing = listed.merged_into(routing)
    top["deployments"] = tuple(deployments)
    top["routing"] = routing
    if "policy" in data:
        top["policy"] = policy_from_mapping(data["policy"], where="[policy]")
    try:
        return PonderConfig(engine=ContextConfig(**engine_data), providers=tuple(providers), **top)
    except TypeError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
