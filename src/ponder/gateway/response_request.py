"""A Responses request as the chat request it asks for, checked first for what Ponder
cannot honour: a field it does not know, a hosted tool, background mode, a stored prompt
or conversation are each a 400 naming the field, before anything runs. Also how
``truncation: "auto"`` shortens a conversation: by its oldest turn.

An ``{"type": "mcp", "server_label": NAME}`` tool names an MCP server the operator
configured (``[mcp.servers.NAME]``); it may narrow the server's tools (``allowed_tools``, a
list of the server's tool names or ``{"tool_names": [...]}``) and say
``require_approval: "never"`` (Ponder has no approval flow, so that is what it does
anyway). What would point Ponder at another server or change how it talks to one
(``server_url``, ``headers``, ``authorization``, ``connector_id``, another approval mode)
is a 400: Ponder connects only to the servers it was configured with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ponder.errors import InvalidRequestError, UnsupportedFeatureError
from ponder.protocol.responses import FunctionToolSpec, ResponsesRequest
from ponder.tools.builtin import BUILTIN_TYPES
from ponder.types import GenerationRequest, Message, SamplingParams

# Request fields that are read but change nothing about the answer: accepted as sent.
HARMLESS = frozenset({"stream_options"})
MAX_METADATA = 16


def refuse_unsupported(request: ResponsesRequest) -> None:
    """A 400 for anything the request asks that Ponder would otherwise quietly not do."""
    unknown = sorted(set(request.model_extra or ()) - HARMLESS)
    if unknown:
        raise InvalidRequestError(
            f"unknown field {unknown[0]!r}: Ponder does not know what it asks for",
            param=unknown[0],
        )
    refused = {
        "background": request.background,
        "conversation": request.conversation,
        "prompt": request.prompt,
        "context_management": request.context_management,
        "top_logprobs": request.top_logprobs or None,
    }
    for name, value in refused.items():
        if value:
            raise UnsupportedFeatureError(f"{name} is not supported by Ponder", param=name)
    for k, tool in enumerate(request.tools or ()):
        if tool.type in BUILTIN_TYPES or tool.type == "mcp":
            continue  # built-ins' options are checked when the toolbox is opened; mcp below
        if tool.type != "function" or not tool.name:
            raise UnsupportedFeatureError(
                f"tools[{k}]: only function tools (with a name), Ponder's built-in tools "
                f"({', '.join(BUILTIN_TYPES)}) and mcp (a configured server) are supported, "
                f"not {tool.type!r}",
                param=f"tools[{k}]",
            )
        if tool.name in BUILTIN_TYPES.values() and builtin_specs(request):
            raise InvalidRequestError(
                f"tools[{k}]: the function {tool.name!r} has the name of a built-in tool",
                param=f"tools[{k}]",
            )
    servers = mcp_specs(request)  # each entry checked here, before anything runs
    if (builtin_specs(request) or servers) and request.stream:
        # The agent loop runs whole model turns; streaming it is not built yet.
        raise UnsupportedFeatureError(
            "stream is not supported with server-side tools (python, code_interpreter, "
            "calculator, mcp) yet; send the request without stream",
            param="stream",
        )
    _check_tool_choice(request)
    if request.text is not None and request.text.verbosity not in (None, "medium"):
        raise UnsupportedFeatureError("text.verbosity is not supported", param="text.verbosity")
    metadata = request.metadata or {}
    if len(metadata) > MAX_METADATA or any(
        len(k) > 64 or len(v) > 512 for k, v in metadata.items()
    ):
        raise InvalidRequestError(
            "metadata holds at most 16 pairs, keys of up to 64 characters and values of up to 512",
            param="metadata",
        )


def _check_tool_choice(request: ResponsesRequest) -> None:
    choice = request.tool_choice
    if choice is None or isinstance(choice, str):
        return
    if choice.type == "code_interpreter" and "python" in builtin_names(request):
        return
    if choice.type != "function" or not choice.name:
        raise UnsupportedFeatureError(
            f"tool_choice of type {choice.type!r} is not supported", param="tool_choice"
        )
    # A built-in tool is forced by the name the model calls it by, as a function is.
    named = {t.name for t in request.tools or () if t.type == "function"}
    if choice.name not in named | builtin_names(request):
        raise InvalidRequestError(
            f"tool_choice names {choice.name!r}, which is not in tools", param="tool_choice"
        )


def builtin_specs(request: ResponsesRequest) -> list[tuple[str, FunctionToolSpec]]:
    """The request's built-in tool entries, each with where it is (``tools[k]``)."""
    return [
        (f"tools[{k}]", t) for k, t in enumerate(request.tools or ()) if t.type in BUILTIN_TYPES
    ]


