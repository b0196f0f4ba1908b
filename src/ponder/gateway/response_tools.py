"""The tools a Responses request runs on the server, opened for that request: the built-in
tools it named (:mod:`ponder.tools.builtin`) and the tools of the configured MCP servers it
named (``{"type": "mcp", "server_label": NAME}``, :mod:`ponder.tools.mcp`), as one
:class:`~ponder.tools.builtin.RequestToolbox` the agent loop calls and closes with the
request.

What the caller may use is decided by the ``allow_tools`` globs of every policy it is under
(the operator's, its team's, its key's: :func:`~ponder.tools.policy.tool_allowed`), on the
names the model sees (``python``, ``calculator``, ``NAME__tool``):

* an MCP server's tools the policies do not allow are not offered (the request named a
  server, a set of tools the policies narrow), nor are those outside its ``allowed_tools``;
* a built-in tool the request named and the policies do not allow is a 403: the client
  asked for that tool by name, and answering without it would be a silent difference.

A ``server_label`` that is not configured is a 400. A configured server that is down is no
error: its tools are not offered, the model answers without them, and the response says so
in that server's ``mcp_list_tools`` item (its ``error``), OpenAI's report of what a server
offered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ponder.errors import InvalidRequestError, PolicyError
from ponder.gateway.identity import Caller
from ponder.gateway.response_items import new_id
from ponder.gateway.response_request import McpSpec, builtin_specs, mcp_specs
from ponder.gateway.service import Gateway
from ponder.protocol.response_tools import McpToolInfo, OutputMcpListTools
from ponder.protocol.responses import ResponsesRequest
from ponder.routing.policy import Scope
from ponder.tools.base import Tool, as_function_tool
from ponder.tools.builtin import RequestToolbox, open_toolbox
from ponder.tools.calculator import CalculatorTool
from ponder.tools.mcp import McpServers, McpTool, McpToolbox
from ponder.tools.policy import tool_allowed


@dataclass(frozen=True, slots=True)
class RequestTools:
    """A request's open toolbox, the ``mcp_list_tools`` items its response starts with,
    and notes for its first turn's ledger row (a server that was down)."""

    toolbox: RequestToolbox
    listed: tuple[OutputMcpListTools, ...] = ()
    notes: tuple[str, ...] = ()


async def open_tools(
    gateway: Gateway, request: ResponsesRequest, caller: Caller, *, local_only: bool = False
) -> RequestTools | None:
    """The toolbox of the server-side tools ``request`` names (None: it names none), ready
    to run; nothing has been spent if this raises."""
    builtin, servers = builtin_specs(request), mcp_specs(request)
    if not builtin and not servers:
        return None
    scope = caller.scope(gateway.registry.scope, local_only=local_only)
    toolbox = open_toolbox(
        [(where, spec.model_dump(exclude_none=True)) for where, spec in builtin],
        gateway.services.sandbox,
    )
    for (where, _), tool in zip(builtin, toolbox.tools, strict=True):
        _check_builtin(tool, scope, where)
    listed: list[OutputMcpListTools] = []
    notes: list[str] = []
    if servers:
        mcp = await _mcp_toolbox(gateway.mcp, servers, scope)
        try:
            offered: list[Tool] = []
            for spec in servers:
                tools, item = _offered(gateway.mcp, mcp, spec)
                offered.extend(tools)
                listed.append(item)
                if item.error is not None:
                    notes.append(f"mcp {spec.label}: unavailable")
            toolbox = toolbox.joined(mcp, offered)
        except BaseException:
            await mcp.aclose()
            raise
    _refuse_clashes(request, toolbox)
    try:
        # A sandbox that cannot run is the operator's to fix, not the model's: a 400
        # (SandboxUnavailableError) now, before any token is spent.
        await toolbox.ready()
    except BaseException:
        await toolbox.aclose()
        raise
    return RequestTools(toolbox, tuple(listed), tuple(notes))


def _check_builtin(tool: Tool, scope: Scope, where: str) -> None:
    for layer in scope.layers:
        if not tool_allowed(tool.name, (layer.policy,)):
            raise PolicyError(
                f"{where}: the tool {tool.name!r} is not in the allow_tools of the {layer.label} "
                "policy",
                param=where,
            )


async def _mcp_toolbox(mcp: McpServers, specs: Sequence[McpSpec], scope: Scope) -> McpToolbox:
    configured = {server.name for server in mcp.servers}
    for spec in specs:
        if spec.label not in configured:
            names = ", ".join(sorted(configured)) or "none"
            raise InvalidRequestError(
                f"{spec.where}.server_label: no MCP server {spec.label!r} is configured "
                f"(configured: {names})",
                param=f"{spec.where}.server_label",
            )
        server = next(s for s in mcp.servers if s.name == spec.label)
        if (scope.local_only or scope.redact) and not server.config.is_local:
            # Tool arguments are written from the conversation: under local-only, or where
            # personal data must not leave, they may not go to a server that is not local.
            raise PolicyError(
                f"{spec.where}: the MCP server {spec.label!r} is not local, and this request "
                "is local-only or redacted (set local = true on the server if it is)",
                param=f"{spec.where}.server_label",
            )
    return await mcp.toolbox([layer.policy for layer in scope.layers])


def _offered(
    mcp: McpServers, box: McpToolbox, spec: McpSpec
) -> tuple[list[McpTool], OutputMcpListTools]:
    """The tools of ``spec``'s server the request is offered (the policies already applied
    by the toolbox), and the ``mcp_list_tools`` item that reports them."""
    server = next(s for s in mcp.servers if s.name == spec.label)
    tools = [
        t
        for t in box.tools
        if isinstance(t, McpTool)
        and t.server is server
        and (spec.allowed is None or t.remote_name in spec.allowed or t.name in spec.allowed)
    ]
    error = None
    if not server.tools and not server.connected:
        error = (
            f"the MCP server {spec.label!r} is unavailable, so its tools were not offered "
            "(Ponder retries it in the background)"
        )
    item = OutputMcpListTools(
        id=new_id("mcpl"),
        server_label=spec.label,
        tools=[
            McpToolInfo(
                name=t.remote_name, input_schema=dict(t.parameters), description=t.description
            )
            for t in tools
        ],
        error=error,
    )
    return tools, item


def _refuse_clashes(request: ResponsesRequest, toolbox: RequestToolbox) -> None:
    """A client function with the name of a tool Ponder runs is a 400: the model could not
    tell them apart, and Ponder would not know whose call it is."""
    mine = {t.name for t in toolbox.tools}
    for k, tool in enumerate(request.tools or ()):
        if tool.type == "function" and tool.name in mine:
            raise InvalidRequestError(
                f"tools[{k}]: the function {tool.name!r} has the name of a tool Ponder runs",
                param=f"tools[{k}]",
            )


def echoed(tool: dict[str, Any]) -> dict[str, Any]:
    """A tools entry as the response echoes it, in a shape OpenAI's SDK parses: the python
    tool as OpenAI's code interpreter, the calculator as the function tool the model saw
    (an mcp entry is OpenAI's own shape, echoed as sent)."""
    kind = tool.get("type")
    if kind in ("python", "code_interpreter"):
        return {"type": "code_interpreter", "container": {"type": "auto"}}
    if kind == "calculator":
        return {
            "type": "function",
            "strict": False,
            **as_function_tool(CalculatorTool())["function"],
        }
    return tool
