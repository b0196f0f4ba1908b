"""Server-sent events for a streamed chat completion: the framing, and the chunks of one
:class:`~ponder.gateway.reply.ReplyStream`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from ponder.errors import PonderError
from ponder.gateway.reply import ReplyStream
from ponder.protocol.chat import ChatCompletionChunk
from ponder.server import convert
from ponder.server.errors import error_body
from ponder.types import Delta

DONE = "data: [DONE]\n\n"


def event(payload: object) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


async def chat_events(
    stream: ReplyStream,
    *,
    request_id: str,
    model: str,
    include_usage: bool,
    deltas: AsyncIterator[Delta] | None = None,
    first: Delta | None = None,
) -> AsyncIterator[str]:
    """The role chunk, a chunk per delta, the usage chunk if asked, the strategy's block,
    and [DONE]. A failure after the stream has started ends it with an error event.
    ``deltas`` and ``first``: the stream's iterator, with its first delta already taken."""
    with_logprobs = stream.request.sampling.logprobs

    def chunk_of(delta: Delta) -> str:
        chunk = convert.to_chunk(
            delta, request_id=request_id, model=model, with_logprobs=with_logprobs
        )
        return event(chunk.model_dump(exclude_none=True))

    try:
        yield event(
            convert.role_chunk(request_id, model, stream.request.n).model_dump(exclude_none=True)
        )
        if first is not None:
            yield chunk_of(first)
        async for delta in deltas if deltas is not None else stream:
            yield chunk_of(delta)
    except PonderError as exc:
        yield event(error_body(exc))
        yield DONE
        return
    finally:
        await stream.aclose()
    reply = stream.reply
    if include_usage:
        tail = convert.usage_chunk(reply.usage, request_id=request_id, model=model)
        yield event(tail.model_dump(exclude_none=True))
    info = reply.info()
    if info is not None:
        yield event(
            ChatCompletionChunk(id=request_id, model=model, choices=[], ponder=info).model_dump(
                exclude_none=True
            )
        )
    yield DONE
