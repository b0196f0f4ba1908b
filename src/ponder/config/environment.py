"""Configuration from ``PONDER_*`` environment variables, read into the same mapping the TOML
file produces, so that one parser (``config_from_mapping``) validates both.

A key's variable is ``PONDER_`` and its path in the TOML, upper-cased, joined by ``__``::

    PONDER_PORT=9000                           port = 9000
    PONDER_ENGINE__N_CTX=8192                  [engine] n_ctx = 8192
    PONDER_TELEMETRY__OTEL=true                [telemetry] otel = true
    PONDER_PROVIDERS__OPENAI__BASE_URL=...     [providers.openai] base_url = "..."
    PONDER_DENY_MODELS='["gpt-3*"]'            deny_models = ["gpt-3*"]
    PONDER_ROUTING='{"num_retries": 4}'        [routing] num_retries = 4

A value that starts with ``[`` or ``{`` is JSON (lists, and whole tables); any other value
is a string that the parser converts to the key's type (``"8192"``, ``"true"``). Names are
case-insensitive, so a provider set this way has a lower-case name. An empty variable counts
as unset. Precedence: a variable wins over the file, which wins over the defaults; tables
merge key by key, lists are replaced whole.

The reading itself (the prefix, the nesting, JSON for lists and tables, case and empty
values) is pydantic-settings' ``EnvSettingsSource``, over a settings class built from the
configuration's own top-level keys.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError, create_model
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from ponder.config.validation import Origin
from ponder.errors import ConfigError

log = logging.getLogger("ponder.config")

PREFIX = "PONDER_"
DELIMITER = "__"

# Variables Ponder reads that are not configuration keys (the server's own, set by
# `ponder serve` for its workers, and the operator's secrets): never warned about.
OTHER_VARIABLES = frozenset(
    {
        "PONDER_ADMIN_KEY",
        "PONDER_CONFIG",
        "PONDER_PRELOAD",
        "PONDER_LOG_FORMAT",
        "PONDER_LLAMA_VERBOSE",
    }
)

# Keys whose TOML value is a table or a list: their variables nest, or hold JSON.
TABLES = frozenset(
    {"engine", "sandbox", "routing", "policy", "telemetry", "providers", "prices", "effort", "mcp"}
)
LISTS = frozenset({"deployments", "deny_models"})


@dataclass(frozen=True, slots=True)
class EnvironmentLayer:
    """What the environment sets: the TOML-shaped mapping, and each leaf's variable."""

    data: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, Origin] = field(default_factory=dict)


class _Settings(BaseSettings):
    """The base of the settings class: how pydantic-settings reads the variables."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_nested_delimiter=DELIMITER,
        case_sensitive=False,
        env_ignore_empty=True,
        extra="ignore",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The process environment only: no .env file is read behind the operator's back.
        return (env_settings,)


def read_environment(keys: Iterable[str]) -> EnvironmentLayer:
    """The configuration the ``PONDER_*`` variables set, for the top-level ``keys`` (the
    TOML's). Unknown ``PONDER_*`` variables are logged as warnings (a typo must not pass
    silently), not refused: the environment is shared with other programs' settings."""
    known = frozenset(keys)
    variables = _variables(known, os.environ)
    if not variables:
        return EnvironmentLayer()
    # Every value is left as it came (a string, or JSON for a list or table): the one
    # parser converts and checks it, for the file and the environment alike.
    fields: dict[str, Any] = {
        key: (dict[str, Any] | None, None)
        if key in TABLES
        else (list[Any] | None, None)
        if key in LISTS
        else (Any, None)
        for key in known
    }
    settings_cls = create_model("PonderEnvironment", __base__=_Settings, **fields)
    try:
        settings = settings_cls()
    except (SettingsError, ValidationError) as exc:  # a list or table that is not JSON
        bad = (
            {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            if isinstance(exc, ValidationError)
            else {key for key in known if f'"{key}"' in str(exc)}
        )
        names = ", ".join(sorted(var for var, path in variables.items() if path[0] in bad))
        raise ConfigError(
            f"{names or 'a PONDER_ variable'}: not valid JSON; a list or table is written "
            """as JSON, e.g. PONDER_DENY_MODELS='["gpt-3*"]'"""
        ) from exc
    data = _decoded(settings.model_dump(exclude_unset=True), (), variables)
    return EnvironmentLayer(data, _sources(data, variables))


def _variables(keys: frozenset[str], environ: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Each configuration variable set (and not empty), with its key path."""
    found: dict[str, tuple[str, ...]] = {}
    for var, value in environ.items():
        upper = var.upper()
        if not upper.startswith(PREFIX) or upper in OTHER_VARIABLES or value == "":
            continue
        path = tuple(var[len(PREFIX) :].lower().split(DELIMITER))
        if path[0] not in keys:
            log.warning(
                "ignoring %s: no configuration key %r (a key's variable is PONDER_ and its "
                "path, joined by __, e.g. PONDER_ENGINE__N_CTX)",
                var,
                path[0],
            )
            continue
        found[var] = path
    return found


def _decoded(value: Any, path: tuple[str, ...], variables: Mapping[str, tuple[str, ...]]) -> Any:
    """``value`` with every string that starts with ``[`` or ``{`` read as JSON (a list or
    table set below the top level, where pydantic-settings leaves strings as they are)."""
    if isinstance(value, dict):
        return {k: _decoded(v, (*path, k), variables) for k, v in value.items()}
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            var = _variable_for(path, variables)
            raise ConfigError(
                f"{var}: starts like JSON but is not valid JSON ({exc.msg}); write a list "
                "or table as JSON, anything else as plain text"
            ) from exc
    return value


def _variable_for(path: tuple[str, ...], variables: Mapping[str, tuple[str, ...]]) -> str:
    """The variable that set ``path``: the one whose key path is the longest prefix of it."""
    best, best_len = f"{PREFIX}{DELIMITER.join(path).upper()}", -1
    for var, var_path in variables.items():
        if path[: len(var_path)] == var_path and len(var_path) > best_len:
            best, best_len = var, len(var_path)
    return best


def _sources(
    data: Mapping[str, Any], variables: Mapping[str, tuple[str, ...]]
) -> dict[str, Origin]:
    return {
        ".".join(path): Origin("env", _variable_for(path, variables)) for path in leaf_paths(data)
    }


def leaf_paths(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of every value in ``data`` that is not itself a table."""
    out: list[tuple[str, ...]] = []
    for key, value in data.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            out.extend(leaf_paths(value, path))
        else:
            out.append(path)
    return out


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``: tables merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in over.items():
        below = out.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            out[key] = merged(below, value)
        else:
            out[key] = value
    return out
