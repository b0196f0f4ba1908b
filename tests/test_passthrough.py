"""The pass-through against a loopback endpoint: what goes upstream is what the client sent
(``model`` replaced), what comes back is what the endpoint said, and usage is exact or says
it is not."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ponder.backends.endpoint import EndpointConfig
from ponder.errors import BackendError, BackendTimeoutError, BackendUnavailableError
from ponder.gateway.call import Plan
from ponder.gateway.forwarding import ForwardedStream, Forwarder
from ponder.gateway.passthrough import Forwarded, PassThrough, RelayStream, upstream_body
from ponder.reasoning.selection import Selection
from ponder.types import Usage
from tests.fake_openai import LONG_TOKENS, THINKING, answer_tokens, free_port, make_app, serve_app

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}},
    "required": ["answer"],
    "additionalProperties": False,
}

# Everything the SDK-built pass-through used to drop, rename, add or consume.
RICH: dict[str, Any] = {
    "model": "client-name",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is six times seven?"},
    ],
    "user": "user-123",
    "metadata": {"session": "abc", "tier": "gold"},
    "parallel_tool_calls": False,
    "logit_bias": {"1734": -100, "50256": 5},
    "service_tier": "flex",
    "reasoning_effort": "low",
    "chat_template_kwargs": {"enable_thinking": False},
    "guided_json": SCHEMA,
    "guided_decoding_backend": "xgrammar",
    "top_k": 5,
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "answer_schema", "strict": True, "schema": SCHEMA},
    },
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "calc",
                "description": "Evaluate arithmetic.",
                "parameters": {"type": "object", "properties": {"expr": {"type": "string"}}},
                "strict": True,
            },
        }
    ],
    "tool_choice": {"type": "function", "function": {"name": "calc"}},
    "unknown_vendor_field": {"nested": [1, 2.5, None, True, "ünïcode ✓"], "big": 2**53 + 1},
    "max_tokens": 3,
    "seed": 7,
}


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[str, Any]]:
    app = make_app()
    with serve_app(app) as url:
        yield url, app


@pytest.fixture
async def passthrough() -> AsyncIterator[PassThrough]:
    async with PassThrough(trust_env=False) as pt:
        yield pt


def endpoint(fake: tuple[str, Any], profile: str, **config: Any) -> EndpointConfig:
    return EndpointConfig(base_url=f"{fake[0]}/{profile}/v1", **config)


@asynccontextmanager
async def hand_written(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[EndpointConfig]:
    """An endpoint on 127.0.0.1 that answers every chat request with ``handler``."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        yield EndpointConfig(base_url=str(server.make_url("/v1")))


def last_request(fake: tuple[str, Any]) -> tuple[str, dict[str, Any], dict[str, str]]:
    app = fake[1]
    profile, body = app.state.requests[-1]
    return profile, body, app.state.headers[-1]


async def relay(stream: RelayStream) -> bytes:
    async with stream:
        return b"".join([part async for part in stream])


def events(raw: bytes) -> list[bytes]:
    return [e + b"\n\n" for e in raw.split(b"\n\n") if e]


# -- fidelity -----------------------------------------------------------------------------
async def test_the_body_goes_upstream_exactly_as_sent(
    fake: tuple[str, Any], passthrough: PassThrough
) -> None:
    config = endpoint(
        fake,
        "vllm",
        api_key="sk-upstream",
        extra_body={"top_k": 99, "repetition_penalty": 1.1},
        max_retries=5,
    )
    reply = await passthrough.forward(
        config,
        "org/upstream-m",
        RICH,
        headers={"Authorization": "Bearer sk-client", "X-Provider-Tag": "p1"},
    )
    profile, body, headers = last_request(fake)
    # The client's body, model replaced; the provider's extra_body only where the client was
    # silent (its top_k wins). Nothing else: no temperature, top_p or logprobs added,
    # reasoning_effort and every vendor field kept, the json_schema's name and strict kept.
    assert profile == "vllm"
    assert body == {**RICH, "model": "org/upstream-m", "repetition_penalty": 1.1}
    assert list(body) == [*RICH, "repetition_penalty"]
    assert headers["authorization"] == "Bearer sk-upstream"
    assert headers["x-provider-tag"] == "p1"
    assert headers["content-type"] == "application/json"
    # The reply as received, its model as the endpoint said it.
    assert isinstance(reply, Forwarded) and reply.ok and reply.status_code == 200
    assert json.loads(reply.content) == reply.body
    assert reply.body["model"] == "org/upstream-m"
    assert reply.body["choices"][0]["message"]["content"] == "".join(answer_tokens(0, 7)[:3])
    assert fake[1].state.calls["vllm"] >= 1  # one call: nothing is retried