@dataclass(frozen=True, slots=True)
class McpSpec:
    """One ``mcp`` tools entry: where it is, the server it names, and the server's tool
    names it narrows to (None: all that the caller's policies allow)."""

    where: str
    label: str
    allowed: frozenset[str] | None


MCP_OPTIONS = frozenset({"type", "server_label", "allowed_tools", "require_approval"})


def mcp_specs(request: ResponsesRequest) -> list[McpSpec]:
    """The request's ``mcp`` entries, checked (a 400 for what Ponder would not honour, a
    label named twice); whether each label is configured is checked when they are opened."""
    specs: list[McpSpec] = []
    for k, tool in enumerate(request.tools or ()):
        if tool.type != "mcp":
            continue
        where = f"tools[{k}]"
        raw = tool.model_dump(exclude_none=True)
        extra = sorted(set(raw) - MCP_OPTIONS)
        if extra:
            raise UnsupportedFeatureError(
                f"{where}.{extra[0]} is not supported: Ponder calls only the MCP servers its "
                "operator configured, as configured ([mcp.servers.NAME])",
                param=f"{where}.{extra[0]}",
            )
        label = raw.get("server_label")
        if not isinstance(label, str) or not label:
            raise InvalidRequestError(f"{where}.server_label is required", param=where)
        if raw.get("require_approval", "never") != "never":
            raise UnsupportedFeatureError(
                f"{where}.require_approval: Ponder has no approval flow; only 'never' is supported",
                param=f"{where}.require_approval",
            )
        if any(s.label == label for s in specs):
            raise InvalidRequestError(f"{where}: the server {label!r} is named twice", param=where)
        specs.append(McpSpec(where, label, _allowed(raw.get("allowed_tools"), where)))
    return specs


def _allowed(value: Any, where: str) -> frozenset[str] | None:
    param = f"{where}.allowed_tools"
    if value is None:
        return None
    if isinstance(value, dict):
        if set(value) - {"tool_names"}:
            raise UnsupportedFeatureError(
                f"{param}: only tool_names is supported (a tool's read_only hint is not kept)",
                param=param,
            )
        value = value.get("tool_names", [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequestError(f"{param} must be a list of tool names", param=param)
    return frozenset(value)


def builtin_names(request: ResponsesRequest) -> set[str]:
    """The names the model calls the request's built-in tools by."""
    return {BUILTIN_TYPES[t.type] for _, t in builtin_specs(request)}


def generation_request(
    request: ResponsesRequest,
    messages: list[Message],
    builtin: tuple[dict[str, Any], ...] = (),
) -> GenerationRequest:
    """The chat request a Responses request asks for; ``builtin``: the built-in tools as
    the model sees them (chat function tools), in place of their entries."""
    sampling = SamplingParams(
        temperature=1.0 if request.temperature is None else request.temperature,
        top_p=1.0 if request.top_p is None else request.top_p,
        max_tokens=request.max_output_tokens,
    )
    functions = tuple(
        {"type": "function", "function": t.model_dump(exclude={"type"}, exclude_none=True)}
        for t in request.tools or ()
        if t.type == "function"
    )
    tools = (*functions, *builtin) or None
    choice: str | dict[str, Any] | None = None
    if isinstance(request.tool_choice, str):
        choice = request.tool_choice
    elif request.tool_choice is not None:
        # {"type": "code_interpreter"} is OpenAI's way of forcing the python tool.
        name = "python" if request.tool_choice.type == "code_interpreter" else None
        choice = {"type": "function", "function": {"name": name or request.tool_choice.name}}
    text_format = request.text.format if request.text is not None else None
    schema = None
    if text_format is not None and text_format.type == "json_schema":
        if text_format.schema_ is None:
            raise InvalidRequestError(
                "text.format.schema is required for json_schema", param="text.format.schema"
            )
        schema = text_format.schema_
    return GenerationRequest(
        messages=tuple(messages),
        sampling=sampling,
        tools=tools,
        tool_choice=choice,
        json_schema=schema,
        json_object=text_format is not None and text_format.type == "json_object",
    )


def drop_oldest_turn(messages: tuple[Message, ...]) -> tuple[Message, ...] | None:
    """The conversation without its oldest turn (its first non-system message and what
    answers it, up to the next user message); None when only the last turn is left."""
    rest = [k for k, m in enumerate(messages) if m.role != "system"]
    users = [k for k in rest if messages[k].role == "user"]
    if not rest or len(users) < 2 or rest[0] == users[-1]:
        return None
    start = rest[0]
    end = next(k for k in users if k > start)
    return messages[:start] + messages[end:]
