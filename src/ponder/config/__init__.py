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

import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ponder.config.environment import leaf_paths, merged, read_environment
from ponder.config.mcp import McpServerConfig, parse_mcp
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
    TelemetrySettings,
    api_key_from,
    check_keys,
    parse_prices,
    parse_sandbox,
    parse_telemetry,
    strategy_choice,
)
from ponder.config.validation import Origin, Sources, build, check_range
from ponder.errors import ConfigError

__all__ = [
    "DEFAULT_EFFORT",
    "DEFAULT_MODEL",
    "ContextConfig",
    "DeploymentConfig",
    "EndpointConfig",
    "LoadedConfig",
    "McpServerConfig",
    "Origin",
    "PolicyRule",
    "PolicySettings",
    "PonderConfig",
    "Price",
    "ProviderConfig",
    "RoutingSettings",
    "RoutingStrategyName",
    "SandboxMode",
    "SandboxSettings",
    "TelemetrySettings",
    "config_from_mapping",
    "load_config",
    "load_layers",
    "policy_as_mapping",
    "policy_from_mapping",
]

log = logging.getLogger("ponder.config")

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
    # The longest any request may run, in seconds (None: no bound). A client may ask for
    # less per request (X-Ponder-Timeout); past it, the work is cancelled, what it spent is
    # recorded, and the client gets 504 (or an error event, once a stream has begun).
    request_timeout: float | None = None
    # Where each server process journals what its requests in flight have spent, so a
    # killed process's requests are recorded when a server starts again (see
    # ponder.gateway.journal); None: beside the SQLite file, or in the user state directory.
    journal_dir: str | None = None
    # How model-written programs are isolated ([sandbox]); see docs/security.md.
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    # OpenTelemetry spans ([telemetry]); off unless asked for, and only with the otel extra.
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    # MCP servers whose tools an agent loop may call ([mcp.servers.NAME]; ponder.config.mcp).
    mcp_servers: tuple[McpServerConfig, ...] = ()

    def replace(self, **changes: Any) -> PonderConfig:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """The effective configuration, and where each value set came from (dotted key ->
    :class:`Origin`; a key absent from ``sources`` has its default)."""

    config: PonderConfig
    sources: Mapping[str, Origin]
    path: Path | None = None

    def origin(self, dotted: str) -> Origin:
        from ponder.config.validation import origin_of

        return origin_of(self.sources, dotted)


def load_config(path: Path | None, *, environment: bool = True) -> PonderConfig:
    """The configuration: ``PONDER_*`` environment variables over the TOML file at ``path``
    over the defaults (``path=None``: no file; ``environment=False``: no variables)."""
    return load_layers(path, environment=environment).config


def load_layers(path: Path | None, *, environment: bool = True) -> LoadedConfig:
    """:func:`load_config`, keeping where each value came from (``ponder config show``)."""
    data: dict[str, Any] = {}
    sources: dict[str, Origin] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
        file = Origin("file", str(path))
        sources = {".".join(p): file for p in leaf_paths(data)}
    if environment:
        layer = read_environment(TOP_KEYS | TABLES)
        data = merged(data, layer.data)
        sources.update(layer.sources)
    config = config_from_mapping(
        data, base=path.parent if path is not None else None, sources=sources
    )
    for provider in data.get("providers", {}) if isinstance(data.get("providers"), Mapping) else ():
        raw = data["providers"][provider]
        if isinstance(raw, Mapping) and isinstance(raw.get("api_key_env"), str):
            # The key itself comes from the variable the table names.
            sources[f"providers.{provider}.api_key"] = Origin("env", raw["api_key_env"])
    return LoadedConfig(config, sources, path)


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
        "telemetry",
        "model_list",
        "mcp",
    }
)
# Fields set by a table of another name: mcp_servers by [mcp].
FROM_TABLES = frozenset({"mcp_servers"})
# Keys set by plain values at the top level of the file.
TOP_KEYS = frozenset(f.name for f in fields(PonderConfig)) - TABLES - FROM_TABLES - {"engine"}
TOP_KEYS |= {"model_list"}