async def test_no_key_no_authorization(fake: tuple[str, Any], passthrough: PassThrough) -> None:
    await passthrough.forward(
        endpoint(fake, "vllm"),
        "m",
        {"model": "x", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": "Bearer sk-client", "Cookie": "a=b", "Host": "evil"},
    )
    _, _, headers = last_request(fake)
    assert "authorization" not in headers
    assert "cookie" not in headers
    assert headers["host"] == fake[0].removeprefix("http://")


def test_upstream_body_keeps_key_order_and_adds_usage_only_to_streams() -> None:
    config = EndpointConfig(base_url="http://x/v1", extra_body={"min_p": 0.1})
    payload, added = upstream_body(config, "up", {"messages": [], "model": "a", "n": 2})
    assert not added
    assert payload == b'{"messages":[],"model":"up","n":2,"min_p":0.1}'
    payload, added = upstream_body(config, "up", {"messages": []})
    assert json.loads(payload) == {"messages": [], "model": "up", "min_p": 0.1}
    payload, added = upstream_body(
        config, "up", {"stream": True, "stream_options": {"continuous_usage_stats": False}}
    )
    assert added
    assert json.loads(payload)["stream_options"] == {
        "continuous_usage_stats": False,
        "include_usage": True,
    }
    payload, added = upstream_body(
        config, "up", {"stream": True, "stream_options": {"include_usage": True}}
    )
    assert not added and json.loads(payload)["stream_options"] == {"include_usage": True}


def test_a_providers_stream_options_go_only_with_a_stream() -> None:
    # vLLM refuses stream_options on a request that does not stream.
    options = {"continuous_usage_stats": True}
    config = EndpointConfig(base_url="http://x/v1", extra_body={"stream_options": options})
    payload, added = upstream_body(config, "up", {"messages": []})
    assert not added and "stream_options" not in json.loads(payload)
    payload, added = upstream_body(config, "up", {"messages": [], "stream": True})
    assert added and json.loads(payload)["stream_options"] == {**options, "include_usage": True}


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


# -- usage --------------------------------------------------------------------------------
async def test_usage_is_exact_with_reasoning_and_cached_tokens(
    fake: tuple[str, Any], passthrough: PassThrough
) -> None:
    config = endpoint(fake, "detailed")
    body = {"model": "x", "messages": [{"role": "user", "content": "one two three"}], "n": 2}
    expected = Usage(
        prompt_tokens=3,
        completion_tokens=2 * (len(answer_tokens(0, None)) + len(THINKING)),
        reasoning_tokens=2 * len(THINKING),
        cached_prompt_tokens=2,
        calls=1,
    )
    reply = await passthrough.forward(config, "think-m", body)
    assert isinstance(reply, Forwarded)
    assert reply.usage == expected and reply.exact

    stream = await passthrough.open_stream(config, "think-m", {**body, "stream": True})
    assert isinstance(stream, RelayStream)
    await relay(stream)
    assert stream.usage == expected and stream.exact


async def test_a_reply_without_usage_is_not_exact() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"id": "x", "choices": []})

    async with hand_written(handler) as config, PassThrough(trust_env=False) as pt:
        reply = await pt.forward(config, "m", {"messages": []})
    assert reply.usage == Usage(calls=1) and not reply.exact


# -- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_a_client_error_is_relayed_as_is(
    fake: tuple[str, Any], passthrough: PassThrough, status: int
) -> None:
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}
    reply = await passthrough.forward(endpoint(fake, f"error-{status}"), "m", body)
    assert isinstance(reply, Forwarded) and not reply.ok
    assert reply.status_code == status
    sent = {"error": {"message": f"failure {status}", "type": "fake", "code": status}}
    assert reply.body == sent and json.loads(reply.content) == sent
    assert reply.usage == Usage(calls=1) and reply.exact
    # The same for a stream: the endpoint answered with JSON, not a stream.
    streamed = await passthrough.open_stream(
        endpoint(fake, f"error-{status}"), "m", {**body, "stream": True}
    )
    assert isinstance(streamed, Forwarded) and streamed.status_code == status
    assert streamed.body == sent


