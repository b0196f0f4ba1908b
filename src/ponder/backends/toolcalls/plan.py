"""The request's side of tool calling: what ``tools`` and ``tool_choice`` let a reply do
(:func:`plan_tools`, which the server also uses to refuse a bad choice with a 400 before
any model runs), and the conversation as chat templates expect to render it
(:func:`template_messages`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ponder.errors import InvalidRequestError
from ponder.types import Message


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """What a request lets the model do with its tools."""

    mode: Literal["none", "auto", "required"]
    # The tools a call may name, with their parameter schemas.
    allowed: tuple[tuple[str, Mapping[str, Any] | None], ...]
    parallel: bool


def plan_tools(
    tools: Sequence[Mapping[str, Any]] | None,
    tool_choice: str | Mapping[str, Any] | None,
    parallel: bool = True,
) -> ToolPlan:
    """The plan for ``tools`` and ``tool_choice``; a 400 for a choice that names no tool of
    ``tools``, or that asks for a call without tools."""
    definitions = [
        t.get("function") for t in tools or () if t.get("type", "function") == "function"
    ]
    functions = [
        f for f in definitions if isinstance(f, Mapping) and isinstance(f.get("name"), str)
    ]
    every = tuple((str(f["name"]), f.get("parameters")) for f in functions)
    if tool_choice is None:
        tool_choice = "auto" if every else "none"
    if isinstance(tool_choice, str):
        if tool_choice not in ("none", "auto", "required"):
            raise InvalidRequestError(f"unknown tool_choice {tool_choice!r}", param="tool_choice")
        if tool_choice == "required" and not every:
            raise InvalidRequestError(
                "tool_choice 'required' needs at least one tool in 'tools'", param="tool_choice"
            )
        mode: Literal["none", "auto", "required"] = tool_choice  # type: ignore[assignment]
        return ToolPlan(mode if every else "none", every if mode != "none" else (), parallel)
    function = tool_choice.get("function")
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str):
        raise InvalidRequestError(
            "tool_choice must name a function: {'type': 'function', 'function': {'name': ...}}",
            param="tool_choice",
        )
    chosen = tuple(t for t in every if t[0] == name)
    if not chosen:
        raise InvalidRequestError(
            f"tool_choice names {name!r}, which is not in 'tools'", param="tool_choice"
        )
    return ToolPlan("required", chosen, parallel)


def template_messages(messages: Sequence[Message]) -> list[Message]:
    """Messages as chat templates expect them: templates write an earlier call's
    ``arguments`` with ``tojson``, so the OpenAI JSON string is decoded to its object first
    (it would be rendered as a quoted string otherwise)."""
    out = []
    for message in messages:
        if not message.tool_calls:
            out.append(message)
            continue
        calls = tuple(_decoded_arguments(call) for call in message.tool_calls)
        out.append(
            Message(
                message.role,
                message.content,
                message.reasoning,
                message.name,
                calls,
                message.tool_call_id,
            )
        )
    return out


def _decoded_arguments(call: Mapping[str, Any]) -> Mapping[str, Any]:
    function = call.get("function")
    if not isinstance(function, Mapping) or not isinstance(function.get("arguments"), str):
        return call
    try:
        arguments = json.loads(function["arguments"])
    except json.JSONDecodeError:
        return call
    return {**call, "function": {**function, "arguments": arguments}}
