"""The one conversion between Responses API items and Ponder's chat messages, both ways.

* Input: :func:`normalize_input` turns a request's ``input`` into stored items (ids assigned,
  content as typed parts); :func:`to_messages` turns a conversation's items into chat
  messages: a ``function_call`` becomes an assistant message's ``tool_calls`` (joined to the
  assistant turn before it), a ``function_call_output`` a ``tool`` message, ``developer`` a
  ``system`` message; a tool Ponder ran on the server (a ``code_interpreter_call``, an
  ``mcp_call``) becomes both: the model's call of the tool by the name it was offered under
  (``python``, ``LABEL__tool``) and a ``tool`` message with what it returned, whether the
  item comes from a stored response or is sent back as input (as the Agents SDK does);
  ``reasoning`` and ``mcp_list_tools`` items are what Ponder reported, not model context.
* Output: :func:`output_items` turns a :class:`~ponder.gateway.reply.Reply` into output
  items: a ``reasoning`` item (the model's thinking, and what the strategy did, from the
  reply's strategy, usage and per-choice details), the ``message``, and a ``function_call``
  per tool call.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ponder.errors import InvalidRequestError
from ponder.gateway.reply import Reply
from ponder.protocol.response_tools import CodeInterpreterCallItem, McpCallItem
from ponder.protocol.responses import (
    ContentPart,
    FunctionCallItem,
    FunctionCallOutputItem,
    IncompleteDetails,
    InputItem,
    InputTokensDetails,
    ItemStatus,
    MessageItem,
    OutputFunctionCall,
    OutputItem,
    OutputMessage,
    OutputReasoning,
    OutputText,
    OutputTokensDetails,
    ReasoningItem,
    ReasoningText,
    ResponseStatus,
    ResponseUsage,
    SummaryText,
)
from ponder.tools.mcp import ILLEGAL, SEPARATOR
from ponder.types import FinishReason, Message, Role, Usage

_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


# -- input ----------------------------------------------------------------------------------
def normalize_input(value: str | Sequence[InputItem] | None) -> list[dict[str, Any]]:
    """The request's input as the items stored and listed back: each with an id (the
    client's, when it sent one) and a status, message content as a list of typed parts."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [MessageItem(role="user", content=value)]
    return [_normalize(item, f"input[{k}]") for k, item in enumerate(value)]


def _normalize(item: InputItem, where: str) -> dict[str, Any]:
    if isinstance(item, MessageItem):
        kind = "output_text" if item.role == "assistant" else "input_text"
        parts = [_part(p, kind, f"{where}.content") for p in _parts(item.content)]
        return {
            "type": "message",
            "id": item.id or new_id("msg"),
            "role": item.role,
            "content": parts,
            "status": item.status or "completed",
        }
    if isinstance(item, FunctionCallItem):
        return {
            "type": "function_call",
            "id": item.id or new_id("fc"),
            "call_id": item.call_id,
            "name": item.name,
            "arguments": _text(item.arguments, f"{where}.arguments"),
            "status": item.status or "completed",
        }
    if isinstance(item, FunctionCallOutputItem):
        output = item.output
        if not isinstance(output, str):
            output = "".join(_part(p, "input_text", f"{where}.output")["text"] for p in output)
        return {
            "type": "function_call_output",
            "id": item.id or new_id("fco"),
            "call_id": item.call_id,
            "output": _text(output, f"{where}.output"),
            "status": item.status or "completed",
        }
    if isinstance(item, CodeInterpreterCallItem | McpCallItem):
        # Kept as sent (so that it is listed back as sent), its text checked now.
        kept = item.model_dump(exclude_none=True)
        for name in ("code", "arguments", "output"):
            if isinstance(kept.get(name), str):
                kept[name] = _text(kept[name], f"{where}.{name}")
        return {**kept, "status": item.status or "completed"}
    if not isinstance(item, ReasoningItem):  # mcp_list_tools: a report, kept as sent
        return item.model_dump(exclude_none=True)
    reasoning: ReasoningItem = item
    return {
        "type": "reasoning",
        "id": reasoning.id or new_id("rs"),
        "summary": [s.model_dump() for s in reasoning.summary],
        "content": [c.model_dump() for c in reasoning.content] if reasoning.content else None,
        "status": reasoning.status or "completed",
    }


