"""The values of a LiteLLM config, checked: ``os.environ/VAR`` references resolved (the
file's ``environment_variables`` over the process's environment), then read as strings,
numbers or integers, with errors that name the key and never quote a secret value."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any

from ponder.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "as_integer",
    "as_number",
    "as_string",
    "environment",
    "first_set",
    "resolve",
]

log = logging.getLogger("ponder.config")

ENV_PREFIX = "os.environ/"


def environment(value: Any, source: str) -> Mapping[str, str]:
    """The variables ``os.environ/VAR`` reads: the file's environment_variables over the
    process's (as LiteLLM sets them)."""
    if value is None:
        return os.environ
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: environment_variables must be a mapping")
    return {**os.environ, **{str(k): str(v) for k, v in value.items() if v is not None}}


def resolve(
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


def as_string(
    value: Any,
    where: str,
    key: str,
    env: Mapping[str, str],
    *,
    required: bool = False,
    missing_ok: bool = False,
) -> str | None:
    value = resolve(value, where, key, env, missing_ok=missing_ok)
    if value is None or value == "":
        if required:
            raise ConfigError(f"{where}: {key} must be a non-empty string")
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string")
    return value


def as_number(
    value: Any, where: str, key: str, env: Mapping[str, str], *, positive: bool = False
) -> float | None:
    value = resolve(value, where, key, env)
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


def as_integer(
    value: Any, where: str, key: str, env: Mapping[str, str], *, minimum: int = 1
) -> int | None:
    value = resolve(value, where, key, env)
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


def first_set(mapping: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    """The first of ``keys`` set (not None) in ``mapping``, else ``default``."""
    for key in keys:
        if mapping.get(key) is not None:
            return mapping[key]
    return default
