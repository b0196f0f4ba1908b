"""The ``[mcp.servers.NAME]`` tables: MCP servers whose tools an agent loop may call.

A server is either a command Ponder starts and talks to over stdio, or a URL it reaches
over streamable HTTP::

    [mcp.servers.files]
    command = "uvx"
    args = ["mcp-server-filesystem", "/srv/data"]
    env = { API_TOKEN = "env:FILES_TOKEN" }    # a value from Ponder's environment
    timeout = 10                               # seconds per call (default 30)
    tools = ["read_*", "list_directory"]       # only these (globs); default: all

    [mcp.servers.github]
    url = "https://mcp.example.com/mcp"
    headers = { X-Team = "research" }
    headers_env = { Authorization = "GITHUB_MCP_AUTH" }   # = "env:GITHUB_MCP_AUTH"

A value written ``env:VAR`` (or a ``headers_env`` entry, which is the same thing) is read
from the variable when Ponder connects, not when the file is read, so the configuration (and
``ponder config show``) holds the variable's name, never the secret; an unset one is warned
about at start-up, as a provider's ``api_key_env`` is. The variable holds the whole value
(``Bearer ...`` for an Authorization header). Every variable form of configuration works
here too: ``PONDER_MCP__SERVERS__GITHUB__URL=...`` (names are then lower-case).

A server's name namespaces its tools for the model (``github__search``), so it is letters,
digits, ``-`` and single ``_`` (OpenAI function names allow no dots, and ``__`` is the
separator).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ponder.config.tables import check_keys
from ponder.config.validation import Sources, build
from ponder.errors import ConfigError

log = logging.getLogger("ponder.config")

FROM_ENV = "env:"
DEFAULT_TIMEOUT = 30.0
# Letters, digits and "-", with single "_" between them: the name and "__" then make a
# legal OpenAI function name whose server part is unambiguous.
NAME = re.compile(r"[A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)*")
KEYS = {"command", "args", "env", "url", "headers", "headers_env", "timeout", "tools", "local"}


@dataclass(frozen=True, slots=True, kw_only=True)
class McpServerConfig:
    """One MCP server: ``command`` (stdio) or ``url`` (streamable HTTP), never both.
    ``env`` and ``headers`` values are literal, or ``env:VAR`` (read at connect time:
    :meth:`resolved_env`, :meth:`resolved_headers`). ``tools``: globs of the server's own
    tool names it may offer (None: all of them)."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    tools: tuple[str, ...] | None = None
    # Whether what a tool is sent stays on machines the operator trusts as local (as a
    # deployment's ``local``): a request under local-only or redaction may use only such
    # servers. None: a stdio server (a process on this machine) is local, a URL is not.
    local: bool | None = None

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command is not None else "http"

    @property
    def is_local(self) -> bool:
        return self.local if self.local is not None else self.command is not None

    def resolved_env(self) -> dict[str, str]:
        """The variables the server's process gets, ``env:`` values read now."""
        return resolve(self.env, f"[mcp.servers.{self.name}] env")

    def resolved_headers(self) -> dict[str, str]:
        """The headers every HTTP request carries, ``env:`` values read now."""
        return resolve(self.headers, f"[mcp.servers.{self.name}] headers")


