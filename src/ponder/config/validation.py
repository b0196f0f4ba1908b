"""Typed construction of the configuration's dataclasses, and where each value came from.

One validator checks every value, whether it came from the TOML file or from a ``PONDER_*``
environment variable: pydantic, in its lax mode, over the dataclasses themselves. Lax mode
reads the strings an environment holds (``"8192"``, ``"false"``) as the numbers and booleans
a TOML file writes directly, and refuses what is neither (``port = "web"``). Its errors
become :class:`~ponder.errors.ConfigError`\\s that name the key, where the value came from
(the file, or the variable to fix) and what to do; values of secret keys are never quoted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import TypeAdapter, ValidationError

from ponder.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a setting's value came from: the built-in default, a configuration file (its
    path), or an environment variable (its name)."""

    kind: Literal["default", "file", "env"]
    name: str = ""

    def describe(self) -> str:
        return {"default": "default", "file": f"file {self.name}", "env": f"env {self.name}"}[
            self.kind
        ]


DEFAULT = Origin("default")

# Dotted key ("engine.n_ctx", "providers.openai.base_url") -> where its value came from.
Sources = Mapping[str, Origin]

# What to write when a required key is missing.
HINTS = {
    "base_url": 'the endpoint\'s OpenAI-compatible URL, e.g. base_url = "http://127.0.0.1:8000/v1"',
    "model_name": "the public name clients use for this deployment",
    "model": "the endpoint's id for the model (or a bundled model's name)",
}

# Keys whose values are secrets: named in errors, never quoted.
SECRET_PARTS = ("key", "secret", "password", "token", "database_url")


def origin_of(sources: Sources | None, dotted: str) -> Origin:
    """The origin of ``dotted``, or of the nearest table above it that has one (a whole table
    set by one variable holding JSON)."""
    if sources:
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            found = sources.get(".".join(parts[:end]))
            if found is not None:
                return found
    return DEFAULT


def secret(key: str) -> bool:
    last = key.rsplit(".", 1)[-1].lower()
    return any(part in last for part in SECRET_PARTS)


def build(
    cls: type[T],
    data: Mapping[str, Any],
    *,
    where: str,
    prefix: str = "",
    sources: Sources | None = None,
) -> T:
    """``cls(**data)``, each value checked against the field's type (and converted from an
    environment variable's string); ``where`` names the table in errors (``"[engine]"``),
    ``prefix`` is its dotted key, to find where a bad value came from in ``sources``."""
    # A TypeAdapter per call: building one costs tens of milliseconds, and configuration is
    # read once per process; caching it would be module-level state for no gain.
    try:
        return TypeAdapter(cls).validate_python(dict(data))
    except ValidationError as exc:
        raise ConfigError(describe(exc, where=where, prefix=prefix, sources=sources)) from exc


def describe(
    exc: ValidationError, *, where: str, prefix: str = "", sources: Sources | None = None
) -> str:
    """One line per problem, each naming the key, its origin and the fix."""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        key = loc[0] if loc else "?"
        dotted = f"{prefix}.{key}" if prefix else key
        if error["type"] == "missing":
            hint = HINTS.get(key)
            lines.append(f"{where} needs {key}".strip() + (f": {hint}" if hint else ""))
            continue
        origin = origin_of(sources, dotted)
        shown = "" if secret(dotted) else f", not {error.get('input')!r}"
        lines.append(
            f"{where} {'.'.join(loc)}: {error['msg'].lower()}{shown}{_from(origin, dotted)}".strip()
        )
    return "; ".join(lines)


def _from(origin: Origin, dotted: str) -> str:
    if origin.kind == "env":
        return f" (set by the environment variable {origin.name}: fix or unset it)"
    if origin.kind == "file":
        return f" (in {origin.name}: fix {dotted})"
    return ""


def check_range(
    where: str,
    built: object,
    bounds: Mapping[str, tuple[float, float | None]],
    *,
    prefix: str = "",
    sources: Sources | None = None,
) -> None:
    """Fields of ``built`` (made by :func:`build`, so already numbers) that must lie within
    their bounds (low, and high or None): a port, a context size."""
    for key, (low, high) in bounds.items():
        value = getattr(built, key)
        if isinstance(value, int | float) and (value < low or (high is not None and value > high)):
            dotted = f"{prefix}.{key}" if prefix else key
            span = f"at least {low:g}" if high is None else f"between {low:g} and {high:g}"
            raise ConfigError(
                f"{where} {key}".strip()
                + f" must be {span}, not {value!r}{_from(origin_of(sources, dotted), dotted)}"
            )
