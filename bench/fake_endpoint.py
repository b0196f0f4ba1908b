"""Fake OpenAI chat endpoints for the bench scripts: the replies and stream chunks they send,
the ASGI plumbing they share, and the canned endpoint that ``bench/overhead.py`` and
``bench/admission_overhead.py`` measure Ponder against (``overhead.py --serve fake``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

MODEL = "fake-model"  # the canned endpoint's model
CONTENT_CHUNKS = 8  # content chunks in the canned endpoint's stream
JSON_HEADERS = [(b"content-type", b"application/json")]


# -- what an endpoint sends ---------------------------------------------------------------
def usage_of(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def chat_completion(
    reply_id: str, model: Any, choices: list[Any], usage: Any, *, chunk: bool = False
) -> dict[str, Any]:
    """A chat completion's payload, or (``chunk``) one chunk of a streamed one."""
    return {
        "id": reply_id,
        "object": "chat.completion.chunk" if chunk else "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": choices,
        "usage": usage,
    }


# -- ASGI ---------------------------------------------------------------------------------
async def read_body(receive: Any) -> bytes:
    """A request's whole body, however many messages it came in."""
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


async def send_json(send: Any, status: int, body: bytes) -> None:
    """A whole JSON reply, with its length."""
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- the canned endpoint ------------------------------------------------------------------
def canned_app() -> Callable[..., Awaitable[None]]:
    """A minimal OpenAI chat endpoint: one canned completion, or CONTENT_CHUNKS content
    chunks (plus a usage chunk when asked) as SSE. No framework, no validation."""
    usage = usage_of(9, CONTENT_CHUNKS)
    sse_headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]

    def compact(payload: dict[str, Any]) -> bytes:
        return json.dumps(payload, separators=(",", ":")).encode()

    def completion(model: str) -> bytes:
        message = {"role": "assistant", "content": "canned " * CONTENT_CHUNKS}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return compact(chat_completion("chatcmpl-bench", model, [choice], usage))

    def chunk(model: str, choices: list[Any], usage_: Any = None) -> bytes:
        payload = chat_completion("chatcmpl-bench", model, choices, usage_, chunk=True)
        return b"data: " + compact(payload) + b"\n\n"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        request = json.loads(await read_body(receive))
        model = str(request.get("model", MODEL))
        if not request.get("stream"):
            await send_json(send, 200, completion(model))
            return
        await send({"type": "http.response.start", "status": 200, "headers": sse_headers})
        first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        events = [chunk(model, [first])]
        for k in range(CONTENT_CHUNKS):
            last = k == CONTENT_CHUNKS - 1
            delta = {"index": 0, "delta": {"content": "canned "}, "finish_reason": None}
            if last:
                delta["finish_reason"] = "stop"
            events.append(chunk(model, [delta]))
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append(chunk(model, [], usage))
        events.append(b"data: [DONE]\n\n")
        for event in events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def check(status: int, body: bytes, stream: bool) -> bool:
    """Whether a reply is the canned endpoint's, whole (relayed as it was sent)."""
    if status != 200:
        return False
    if stream:
        return body.count(b"canned") == CONTENT_CHUNKS and body.endswith(b"data: [DONE]\n\n")
    return b"canned" in body