def resolve(values: Mapping[str, str], where: str) -> dict[str, str]:
    """``values`` with each ``env:VAR`` replaced by the variable's value; an unset one is a
    :class:`ConfigError` (a server must not be called without the secret it was given)."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if value.startswith(FROM_ENV):
            variable = value[len(FROM_ENV) :]
            found = os.environ.get(variable)
            if not found:
                raise ConfigError(f"{where} {key}: the environment variable {variable} is not set")
            value = found
        out[key] = value
    return out


def parse_mcp(
    data: Mapping[str, Any], sources: Sources | None = None
) -> tuple[McpServerConfig, ...]:
    """The servers of an ``[mcp]`` table (``{"servers": {NAME: {...}}}``); every mistake is a
    :class:`ConfigError` naming its key."""
    if not isinstance(data, Mapping):
        raise ConfigError("[mcp] must be a table, with a [mcp.servers.NAME] table per server")
    check_keys("[mcp]", data, {"servers"})
    servers = data.get("servers", {})
    if not isinstance(servers, Mapping):
        raise ConfigError("[mcp] servers must be a table of [mcp.servers.NAME] tables")
    return tuple(_server(str(name), raw, sources) for name, raw in servers.items())


def _server(name: str, raw: Any, sources: Sources | None) -> McpServerConfig:
    where = f"[mcp.servers.{name}]"
    if not NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: a server's name is letters, digits, '-' and single '_' (it prefixes "
            "its tools' names, joined by '__')"
        )
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table with command (stdio) or url (HTTP)")
    raw = dict(raw)
    check_keys(where, raw, KEYS)
    command, url = raw.get("command"), raw.get("url")
    if (command is None) == (url is None):
        raise ConfigError(f"{where} needs command (a stdio server) or url (HTTP), not both")
    if command is not None:
        if not isinstance(command, str) or not command:
            raise ConfigError(f"{where} command must be a non-empty string")
        for key in ("headers", "headers_env"):
            if key in raw:
                raise ConfigError(f"{where} {key}: only an HTTP server (url) takes headers")
    else:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where} url must be an http:// or https:// URL")
        for key in ("args", "env"):
            if key in raw:
                raise ConfigError(f"{where} {key}: only a stdio server (command) takes {key}")
    if "args" in raw:
        raw["args"] = _strings(raw["args"], f"{where} args")
    if "env" in raw:
        raw["env"] = _values(raw["env"], f"{where} env")
    headers = _values(raw.pop("headers", {}), f"{where} headers")
    for header, variable in _values(raw.pop("headers_env", {}), f"{where} headers_env").items():
        if header in headers:
            raise ConfigError(f"{where} headers_env: {header} is in headers too; set it once")
        if variable.startswith(FROM_ENV):  # "env:VAR" here too, though a bare name is meant
            variable = variable[len(FROM_ENV) :]
        _check_variable(variable, f"{where} headers_env {header}")
        headers[header] = FROM_ENV + variable
    if url is not None:
        raw["headers"] = headers
    if raw.get("tools") is not None:
        raw["tools"] = _strings(raw["tools"], f"{where} tools")
        if not all(raw["tools"]):
            raise ConfigError(f"{where} tools: a tool name (or glob) is never empty")
    server = build(
        McpServerConfig,
        {**raw, "name": name},
        where=where,
        prefix=f"mcp.servers.{name}",
        sources=sources,
    )
    if not server.timeout > 0:
        raise ConfigError(f"{where} timeout must be a positive number of seconds")
    _warn_unset(server, where)
    return server


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ConfigError(f"{where} must be a list of strings")
    if not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings")
    return tuple(value)


def _values(value: Any, where: str) -> dict[str, str]:
    """A table of strings; an ``env:`` value must name a variable."""
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"{where} must be a table of strings")
    for key, text in value.items():
        if text.startswith(FROM_ENV):
            _check_variable(text[len(FROM_ENV) :], f"{where} {key}")
    return dict(value)


def _check_variable(variable: str, where: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", variable):
        raise ConfigError(f"{where} must name an environment variable, not {variable!r}")


def _warn_unset(server: McpServerConfig, where: str) -> None:
    """Warn of unset variables now, as a provider's ``api_key_env`` does: the same file
    serves commands that never connect, so this is not an error until a connection."""
    for table in (server.env, server.headers):
        for key, value in table.items():
            variable = value[len(FROM_ENV) :] if value.startswith(FROM_ENV) else None
            if variable is not None and not os.environ.get(variable):
                log.warning(
                    "%s %s comes from %s, which is not set: the server cannot be reached "
                    "until it is",
                    where,
                    key,
                    variable,
                )
