"""The tool seam: what the agent loop sees of a tool, whoever provides it.

A :class:`Tool` has a name the model calls it by, a description and a JSON schema for its
arguments (rendered to the model as an OpenAI function tool), and an async ``call`` that
returns text for the model to read. A tool never raises for a failure the model should
see (bad arguments, a program that crashed, an MCP server that timed out or died): it
returns a :class:`ToolResult` with ``is_error`` set, so the loop hands the failure back to
the model as the tool's output instead of failing the request. Only a failure of Ponder's
own (a sandbox that cannot start, a cancelled request) is raised.

A :class:`Toolbox` is what one request may use: the tools resolved for it (the built-ins it
named, the MCP tools its key or team may use), opened for that request and closed with it,
so per-request state (a Python session kept across calls) lives and dies with the request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a call returned: text for the model, and whether it is an error it should see."""

    output: str
    is_error: bool = False
    # Anything worth keeping in the trace (exit status, seconds, the server that answered).
    details: Mapping[str, Any] = field(default_factory=dict)


# The most of one output a model reads (a tool's result goes into the next turn's prompt,
# the stored response and memory: a tool that returns megabytes must not take them along).
SHOWN_CHARS = 4000


def clipped(text: str, limit: int = SHOWN_CHARS, *, keep_end: bool = False) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut; ``keep_end`` keeps the
    end instead of the start (a traceback's end says what went wrong)."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    if keep_end:
        return f"[{cut} characters cut]\n{text[-limit:]}"
    return f"{text[:limit]}\n[{cut} characters cut]"


@runtime_checkable
class Tool(Protocol):
    """One callable tool."""

    @property
    def name(self) -> str:
        """The name the model calls it by (``python``, ``calculator``, ``server.tool``)."""
        ...

    @property
    def description(self) -> str: ...

    @property
    def parameters(self) -> Mapping[str, Any]:
        """The JSON schema of its arguments (an object schema)."""
        ...

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult: ...


def as_function_tool(tool: Tool) -> dict[str, Any]:
    """The tool as an OpenAI chat ``tools`` entry, as the model sees it."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": dict(tool.parameters),
        },
    }


class Toolbox(Protocol):
    """The tools one request may call, open for the length of that request."""

    @property
    def tools(self) -> Sequence[Tool]: ...

    async def aclose(self) -> None:
        """Release what the tools hold for this request (sessions, connections)."""
        ...
