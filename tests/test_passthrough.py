"""The pass-through against a loopback endpoint: what goes upstream is what the client sent
(``model`` replaced), what comes back is what the endpoint said, and usage is exact or says
it is not. Streams relayed, cut and framed: tests/test_passthrough_stream.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from ponder.backends.endpoint import EndpointConfig
from ponder.errors import BackendError, BackendTimeoutError, BackendUnavailableError
from ponder.gateway.passthrough import Forwarded, PassThrough, RelayStream, upstream_body
from ponder.types import Usage
from tests.fake_openai import THINKING, answer_tokens, free_port
from tests.passthrough_helpers import (  # noqa: F401
    RICH,
    endpoint,
    hand_written,
    last_request,
    open_passthrough,
    relay,
    served_fake,
)


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


# -- connections --------------------------------------------------------------------------
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