def _parts(content: str | list[ContentPart]) -> list[ContentPart]:
    return [ContentPart(type="input_text", text=content)] if isinstance(content, str) else content


def _part(part: ContentPart, kind: str, where: str) -> dict[str, Any]:
    if part.type == "refusal" and part.refusal is not None:
        return {"type": "refusal", "refusal": _text(part.refusal, where)}
    if part.type not in _TEXT_PARTS or part.text is None:
        raise InvalidRequestError(
            f"{where}: only text content is supported, not {part.type!r}", param=where
        )
    text = _text(part.text, where)
    return {"type": kind, "text": text, **({"annotations": []} if kind == "output_text" else {})}


def _text(value: str, where: str) -> str:
    """Text a model can take: a lone surrogate (valid in a JSON escape, not in UTF-8) is the
    client's mistake, refused here rather than in a tokenizer."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequestError(
                f"{where} contains a lone surrogate (invalid Unicode)", param=where
            ) from None
    return value


def to_messages(items: Iterable[Mapping[str, Any]], instructions: str | None) -> list[Message]:
    """A conversation's stored items (earlier responses' inputs and outputs, then this
    request's input) as chat messages, ``instructions`` first as the system message."""
    messages: list[Message] = []
    if instructions:
        messages.append(Message("system", _text(instructions, "instructions")))
    called: set[str] = set()
    for item in items:
        kind = item["type"]
        if kind == "message":
            role: Role = "system" if item["role"] in ("system", "developer") else item["role"]
            text = "".join(p.get("text") or p.get("refusal") or "" for p in item["content"])
            messages.append(Message(role, text))
        elif kind == "function_call":
            _add_call(messages, item["call_id"], item["name"], item["arguments"])
            called.add(item["call_id"])
        elif kind in ("code_interpreter_call", "mcp_call"):
            name, arguments, output = _server_run(item)
            call_id = str(item["id"])
            _add_call(messages, call_id, name, arguments)
            messages.append(Message("tool", output, tool_call_id=call_id))
        elif kind == "function_call_output":
            if item["call_id"] not in called:
                raise InvalidRequestError(
                    f"function_call_output for call_id {item['call_id']!r} has no "
                    "function_call before it in the conversation",
                    param="input",
                )
            messages.append(Message("tool", item["output"], tool_call_id=item["call_id"]))
        # A reasoning or mcp_list_tools item is what Ponder reported, not part of the context.
    return messages


def _add_call(messages: list[Message], call_id: str, name: str, arguments: str) -> None:
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    last = messages[-1] if messages else None
    if last is not None and last.role == "assistant":
        # Calls made in one turn belong to that turn's assistant message.
        messages[-1] = Message(
            "assistant", last.content, tool_calls=(*(last.tool_calls or ()), call)
        )
    else:
        messages.append(Message("assistant", "", tool_calls=(call,)))


def _server_run(item: Mapping[str, Any]) -> tuple[str, str, str]:
    """A tool run Ponder made on the server, as the model saw it: the tool's name, the
    arguments of its call, and what the model read back."""
    if item["type"] == "code_interpreter_call":
        outputs = item.get("outputs") or ()
        logs = "".join(str(o.get("logs", "")) for o in outputs if o.get("type") == "logs")
        return "python", json.dumps({"code": item.get("code") or ""}), logs
    # The name the model was offered the tool under (as ponder.tools.mcp names it).
    name = str(item["server_label"]) + SEPARATOR + ILLEGAL.sub("_", str(item["name"]))
    error = item.get("error")
    if error is None:
        return name, str(item["arguments"]), str(item.get("output") or "")
    if isinstance(error, Mapping):
        # OpenAI's error object; Ponder's own holds the very text the model read.
        parts = error.get("content")
        texts = [str(p.get("text", "")) for p in parts or () if isinstance(p, Mapping)]
        return name, str(item["arguments"]), " ".join(texts) or f"error: {json.dumps(error)}"
    return name, str(item["arguments"]), f"error: {error}"


