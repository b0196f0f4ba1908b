"""The one boundary between the OpenAI wire format and Ponder's internal types."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from ponder.backends.toolcalls import plan_tools
from ponder.errors import InvalidRequestError
from ponder.gateway.reply import Reply
from ponder.protocol.chat import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessage,
    ChoiceLogprobs,
    ChunkChoice,
    CompletionTokensDetails,
    DeltaMessage,
    PromptTokensDetails,
    ResponseChoice,
    ResponseMessage,
    TextContentPart,
    TokenLogprobWire,
    ToolCall,
    TopLogprobWire,
    UsageWire,
)
from ponder.types import (
    Delta,
    GenerationRequest,
    Message,
    SamplingParams,
    TokenLogprob,
    Usage,
)

log = logging.getLogger("ponder.server")

_ROLES = {"developer": "system", "function": "tool"}


def _content(message: ChatMessage) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return _text(message.content, "messages")
    parts = []
    for part in message.content:
        if not isinstance(part, TextContentPart):
            raise InvalidRequestError("only text content parts are supported", param="messages")
        parts.append(_text(part.text, "messages"))
    return "".join(parts)


def _text(value: str, param: str) -> str:
    """Text a model can take: a lone surrogate (valid in JSON escapes, not in UTF-8) is the
    client's mistake, refused here rather than failing later in a tokenizer."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequestError(
                f"{param} contains a lone surrogate (invalid Unicode)", param=param
            ) from None
    return value


def to_message(message: ChatMessage) -> Message:
    role = _ROLES.get(message.role, message.role)
    return Message(
        role=role,  # type: ignore[arg-type]
        content=_content(message),
        reasoning=message.reasoning_content,
        name=message.name,
        tool_calls=tuple(tc.model_dump() for tc in message.tool_calls)
        if message.tool_calls
        else None,
        tool_call_id=message.tool_call_id,
    )


def to_generation_request(wire: ChatCompletionRequest, *, model: str) -> GenerationRequest:
    """Validate what pydantic cannot and build the internal request."""
    if wire.model_extra:
        log.info("ignoring unknown request fields: %s", ", ".join(sorted(wire.model_extra)))
    if wire.top_logprobs and not wire.logprobs:
        raise InvalidRequestError("top_logprobs requires logprobs=true", param="top_logprobs")
    stop: tuple[str, ...] = ()
    if isinstance(wire.stop, str):
        stop = (_text(wire.stop, "stop"),)
    elif wire.stop:
        stop = tuple(_text(s, "stop") for s in wire.stop)
    sampling = SamplingParams(
        temperature=1.0 if wire.temperature is None else wire.temperature,
        top_p=1.0 if wire.top_p is None else wire.top_p,
        top_k=wire.top_k or 0,
        min_p=wire.min_p or 0.0,
        repeat_penalty=wire.repeat_penalty or 1.0,
        presence_penalty=wire.presence_penalty or 0.0,
        frequency_penalty=wire.frequency_penalty or 0.0,
        seed=wire.seed,
        max_tokens=wire.max_completion_tokens or wire.max_tokens,
        stop=stop,
        logprobs=bool(wire.logprobs),
        top_logprobs=wire.top_logprobs or 0,
    )
    json_schema = None
    json_object = False
    if wire.response_format is not None:
        if wire.response_format.type == "json_schema":
            spec = wire.response_format.json_schema
            if spec is None or spec.schema_ is None:
                raise InvalidRequestError(
                    "response_format.json_schema.schema is required", param="response_format"
                )
            json_schema = spec.schema_
        elif wire.response_format.type == "json_object":
            json_object = True
    tool_choice: Any = wire.tool_choice
    if tool_choice is not None and not isinstance(tool_choice, str):
        tool_choice = tool_choice.model_dump()
    tools = tuple(t.model_dump(exclude_none=True) for t in wire.tools) if wire.tools else None
    # A choice that names no tool of the request (or forces a call without tools) is the
    # client's mistake: a 400 here, before any model is resolved or any token spent.
    plan_tools(tools, tool_choice)
    return GenerationRequest(
        messages=tuple(to_message(m) for m in wire.messages),
        sampling=sampling,
        n=wire.n or 1,
        model=model,
        json_schema=json_schema,
        json_object=json_object,
        tools=tools,
        tool_choice=tool_choice,
        # Without tools it means nothing (and OpenAI refuses it): not carried.
        parallel_tool_calls=wire.parallel_tool_calls if tools else None,
    )


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage_wire(usage: Usage) -> UsageWire:
    return UsageWire(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=usage.reasoning_tokens),
        prompt_tokens_details=PromptTokensDetails(cached_tokens=usage.cached_prompt_tokens),
    )


def _logprobs_wire(items: tuple[TokenLogprob, ...] | None) -> ChoiceLogprobs | None:
    if items is None:
        return None
    return ChoiceLogprobs(
        content=[
            TokenLogprobWire(
                token=t.token,
                logprob=t.logprob,
                bytes=list(t.bytes) if t.bytes is not None else None,
                top_logprobs=[
                    TopLogprobWire(
                        token=a.token, logprob=a.logprob, bytes=list(a.bytes) if a.bytes else None
                    )
                    for a in t.top
                ],
            )
            for t in items
        ]
    )


def to_response(reply: Reply, *, request_id: str, model: str) -> ChatCompletionResponse:
    return ChatCompletionResponse(
        id=request_id,
        model=model,
        choices=[
            ResponseChoice(
                index=c.index,
                message=ResponseMessage(
                    content=c.text if (c.text or not c.tool_calls) else None,
                    reasoning_content=c.reasoning,
                    tool_calls=[ToolCall.model_validate(t) for t in c.tool_calls]
                    if c.tool_calls
                    else None,
                ),
                logprobs=_logprobs_wire(c.logprobs),
                finish_reason=c.finish_reason,
            )
            for c in reply.choices
        ],
        usage=usage_wire(reply.usage),
        ponder=reply.info(),
    )


def role_chunk(request_id: str, model: str, n: int) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id=request_id,
        model=model,
        choices=[
            ChunkChoice(index=i, delta=DeltaMessage(role="assistant", content="")) for i in range(n)
        ],
    )


def to_chunk(
    delta: Delta, *, request_id: str, model: str, with_logprobs: bool
) -> ChatCompletionChunk:
    tool_calls = None
    if delta.tool_calls:
        # Streamed fragments carry the index of the call they belong to (a later fragment
        # of call 1 may come alone); whole calls are numbered by their place.
        tool_calls = [{"index": k} | dict(t) for k, t in enumerate(delta.tool_calls)]
    return ChatCompletionChunk(
        id=request_id,
        model=model,
        choices=[
            ChunkChoice(
                index=delta.index,
                delta=DeltaMessage(
                    content=delta.text or None,
                    reasoning_content=delta.reasoning or None,
                    tool_calls=tool_calls,
                ),
                logprobs=_logprobs_wire(delta.logprobs)
                if with_logprobs and delta.logprobs
                else None,
                # Cancelled sequences end as "stop" on the wire; OpenAI has no other word for it.
                finish_reason=(
                    "stop" if delta.finish_reason == "cancelled" else delta.finish_reason
                ),
            )
        ],
    )


def usage_chunk(usage: Usage, *, request_id: str, model: str) -> ChatCompletionChunk:
    return ChatCompletionChunk(id=request_id, model=model, choices=[], usage=usage_wire(usage))
