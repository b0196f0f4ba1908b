"""``ponder config show``: the effective configuration, each value with where it came from
(its default, the TOML file, or the ``PONDER_*`` variable that set it), secrets masked: API
keys, the admin key, headers and servers' environments, and the credentials in URLs."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import click

from ponder.config import LoadedConfig, PonderConfig, load_layers
from ponder.config.environment import leaf_paths
from ponder.errors import PonderError

MASK = "****"
ADMIN_KEY_ENV = "PONDER_ADMIN_KEY"


def plain(value: Any) -> Any:
    """``value`` as JSON-like data: dataclasses as tables, tuples as lists, paths as text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def config_table(config: PonderConfig) -> dict[str, Any]:
    """The configuration in the TOML's shape (providers keyed by name, as the file writes
    them), secrets masked."""
    table = plain(config)
    table["providers"] = {
        p["name"]: {k: v for k, v in p.items() if k != "name"} for p in table["providers"]
    }
    masked = masked_secrets(table)
    assert isinstance(masked, dict)
    return masked


# Tables whose every value may be a secret (an Authorization header, a token in a server's
# environment); an "env:VAR" reference names a variable and is shown as it is.
SECRET_TABLES = frozenset({"headers", "env"})


def masked_secrets(value: Any, key: str = "", parent: str = "") -> Any:
    """``value`` with every API key, header and server environment value replaced by a mask,
    and the credentials and query of URLs hidden."""
    if isinstance(value, Mapping):
        return {k: masked_secrets(v, k, key) for k, v in value.items()}
    if isinstance(value, list):
        return [masked_secrets(v, key, parent) for v in value]
    if value is None or value == "":
        return value
    if parent in SECRET_TABLES:
        return value if isinstance(value, str) and value.startswith("env:") else MASK
    if key.endswith("api_key") or key == "admin_key":
        return MASK
    if key == "database_url" and isinstance(value, str):
        return masked_url(value)
    if key.endswith("url") and isinstance(value, str):
        return masked_web_url(value)
    return value


def masked_web_url(url: str) -> str:
    """An endpoint's URL without its user info and query values (either may hold a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    if parts.username or parts.password:
        host = f"{MASK}@{host}"
    query = "&".join(f"{name}={MASK}" for name, _ in parse_qsl(parts.query, True))
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def masked_url(url: str) -> str:
    """A database URL with its password hidden (SQLAlchemy parses it as it will connect)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        # Not a URL SQLAlchemy reads (the server will say so): show none of it.
        return MASK


def rows(loaded: LoadedConfig) -> list[tuple[str, Any, str]]:
    """(dotted key, masked value, origin) for every setting, then the admin key's."""
    table = config_table(loaded.config)
    out = []
    for path in leaf_paths(table):
        value: Any = table
        for part in path:
            value = value[part]
        dotted = ".".join(path)
        out.append((dotted, value, loaded.origin(dotted).describe()))
    admin = os.environ.get(ADMIN_KEY_ENV)
    out.append(("admin_key", MASK if admin else None, f"env {ADMIN_KEY_ENV}" if admin else "unset"))
    return out


@click.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: key -> value, origin.")
@click.pass_context
def show(ctx: click.Context, as_json: bool) -> None:
    """Print the effective configuration and where each value came from: default, the
    file (--config), or an environment variable. Precedence: PONDER_* variables over the
    file over the defaults. API keys, the admin key and database passwords are masked."""
    path = ctx.meta.get("config_path")
    try:
        loaded = load_layers(Path(path) if path else None)
    except PonderError as exc:
        raise click.ClickException(exc.message) from exc
    found = rows(loaded)
    if as_json:
        payload = {key: {"value": value, "origin": origin} for key, value, origin in found}
        click.echo(json.dumps(payload, indent=2, default=str))
        return
    width = max(len(key) for key, _, _ in found)
    for key, value, origin in found:
        click.echo(f"{key:<{width}} = {json.dumps(value, default=str)}  # {origin}")
