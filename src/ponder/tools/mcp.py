"""MCP servers' tools as :class:`~ponder.tools.base.Tool`\\s, over the official MCP SDK.

This is the SDK's v2 API (``mcp>=2.3``, the ``mcp`` extra): ``mcp.Client`` over
``mcp.client.stdio.stdio_client`` (a command Ponder starts) or
``mcp.client.streamable_http.streamable_http_client`` (a URL). The SDK is imported only when
a server is connected, so a gateway without the extra imports this module and runs; one
with ``[mcp.servers]`` configured and no SDK fails at start-up, naming the extra.

:class:`McpServers` owns one long-lived connection per configured server (the Gateway
opens it at start and closes it at shutdown). Each connection lives in a task of its own,
because the SDK's transports are async context managers whose task groups must be entered
and left by one task; requests share the session, whose calls may come from any task. A
server's tools are listed when it connects and offered as ``NAME__tool``: the server's
name, ``__``, and the tool's (characters outside ``[A-Za-z0-9_-]`` become ``_``), since an
OpenAI function name matches ``^[a-zA-Z0-9_-]{1,64}$`` and so cannot hold ``NAME.tool``.

A call never raises for the server's failures: a timeout (the server's ``timeout``, per
call), a server that crashed, exited or cannot be reached, an error the tool reported
(``isError``) and a result with no text all come back as ``ToolResult(is_error=True)``
with a message the model can read. A connection found closed is dropped and opened again
on the next use (a stdio server is restarted). A server that could not be reached is
retried at most every ``retry_after`` seconds, in the background, so no request waits on
a server that is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from ponder.config.mcp import McpServerConfig
from ponder.config.routing import PolicySettings
from ponder.errors import ConfigError
from ponder.tools.base import Tool, ToolResult, clipped
from ponder.tools.policy import allowed_tools

if TYPE_CHECKING:
    from mcp import Client
    from mcp.client import Transport
    from mcp.types import CallToolResult
    from mcp.types import Tool as ToolSpec

log = logging.getLogger("ponder.tools.mcp")

SEPARATOR = "__"
MAX_NAME = 64  # OpenAI's limit on a function name
ILLEGAL = re.compile(r"[^A-Za-z0-9_-]")
RETRY_AFTER = 10.0
# Connecting (a process started, the handshake, the tool list) may take longer than a call
# should: a stdio server's cold start (an interpreter's imports, ``uvx`` installing it).
CONNECT_TIMEOUT = 20.0
# Past the SDK's own per-call timeout, how long before the connection counts as wedged.
CALL_GRACE = 2.0
# The SDK's stdio shutdown waits up to about 6.5 seconds (stdin closed, SIGTERM, SIGKILL).
CLOSE_GRACE = 10.0
MAX_PAGES = 100  # of a tools/list answer: a server that pages forever cannot hang a start


class Unavailable(Exception):
    """A server could not be connected to (the message says why, for the model too)."""


@dataclass(frozen=True, slots=True, eq=False)
class McpTool:
    """One tool of one server, under its namespaced name."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    remote_name: str  # the server's own name for it
    server: McpServer = field(repr=False)

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        return await self.server.call(self.remote_name, arguments)


@dataclass(frozen=True, slots=True)
class McpToolbox:
    """The MCP tools one request may use. Closing it releases nothing: the connections
    belong to :class:`McpServers`, shared by every request."""

    tools: Sequence[Tool]

    async def aclose(self) -> None:
        return None


