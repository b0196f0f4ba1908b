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

from ponder.backends.endpoint import EndpointConfig
from ponder.engine.llama_model import ContextConfig
from ponder.engine.weights import DEFAULT_MODEL
from ponder.errors import ConfigError
from ponder.reasoning.selection import DEFAULT_EFFORT
from ponder.sandbox.settings import SandboxSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderConfig(EndpointConfig):
    """An endpoint and the models it serves, addressed as ``NAME/MODEL``."""

    name: str
    models: tuple[str, ...] = ()


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
    # SQLite file for traces; ":memory:" keeps them in the process only.
    trace_db: str | None = None
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
    top = {k: v for k, v in data.items() if k not in {"engine", "providers", "effort", "sandbox"}}
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
    try:
        return PonderConfig(engine=ContextConfig(**engine_data), providers=tuple(providers), **top)
    except TypeError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc


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