# -- output ---------------------------------------------------------------------------------
def status_of(finish: FinishReason | None) -> tuple[ResponseStatus, IncompleteDetails | None]:
    if finish == "length":
        return "incomplete", IncompleteDetails(reason="max_output_tokens")
    if finish == "content_filter":
        return "incomplete", IncompleteDetails(reason="content_filter")
    if finish == "cancelled":
        return "cancelled", None
    return "completed", None


def usage_of(usage: Usage) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=usage.prompt_tokens,
        input_tokens_details=InputTokensDetails(cached_tokens=usage.cached_prompt_tokens),
        output_tokens=usage.completion_tokens,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=usage.reasoning_tokens),
        total_tokens=usage.total_tokens,
    )


def summary_of(reply: Reply) -> list[SummaryText]:
    """What the strategy did, in words, from what every reply exposes (its name, the calls
    and tokens it spent, and its per-choice decisions); empty when no strategy ran."""
    if reply.strategy is None:
        return []
    usage = reply.usage
    lines = [
        f"Ponder ran the strategy {reply.strategy} on {reply.model}: {usage.calls} model "
        f"call{'s' if usage.calls != 1 else ''}, {usage.completion_tokens} tokens generated, "
        f"{usage.reasoning_tokens} of them reasoning not shown in the answer."
    ]
    for details in reply.details:
        if details:
            decided = ", ".join(f"{k}: {_brief(v)}" for k, v in details.items())
            lines.append(f"It decided: {decided}.")
    if reply.trace is not None:
        lines.append(f"Trace: {reply.trace.id}.")
    return [SummaryText(text=" ".join(lines))]


def _brief(value: object, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tool_call_limit(parallel: bool | None, max_calls: int | None) -> int | None:
    """How many of the model's tool calls a response keeps: one when the client asked for no
    parallel calls, at most ``max_tool_calls``; None: all."""
    limits = [n for n in (1 if parallel is False else None, max_calls) if n is not None]
    return min(limits) if limits else None


def function_call(raw: Mapping[str, Any], item_id: str | None = None) -> OutputFunctionCall:
    """A chat tool call (``{"id", "function": {"name", "arguments"}}``) as an output item."""
    fn = raw.get("function") or {}
    arguments = fn.get("arguments", "")
    return OutputFunctionCall(
        id=item_id or new_id("fc"),
        call_id=str(raw.get("id") or new_id("call")),
        name=str(fn.get("name", "")),
        arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
    )


def output_items(reply: Reply, *, keep_calls: int | None) -> tuple[list[OutputItem], FinishReason]:
    """The reply's first choice as output items, and why it finished."""
    choice = reply.choices[0] if reply.choices else None
    finish: FinishReason = choice.finish_reason if choice is not None else "stop"
    status, _ = status_of(finish)
    item_status: ItemStatus = "incomplete" if status != "completed" else "completed"
    items: list[OutputItem] = []
    thinking = choice.reasoning if choice is not None else None
    summary = summary_of(reply)
    if summary or thinking:
        items.append(
            OutputReasoning(
                id=new_id("rs"),
                summary=summary,
                content=[ReasoningText(text=thinking)] if thinking else None,
            )
        )
    calls = list(choice.tool_calls or ()) if choice is not None else []
    if keep_calls is not None:
        calls = calls[:keep_calls]
    text = choice.text if choice is not None else ""
    if text or not calls:
        items.append(
            OutputMessage(id=new_id("msg"), status=item_status, content=[OutputText(text=text)])
        )
    items.extend(function_call(c) for c in calls)
    return items, finish