class McpServer:
    """One configured server: its connection (opened on demand, dropped when found
    closed) and the tools it listed when last connected."""

    def __init__(self, config: McpServerConfig, *, retry_after: float = RETRY_AFTER) -> None:
        self.config = config
        self.tools: tuple[McpTool, ...] = ()
        self._retry_after = retry_after
        self._client: Client | None = None
        self._owner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()  # one connect or disconnect at a time
        self._failed: tuple[float, str] | None = None  # when the last connect failed, why
        self._background: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def connected(self) -> bool:
        return self._client is not None and self._owner is not None and not self._owner.done()

    async def connect(self) -> Client:
        """The live session, connecting (and listing the tools) first if there is none;
        :class:`Unavailable` if the server cannot be reached, or failed to be too recently."""
        async with self._lock:
            if self._client is not None and self.connected:
                return self._client
            await self._disconnect()
            if self._failed is not None and time.monotonic() - self._failed[0] < self._retry_after:
                raise Unavailable(self._failed[1])
            try:
                client, listed = await self._open()
            except Unavailable as exc:
                self._failed = (time.monotonic(), str(exc))
                log.warning("MCP server %r: %s", self.name, exc)
                raise
            self._failed = None
            self.tools = self._namespaced(listed)
            log.info("MCP server %r: connected, %d tools", self.name, len(self.tools))
            return client

    def connect_soon(self) -> None:
        """Connect in the background, unless connected, connecting or failed too recently."""
        recent = self._failed is not None and time.monotonic() - self._failed[0] < self._retry_after
        if self.connected or recent or (self._background and not self._background.done()):
            return
        self._background = asyncio.create_task(self.try_connect(), name=f"mcp {self.name}")

    async def try_connect(self) -> None:
        """:meth:`connect`, for a caller with no use for the session or the failure."""
        with contextlib.suppress(Unavailable):  # logged by connect; a call says it too
            await self.connect()

    async def call(self, remote: str, arguments: Mapping[str, Any]) -> ToolResult:
        """Call the server's tool ``remote``; every failure of the server's is a result."""
        from mcp import MCPError
        from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        label = f"the tool {remote!r} of the MCP server {self.name!r}"
        details: dict[str, Any] = {"server": self.name, "tool": remote}
        try:
            client = await self.connect()
        except Unavailable as exc:
            return ToolResult(f"{label} is unavailable: {exc}", is_error=True, details=details)
        timeout = self.config.timeout
        started = time.monotonic()
        try:
            # The SDK times the call out itself (and tells the server to cancel it); the
            # outer bound is for a connection so stuck that even that never comes back.
            async with asyncio.timeout(timeout + CALL_GRACE):
                result = await client.call_tool(
                    remote, dict(arguments), read_timeout_seconds=timeout
                )
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                return _timed_out(label, timeout, details)
            if exc.code != CONNECTION_CLOSED:  # the server refused this call (bad arguments)
                return ToolResult(f"{label} failed: {exc.message}", is_error=True, details=details)
            await self.disconnect(client)
            return ToolResult(
                f"{label} failed: the server closed its connection (it crashed or exited); "
                "it is reconnected on the next call",
                is_error=True,
                details=details,
            )
        except TimeoutError:
            await self.disconnect(client)
            return _timed_out(label, timeout, details)
        except Exception as exc:  # the transport's own failure (HTTP, a broken pipe): theirs
            log.warning("MCP server %r: call to %r failed: %s", self.name, remote, describe(exc))
            await self.disconnect(client)
            return ToolResult(
                f"{label} failed: {describe(exc)}; it is reconnected on the next call",
                is_error=True,
                details=details,
            )
        details["seconds"] = round(time.monotonic() - started, 3)
        return as_result(result, label, details)

    async def disconnect(self, client: Client | None = None) -> None:
        """Drop the connection (only if it is still ``client``'s, when given: another call
        may have reconnected already)."""
        async with self._lock:
            if client is None or client is self._client:
                await self._disconnect()

    async def aclose(self) -> None:
        if self._background is not None and not self._background.done():
            self._background.cancel()
            await asyncio.wait({self._background})
        await self.disconnect()

    async def _disconnect(self) -> None:
        owner, self._owner, self._client = self._owner, None, None
        if owner is not None:
            await _stop(owner, self._stop)

    async def _open(self) -> tuple[Client, list[ToolSpec]]:
        """Start the connection's task and list the tools, within CONNECT_TIMEOUT (or the
        server's own timeout, if longer)."""
        ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        owner = asyncio.create_task(self._own(ready, stop), name=f"mcp {self.name}")
        limit = max(self.config.timeout, CONNECT_TIMEOUT)
        try:
            async with asyncio.timeout(limit):
                client = await asyncio.shield(ready)
                listed = await _list_tools(client)
        except BaseException as exc:
            await _stop(owner, stop, cancel=True)
            if isinstance(exc, TimeoutError):
                raise Unavailable(f"no answer within {limit:g} seconds") from exc
            if isinstance(exc, Exception):
                raise Unavailable(describe(exc)) from exc
            raise
        self._client, self._owner, self._stop = client, owner, stop
        return client, listed

    async def _own(self, ready: asyncio.Future[Client], stop: asyncio.Event) -> None:
        """The connection's task: open it, hand the session over, hold it until stopped."""
        from mcp import Client
        from mcp.types import Implementation

        from ponder import __version__

        try:
            async with AsyncExitStack() as stack:
                transport = await self._transport(stack)
                info = Implementation(name="ponder", version=__version__)
                client = await stack.enter_async_context(Client(transport, client_info=info))
                ready.set_result(client)
                await stop.wait()
        except asyncio.CancelledError:
            ready.cancel()
            raise
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            elif not stop.is_set():
                log.warning("MCP server %r: connection ended: %s", self.name, describe(exc))

    async def _transport(self, stack: AsyncExitStack) -> Transport:
        config = self.config
        if config.command is not None:
            from mcp.client.stdio import StdioServerParameters, stdio_client

            params = StdioServerParameters(
                command=config.command, args=list(config.args), env=config.resolved_env() or None
            )
            return stdio_client(params)  # the server's stderr goes to Ponder's
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        assert config.url is not None  # parse_mcp: command or url
        # Headers go on the HTTP client, which the SDK then leaves to its owner to close.
        http = await stack.enter_async_context(
            httpx2.AsyncClient(
                headers=config.resolved_headers(),
                timeout=httpx2.Timeout(config.timeout, read=max(300.0, config.timeout)),
            )
        )
        return streamable_http_client(config.url, http_client=http)

    def _namespaced(self, listed: Iterable[ToolSpec]) -> tuple[McpTool, ...]:
        allowed = self.config.tools
        out: dict[str, McpTool] = {}
        for spec in listed:
            if allowed is not None and not any(fnmatchcase(spec.name, g) for g in allowed):
                continue
            name = self.name + SEPARATOR + ILLEGAL.sub("_", spec.name)
            if len(name) > MAX_NAME or name in out:
                log.warning(
                    "MCP server %r: tool %r left out: %s",
                    self.name,
                    spec.name,
                    f"{name!r} is over {MAX_NAME} characters" if name not in out else "a clash",
                )
                continue
            description = spec.description or spec.title or f"{spec.name} ({self.name})"
            out[name] = McpTool(name, description, spec.input_schema, spec.name, self)
        return tuple(out.values())


