"""The pass-through's streams: the endpoint's bytes relayed as they came (a usage chunk Ponder
asked for taken out), the upstream response closed when the client goes, and SSE events
framed whole however they arrive, with failures mid-stream reported with the usage known."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web

from ponder.backends.endpoint import EndpointConfig
from ponder.errors import BackendUnavailableError
from ponder.gateway.call import Plan
from ponder.gateway.forwarding import ForwardedStream, Forwarder
from ponder.gateway.passthrough import PassThrough, RelayStream, upstream_body
from ponder.reasoning.selection import Selection
from ponder.types import Usage
from tests.fake_openai import LONG_TOKENS, answer_tokens
from tests.passthrough_helpers import (  # noqa: F401
    RICH,
    endpoint,
    hand_written,
    last_request,
    open_passthrough,
    relay,
    served_fake,
)


def events(raw: bytes) -> list[bytes]:
    return [e + b"\n\n" for e in raw.split(b"\n\n") if e]


# -- relaying -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options",
    [None, {"include_usage": True}, {"include_usage": False, "continuous_usage_stats": False}],
    ids=["not-asked", "asked", "asked-false"],
)
async def test_stream_relays_the_endpoints_bytes(
    fake: tuple[str, Any], passthrough: PassThrough, options: dict[str, Any] | None
) -> None:
    config = endpoint(fake, "vllm", api_key="k")
    client_body: dict[str, Any] = {**RICH, "stream": True}
    if options is not None:
        client_body["stream_options"] = options
    asked = bool(options and options.get("include_usage"))

    # What the endpoint sends for the body Ponder sends it, fetched directly.
    payload, added = upstream_body(config, "up-m", client_body)
    assert added is not asked
    async with httpx.AsyncClient(trust_env=False) as direct:
        upstream = (
            await direct.post(
                f"{config.base_url}/chat/completions",
                content=payload,
                headers={"content-type": "application/json"},
            )
        ).content
    usage_events = [e for e in events(upstream) if b'"choices": [], "usage": {' in e]
    assert len(usage_events) == 1

    stream = await passthrough.open_stream(config, "up-m", client_body)
    assert isinstance(stream, RelayStream) and stream.added_usage is added
    relayed = await relay(stream)

    _, body, _ = last_request(fake)
    expected = {**client_body, "model": "up-m"}
    if not asked:
        expected["stream_options"] = {**(options or {}), "include_usage": True}
    assert body == expected
    assert "logprobs" not in body and "temperature" not in body
    if asked:
        assert relayed == upstream
    else:
        assert relayed == upstream.replace(usage_events[0], b"")
        assert b'"usage": {' not in relayed
    assert relayed.endswith(b"data: [DONE]\n\n")
    # Usage is the endpoint's report either way.
    tokens = len(answer_tokens(0, 7)[:3])
    assert stream.usage == Usage(prompt_tokens=7, completion_tokens=tokens, calls=1)
    assert stream.exact and stream.finished


# -- cancellation -------------------------------------------------------------------------
async def wait_for_stream_end(app: Any, profile: str) -> tuple[int, bool]:
    async with asyncio.timeout(10):
        while True:
            ends = [(sent, done) for p, sent, done in app.state.streams if p == profile]
            if ends:
                return ends[-1]
            await asyncio.sleep(0.02)


async def test_closing_a_stream_closes_the_upstream_response(
    fake: tuple[str, Any], passthrough: PassThrough
) -> None:
    body = {"model": "x", "messages": [{"role": "user", "content": "go"}], "stream": True}
    fake[1].state.streams.clear()
    stream = await passthrough.open_stream(endpoint(fake, "long"), "m", body)
    assert isinstance(stream, RelayStream)
    got = 0
    async for part in stream:
        got += part.count(b"data: ")
        if got >= 5:
            break
    await stream.aclose()
    sent, completed = await wait_for_stream_end(fake[1], "long")
    assert not completed and sent < LONG_TOKENS
    # Cut before the usage chunk: the usage is unknown and says so.
    assert stream.usage == Usage(calls=1) and not stream.exact and not stream.finished
    assert [part async for part in stream] == []  # closed for good
    await stream.aclose()  # idempotent


async def test_a_cancelled_relay_closes_the_upstream_response(
    fake: tuple[str, Any], passthrough: PassThrough
) -> None:
    body = {
        "model": "x",
        "messages": [{"role": "user", "content": "go"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    fake[1].state.streams.clear()
    stream = await passthrough.open_stream(endpoint(fake, "long"), "m", body)
    assert isinstance(stream, RelayStream)
    started = asyncio.Event()

    async def client() -> None:
        # What a server's response task does: relay until the client goes away.
        async for _ in stream:
            started.set()

    task = asyncio.create_task(client())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    sent, completed = await wait_for_stream_end(fake[1], "long")
    assert not completed and sent < LONG_TOKENS
    assert not stream.exact
    await stream.aclose()


# -- SSE framing, against hand-written streams --------------------------------------------
def parts_of(parts: list[bytes], *, fail: Exception | None = None) -> AsyncIterator[bytes]:
    async def body() -> AsyncIterator[bytes]:
        for part in parts:
            yield part
        if fail is not None:
            raise fail

    return body()


def chunk(choices: list[Any], usage: dict[str, Any] | None = None, sep: bytes = b"\n\n") -> bytes:
    payload = {"id": "c", "object": "chat.completion.chunk", "choices": choices, "usage": usage}
    return b"data: " + json.dumps(payload).encode() + sep


USAGE = {
    "prompt_tokens": 4,
    "completion_tokens": 2,
    "total_tokens": 6,
    "completion_tokens_details": {"reasoning_tokens": 1},
}
DELTA = [{"index": 0, "delta": {"content": 'say "usage": {'}, "finish_reason": None}]
LAST = [{"index": 0, "delta": {}, "finish_reason": "stop"}]


async def relay_parts(
    parts: list[bytes], body: dict[str, Any], *, fail: Exception | None = None
) -> tuple[list[bytes], RelayStream]:
    """Relay a reply that arrives split into exactly ``parts`` (what the HTTP client yields
    as they come), for the body Ponder sends upstream for ``body``."""
    _, added = upstream_body(EndpointConfig(base_url="http://up/v1"), "m", body)
    closed: list[bool] = []
    stream = RelayStream(
        parts_of(parts, fail=fail),
        added_usage=added,
        where="m at http://up/v1",
        on_close=lambda: closed.append(True),
    )
    try:
        async with stream:
            return [part async for part in stream], stream
    finally:
        assert closed == [True]  # the upstream response is closed once, however it ends


@pytest.mark.parametrize("sep", [b"\n\n", b"\r\n\r\n", b"\r\r"], ids=["lf", "crlf", "cr"])
async def test_events_split_anywhere_are_relayed_whole(sep: bytes) -> None:
    raw = (
        b": keep-alive" + sep
        + chunk(DELTA, sep=sep)
        + b"event: message" + sep[: len(sep) // 2] + chunk(LAST, sep=sep)
        + chunk([], USAGE, sep=sep)
        + b"data: [DONE]" + sep
    )  # fmt: skip
    usage_event = chunk([], USAGE, sep=sep)
    one_byte_parts = [raw[i : i + 1] for i in range(len(raw))]
    relayed, stream = await relay_parts(one_byte_parts, {"messages": [], "stream": True})
    assert b"".join(relayed) == raw.replace(usage_event, b"")
    # Every item holds whole events.
    for part in relayed:
        assert part.endswith(sep)
    assert stream.usage == Usage(prompt_tokens=4, completion_tokens=2, reasoning_tokens=1, calls=1)
    assert stream.exact

    relayed, stream = await relay_parts(
        [raw], {"messages": [], "stream": True, "stream_options": {"include_usage": True}}
    )
    assert relayed == [raw] and stream.exact


async def test_usage_on_a_content_chunk_is_read_and_relayed() -> None:
    raw = chunk(DELTA) + chunk(LAST, USAGE) + b"data: [DONE]"  # no blank line at the end
    relayed, stream = await relay_parts([raw], {"messages": [], "stream": True})
    assert b"".join(relayed) == raw
    assert stream.usage.completion_tokens == 2 and stream.exact


async def test_a_transport_failure_mid_stream_raises_with_the_usage_known() -> None:
    raw = chunk(DELTA, {**USAGE, "completion_tokens": 1})
    with pytest.raises(BackendUnavailableError) as caught:
        await relay_parts(
            [raw], {"messages": [], "stream": True}, fail=aiohttp.ClientPayloadError("cut")
        )
    assert caught.value.usage is not None and caught.value.usage.completion_tokens == 1


async def test_a_forwarded_stream_that_fails_ends_with_an_error_event() -> None:
    ended: list[tuple[BaseException | None, bool]] = []

    async def end(plan: Plan, error: BaseException | None, ok: bool) -> None:
        ended.append((error, ok))

    forwarder = Forwarder(end)
    plan = Plan(selection=Selection(None, "m", "default"), model="m", tag="", backend=None)  # type: ignore[arg-type]
    raw = chunk(DELTA, {**USAGE, "completion_tokens": 1})
    relay = RelayStream(
        parts_of([raw], fail=aiohttp.ClientPayloadError("cut")),
        added_usage=True,
        where="m at http://up/v1",
    )
    forwarded = ForwardedStream(None, relay, forwarder, plan, plan.log.begin("m"))
    events = [event async for event in forwarded.events()]
    assert events[0] == raw and events[2] == b"data: [DONE]\n\n"
    error = json.loads(events[1].removeprefix(b"data: "))["error"]
    assert error["type"] == "server_error" and "cannot reach the endpoint" in error["message"]
    # Recorded before the client is told: the failure, and the usage known so far.
    ((failure, ok),) = ended
    assert isinstance(failure, BackendUnavailableError) and not ok
    assert plan.log.usage.completion_tokens == 1
    await forwarder.aclose()


async def test_an_endpoint_that_drops_the_connection_mid_stream() -> None:
    raw = chunk(DELTA, {**USAGE, "completion_tokens": 1})

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(raw)
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.close()  # gone before the chunked body's end
        return response

    async with hand_written(handler) as config, PassThrough(trust_env=False) as pt:
        stream = await pt.open_stream(config, "m", {"messages": [], "stream": True})
        assert isinstance(stream, RelayStream)
        relayed: list[bytes] = []
        with pytest.raises(BackendUnavailableError) as caught:
            async with stream:
                async for part in stream:
                    relayed.append(part)
    assert relayed == [raw]
    assert caught.value.usage is not None and caught.value.usage.completion_tokens == 1
    assert not stream.exact and not stream.finished