async def test_a_client_error_that_is_not_json_is_wrapped(
    fake: tuple[str, Any], passthrough: PassThrough
) -> None:
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}
    reply = await passthrough.forward(endpoint(fake, "error-413-text"), "m", body)
    assert reply.status_code == 413
    assert reply.body["error"]["message"] == "plain failure 413"
    assert json.loads(reply.content) == reply.body


@pytest.mark.parametrize(
    ("profile", "error"),
    [
        ("error-500", BackendError),
        ("error-502-text", BackendUnavailableError),
        ("error-503", BackendUnavailableError),
        ("error-529", BackendUnavailableError),
        ("error-429", BackendUnavailableError),
        ("error-504", BackendTimeoutError),
        ("error-408", BackendTimeoutError),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_an_endpoint_failure_raises_a_typed_error(
    fake: tuple[str, Any],
    passthrough: PassThrough,
    profile: str,
    error: type[BackendError],
    stream: bool,
) -> None:
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    before = len(fake[1].state.requests)
    with pytest.raises(BackendError) as caught:
        if stream:
            await passthrough.open_stream(endpoint(fake, profile), "m", body)
        else:
            await passthrough.forward(endpoint(fake, profile), "m", body)
    assert type(caught.value) is error
    assert "failure" in caught.value.message and profile.split("-")[1] in caught.value.message
    assert len(fake[1].state.requests) == before + 1  # no retries here


async def test_unreachable_and_slow_endpoints(
    fake: tuple[str, Any], passthrough: PassThrough
) -> None:
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}
    refused = EndpointConfig(base_url=f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(BackendUnavailableError):
        await passthrough.forward(refused, "m", body)
    with pytest.raises(BackendUnavailableError):
        await passthrough.open_stream(refused, "m", {**body, "stream": True})
    with pytest.raises(BackendTimeoutError):
        await passthrough.forward(endpoint(fake, "slow", timeout=0.3), "m", body)
    with pytest.raises(BackendError):
        await passthrough.forward(EndpointConfig(base_url="nowhere/v1"), "m", body)


async def test_the_wrong_call_for_the_body(passthrough: PassThrough) -> None:
    config = EndpointConfig(base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="open_stream"):
        await passthrough.forward(config, "m", {"messages": [], "stream": True})
    with pytest.raises(ValueError, match="forward"):
        await passthrough.open_stream(config, "m", {"messages": []})


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


# -- SSE framing, against hand-written streams ---------------------------------------------
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


async def test_connections_are_reused_and_closing_before_use_is_safe() -> None:
    peers: set[object] = set()

    async def handler(request: web.Request) -> web.Response:
        peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        return web.json_response({"id": "x", "choices": [], "usage": {"prompt_tokens": 1}})

    await PassThrough().aclose()  # never used: no session was made
    async with hand_written(handler) as config, PassThrough(trust_env=False) as pt:
        for _ in range(5):
            assert (await pt.forward(config, "m", {"messages": []})).exact
        stream = await pt.open_stream(config, "m", {"messages": [], "stream": True})
        assert isinstance(stream, Forwarded)  # JSON back for a stream: relayed as a reply
    assert len(peers) == 1  # one kept-alive connection served them all
    with pytest.raises(RuntimeError, match="closed"):
        await pt.forward(config, "m", {"messages": []})


async def test_an_exhausted_pool_is_unavailable() -> None:
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"id": "x", "choices": []})

    async with (
        hand_written(handler) as config,
        PassThrough(trust_env=False, max_connections=1) as pt,
    ):
        impatient = EndpointConfig(base_url=config.base_url, timeout=0.2)
        first = asyncio.create_task(pt.forward(config, "m", {"messages": []}))
        await asyncio.sleep(0.05)
        with pytest.raises(BackendUnavailableError, match="pool exhausted"):
            await pt.forward(impatient, "m", {"messages": []})
        release.set()
        assert (await first).status_code == 200
        await pt.forward(config, "m", {"messages": []})  # the slot came back