class McpServers:
    """Every configured MCP server, and the toolbox a request gets from them."""

    def __init__(
        self, configs: Sequence[McpServerConfig], *, retry_after: float = RETRY_AFTER
    ) -> None:
        if configs and importlib.util.find_spec("mcp") is None:
            raise ConfigError(
                '[mcp.servers] needs the MCP SDK, which is not installed: pip install "ponder[mcp]"'
            )
        names = [c.name for c in configs]
        if len(set(names)) != len(names):
            raise ConfigError(f"[mcp.servers]: a server's name is used twice in {names}")
        self.servers = tuple(McpServer(c, retry_after=retry_after) for c in configs)

    async def start(self) -> None:
        """Connect to every server at once and list its tools. One that cannot be reached
        is logged, not raised (the gateway serves without it), and retried later."""
        await asyncio.gather(*(server.try_connect() for server in self.servers))

    async def toolbox(self, policies: Iterable[PolicySettings] = ()) -> McpToolbox:
        """The tools a request under ``policies`` (its scope's layers) may use: each
        server's listed tools that every policy's ``allow_tools`` allows. A server with no
        tools listed yet (down at start) is connected in the background, for later
        requests; none waits for it."""
        for server in self.servers:
            if not server.tools:
                server.connect_soon()
        tools = [tool for server in self.servers for tool in server.tools]
        return McpToolbox(tuple(allowed_tools(tools, policies)))

    async def aclose(self) -> None:
        await asyncio.gather(*(server.aclose() for server in self.servers))

    async def __aenter__(self) -> McpServers:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def as_result(result: CallToolResult, label: str, details: Mapping[str, Any]) -> ToolResult:
    """The text a model reads from a tool's result: its text blocks joined, else its
    structured content as JSON; a result with neither (an image alone) is an error, since
    it cannot reach a text model."""
    texts = [block.text for block in result.content if block.type == "text"]
    others = sorted({block.type for block in result.content if block.type != "text"})
    if texts:
        output = "\n".join(texts)
        if others:
            output += f"\n[{', '.join(others)} content left out: only text is shown]"
    elif result.structured_content is not None:
        output = json.dumps(result.structured_content, ensure_ascii=False)
    elif others:
        return ToolResult(
            f"{label} returned only {', '.join(others)} content, which cannot be shown as text",
            is_error=True,
            details=details,
        )
    else:
        output = ""
    output = clipped(output)
    if result.is_error:
        return ToolResult(
            f"{label} reported an error: {output or 'no message'}", is_error=True, details=details
        )
    return ToolResult(output, details=details)


def describe(exc: BaseException) -> str:
    """One line for an exception, or for each leaf of an exception group."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in exc.exceptions)
    return str(exc) or type(exc).__name__


async def _list_tools(client: Client) -> list[ToolSpec]:
    listed: list[ToolSpec] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        listed.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return listed


async def _stop(owner: asyncio.Task[None], stop: asyncio.Event, *, cancel: bool = False) -> None:
    """End a connection's task: let it close its transport (stopping a stdio server's
    process), and cancel it if that takes too long or ``cancel`` says not to wait."""
    stop.set()
    if not cancel:
        await asyncio.wait({owner}, timeout=CLOSE_GRACE)
    if not owner.done():
        owner.cancel()
        await asyncio.wait({owner})


def _timed_out(label: str, timeout: float, details: Mapping[str, Any]) -> ToolResult:
    return ToolResult(
        f"{label} timed out after {timeout:g} seconds", is_error=True, details=details
    )