# Numbers' bounds (low, high or None), by table: a value out of them would fail later, far
# from its cause.
RANGES: Mapping[str, Mapping[str, tuple[float, float | None]]] = {
    "": {
        "max_n": (1, None),
        "port": (0, 65535),
        "max_body_bytes": (1, None),
        "shutdown_grace_seconds": (0, None),
        "request_timeout": (0.001, None),
    },
    "engine": {
        "n_ctx": (1, None),
        "n_batch": (1, None),
        "n_seq_max": (1, None),
        "default_max_tokens": (1, None),
        "max_waiting": (1, None),
        "max_queue_seconds": (0, None),
    },
}


def config_from_mapping(
    data: Mapping[str, Any], *, base: Path | None = None, sources: Sources | None = None
) -> PonderConfig:
    """A configuration from parsed TOML (merged with the environment's variables, by
    :func:`load_layers`); ``base``: the directory relative paths start from; ``sources``:
    where each value came from, named in errors. Every problem is a :class:`ConfigError`."""
    top = {k: v for k, v in data.items() if k not in TABLES}
    check_keys("top level", top, {f.name for f in fields(PonderConfig)} - TABLES - FROM_TABLES)
    engine_data = _table(data, "engine")
    check_keys("[engine]", engine_data, {f.name for f in fields(ContextConfig)})
    engine = build(ContextConfig, engine_data, where="[engine]", prefix="engine", sources=sources)
    check_range("[engine]", engine, RANGES["engine"], prefix="engine", sources=sources)
    providers = [_provider(name, raw, sources) for name, raw in _table(data, "providers").items()]
    for key in ("cache_dir", "auto_profile"):
        if isinstance(top.get(key), str):
            top[key] = Path(top[key]).expanduser()
    if "default_strategy" in top:
        top["default_strategy"] = strategy_choice(top["default_strategy"])
    if "effort" in data:
        top["effort"] = {
            **DEFAULT_EFFORT,
            **{k: (v or None) for k, v in _table(data, "effort").items()},
        }
    if "sandbox" in data:
        top["sandbox"] = parse_sandbox(_table(data, "sandbox"), sources)
    if "telemetry" in data:
        top["telemetry"] = parse_telemetry(_table(data, "telemetry"), sources)
    if "prices" in data:
        top["prices"] = parse_prices(_table(data, "prices"))
    if "mcp" in data:
        top["mcp_servers"] = parse_mcp(_table(data, "mcp"), sources)
    raw_deployments = data.get("deployments", ())
    if not isinstance(raw_deployments, list | tuple) or not all(
        isinstance(d, Mapping) for d in raw_deployments
    ):
        raise ConfigError("deployments must be a list of tables ([[deployments]] in TOML)")
    deployments = [parse_deployment(dict(raw), sources) for raw in raw_deployments]
    routing = parse_routing(_table(data, "routing"), sources)
    if "model_list" in data:
        from ponder.config.litellm import load_model_list

        if not isinstance(data["model_list"], str):
            raise ConfigError("model_list must be the path of a LiteLLM config file")
        listed = load_model_list(Path(data["model_list"]).expanduser(), base)
        deployments.extend(listed.deployments)
        routing = listed.merged_into(routing)
    top["deployments"] = tuple(deployments)
    top["routing"] = routing
    if "policy" in data:
        policy = _table(data, "policy")
        for key in ("local_only", "redact"):  # as a variable sets them: "true", "false"
            if isinstance(policy.get(key), str) and policy[key].lower() in ("true", "false"):
                policy[key] = policy[key].lower() == "true"
        top["policy"] = policy_from_mapping(policy, where="[policy]")
    config = build(
        PonderConfig,
        {"engine": engine, "providers": tuple(providers), **top},
        where="",
        sources=sources,
    )
    check_range("", config, RANGES[""], sources=sources)
    return config


def _table(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``data[key]`` as a table (empty when absent)."""
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{key} must be a table ([{key}] in TOML, or JSON in PONDER_{key.upper()}), "
            f"not {type(value).__name__}"
        )
    return dict(value)


def _provider(name: str, raw: Any, sources: Sources | None) -> ProviderConfig:
    where = f"[providers.{name}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table with base_url (and api_key_env, models)")
    raw = dict(raw)
    key_env = raw.pop("api_key_env", None)
    if key_env is not None:
        raw["api_key"] = api_key_from(key_env, where)
    check_keys(where, raw, {f.name for f in fields(ProviderConfig)} - {"name"})
    return build(
        ProviderConfig,
        {**raw, "name": name},
        where=where,
        prefix=f"providers.{name}",
        sources=sources,
    )
