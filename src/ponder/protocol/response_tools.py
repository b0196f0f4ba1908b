"""The Responses API items of tools that Ponder runs on the server (the built-in python
tool and configured MCP servers' tools): as output items, and as input items a client sends
back (the Agents SDK re-sends a response's output without ``previous_response_id``).
Input items are read leniently, as in :mod:`ponder.protocol.responses`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


ItemStatus = Literal["in_progress", "completed", "incomplete"]


# -- output items ----------------------------------------------------------------------------
class CodeLogs(BaseModel):
    type: Literal["logs"] = "logs"
    logs: str


class OutputCodeInterpreterCall(BaseModel):
    """A program the python built-in tool ran in Ponder's sandbox (OpenAI's item shape)."""

    type: Literal["code_interpreter_call"] = "code_interpreter_call"
    id: str
    code: str | None
    container_id: str
    outputs: list[CodeLogs] | None = None
    status: Literal["in_progress", "completed", "incomplete", "interpreting", "failed"] = (
        "completed"
    )


class OutputFunctionCallOutput(BaseModel):
    """What a built-in tool Ponder ran returned for ``call_id`` (the model's call of it is
    the ``function_call`` item before this one)."""

    type: Literal["function_call_output"] = "function_call_output"
    id: str
    call_id: str
    output: str
    status: ItemStatus = "completed"


class OutputMcpCall(BaseModel):
    """A call of a configured MCP server's tool that Ponder ran: ``name`` is the server's
    own name for the tool; ``error`` (OpenAI's ``mcp_tool_execution_error``) replaces
    ``output`` when the call failed."""

    type: Literal["mcp_call"] = "mcp_call"
    id: str
    server_label: str
    name: str
    arguments: str
    output: str | None = None
    error: dict[str, Any] | None = None
    status: Literal["completed", "failed"] = "completed"


class McpToolInfo(BaseModel):
    name: str
    input_schema: dict[str, Any]
    description: str | None = None


class OutputMcpListTools(BaseModel):
    """The tools of one MCP server the request named that were offered to the model (after
    the caller's policies and ``allowed_tools``); ``error`` when the server is down."""

    type: Literal["mcp_list_tools"] = "mcp_list_tools"
    id: str
    server_label: str
    tools: list[McpToolInfo]
    error: str | None = None


# -- input items -----------------------------------------------------------------------------
class CodeInterpreterCallItem(_Lenient):
    """A program the python tool ran, sent back as input (as the Agents SDK does): the model
    sees it as its call of the ``python`` tool and what the program printed."""

    type: Literal["code_interpreter_call"] = "code_interpreter_call"
    id: str
    code: str | None = None
    outputs: list[dict[str, Any]] | None = None
    container_id: str | None = None
    status: str | None = None


class McpCallItem(_Lenient):
    """An MCP tool call sent back as input: the model sees its call of ``LABEL__name`` and
    the tool's output (or error)."""

    type: Literal["mcp_call"] = "mcp_call"
    id: str
    server_label: str
    name: str
    arguments: str
    output: str | None = None
    error: Any = None
    status: str | None = None


class McpListToolsItem(_Lenient):
    """The tools an MCP server offered, sent back as input: a report, not model context."""

    type: Literal["mcp_list_tools"] = "mcp_list_tools"
    id: str
    server_label: str
    tools: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None = None
