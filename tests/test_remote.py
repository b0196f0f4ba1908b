"""The remote backend against a loopback endpoint that mimics real endpoints' quirks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from ponder.backends.remote import RemoteBackend, RemoteConfig
from ponder.errors import BackendTimeoutError, BackendUnavailableError, PonderError
from ponder.metering import recording
from ponder.types import GenerationRequest, Message, SamplingParams, Usage
from tests.fake_openai import THINKING, answer_tokens
from tests.test_passthrough import hand_written

Q = (Message("user", "What is six times seven?"),)


def backend(endpoint: tuple[str, Any], profile: str, **config: Any) -> RemoteBackend:
    url, _ = endpoint
    return RemoteBackend(
        RemoteConfig(base_url=f"{url}/{profile}/v1", model=config.pop("model", "m"), **config)
    )


def req(n: int = 1, **sampling: Any) -> GenerationRequest:
    return GenerationRequest(messages=Q, n=n, sampling=SamplingParams(**sampling))


async def test_native_n_with_exact_usage(fake_endpoint: tuple[str, Any]) -> None:
    remote = backend(fake_endpoint, "vllm")
    result = await remote.generate(req(n=3, seed=0))
    assert [c.text for c in result.choices] == ["".join(answer_tokens(i, 0)) for i in range(3)]
    assert result.usage.completion_tokens == 15
    assert result.usage.calls == 1
    await remote.aclose()


async def test_llama_server_under_reported_usage_is_counted_per_choice(
    fake_endpoint: tuple[str, Any],
) -> None:
    _, app = fake_endpoint
    remote = backend(fake_endpoint, "llama-server")
    result = await remote.generate(req(n=4))
    # The endpoint said 5 completion tokens; the four choices hold 20.
    assert result.usage.completion_tokens == 20
    assert [c.completion_tokens for c in result.choices] == [5, 5, 5, 5]
    # Logprobs were only asked for counting; the caller did not ask and does not get them.
    assert all(c.logprobs is None for c in result.choices)
    profile, body = app.state.requests[-1]
    assert profile == "llama-server" and body["logprobs"] is True
    await remote.aclose()


async def test_fan_out_where_n_is_ignored(fake_endpoint: tuple[str, Any]) -> None:
    remote = backend(fake_endpoint, "ollama")
    result = await remote.generate(req(n=3, seed=10))
    assert len(result.choices) == 3
    assert [c.index for c in result.choices] == [0, 1, 2]
    # Fanned-out paths get distinct seeds, so they differ.
    assert len({c.text for c in result.choices}) == 3
    assert result.usage.calls == 3
    assert result.usage.completion_tokens == 15
    # The endpoint is now known to ignore n: the next call fans out directly.
    calls_before = len(fake_endpoint[1].state.requests)  # type: ignore[attr-defined]
    await remote.generate(req(n=2, seed=1))
    assert len(fake_endpoint[1].state.requests) - calls_before == 2  # type: ignore[attr-defined]
    await remote.aclose()


@pytest.mark.parametrize("profile", ["vllm", "ollama", "think-tags"])
async def test_thinking_is_separated_from_the_answer(
    fake_endpoint: tuple[str, Any], profile: str
) -> None:
    remote = backend(fake_endpoint, profile, model="think-model")
    result = await remote.generate(req())
    assert result.choices[0].reasoning == "".join(THINKING)
    assert result.choices[0].text == "".join(answer_tokens(0, None))


@pytest.mark.parametrize("profile", ["vllm", "think-tags", "ollama"])
async def test_streamed_thinking_and_content(fake_endpoint: tuple[str, Any], profile: str) -> None:
    remote = backend(fake_endpoint, profile, model="think-model")
    stream = remote.stream(req())
    reasoning, content = "", ""
    async for delta in stream:
        reasoning += delta.reasoning
        content += delta.text
    assert reasoning == "".join(THINKING)
    assert content == "".join(answer_tokens(0, None))
    assert stream.usage.completion_tokens == len(THINKING) + 5


async def test_stream_native_n_counts_every_choice(fake_endpoint: tuple[str, Any]) -> None:
    remote = backend(fake_endpoint, "llama-server", native_n=True)
    stream = remote.stream(req(n=3))
    finals = {}
    async for delta in stream:
        if delta.finish_reason:
            finals[delta.index] = delta.completion_tokens
    assert finals == {0: 5, 1: 5, 2: 5}
    assert stream.usage.completion_tokens == 15


async def test_cancel_one_fanned_out_stream(fake_endpoint: tuple[str, Any]) -> None:
    remote = backend(fake_endpoint, "ollama", native_n=False)
    stream = remote.stream(req(n=2))
    finals: dict[int, str] = {}
    async for delta in stream:
        if delta.index == 1 and delta.text and 1 not in finals:
            stream.cancel(1)
        if delta.finish_reason:
            finals[delta.index] = delta.finish_reason
    assert finals[0] == "stop"
    assert finals[1] == "cancelled"


def sse(choices: list[Any], usage: dict[str, int] | None = None) -> bytes:
    payload = {"id": "c", "object": "chat.completion.chunk", "choices": choices, "usage": usage}
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def token(text: str, finish: str | None = None) -> list[Any]:
    logprobs = {"content": [{"token": text, "logprob": -0.1, "bytes": None, "top_logprobs": []}]}
    return [{"index": 0, "delta": {"content": text}, "logprobs": logprobs, "finish_reason": finish}]


async def test_stream_options_from_the_provider_and_usage_on_every_chunk() -> None:
    """vLLM's continuous_usage_stats, set in the provider's extra_body: sent only with a
    stream (vLLM refuses it otherwise), with include_usage; the usage on every chunk is
    cumulative, so it counts once."""
    bodies: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        bodies.append(body)
        if not body.get("stream"):
            usage = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
            message = {"role": "assistant", "content": "a"}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return web.json_response({"id": "c", "choices": [choice], "usage": usage})
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for k in range(1, 4):
            usage = {"prompt_tokens": 5, "completion_tokens": k, "total_tokens": 5 + k}
            await response.write(sse(token(" t", "stop" if k == 3 else None), usage))
        usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        await response.write(sse([], usage) + b"data: [DONE]\n\n")
        return response

    async with hand_written(handler) as endpoint:
        extra = {"stream_options": {"continuous_usage_stats": True}, "top_k": 3}
        remote = RemoteBackend(
            RemoteConfig(base_url=endpoint.base_url, model="m", max_retries=0, extra_body=extra)
        )
        result = await remote.generate(req())
        assert result.usage == Usage(prompt_tokens=5, completion_tokens=1, calls=1)
        stream = remote.stream(req())
        assert "".join([d.text async for d in stream]) == " t t t"
        assert stream.usage == Usage(prompt_tokens=5, completion_tokens=3, calls=1)
        await remote.aclose()
    plain, streamed = bodies
    assert "stream_options" not in plain and plain["top_k"] == 3
    assert streamed["stream_options"] == {"continuous_usage_stats": True, "include_usage": True}
    assert streamed["top_k"] == 3


async def test_a_stream_cut_before_its_usage_counts_the_tokens_received() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(token(" a")) + sse(token(" b")))
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.close()  # the endpoint dies before its usage chunk
        return response

    async with hand_written(handler) as endpoint:
        remote = RemoteBackend(RemoteConfig(base_url=endpoint.base_url, model="m", max_retries=0))
        with recording() as log:
            stream = remote.stream(req())
        with pytest.raises(PonderError):
            async for _ in stream:
                pass
        await remote.aclose()
    # Logprobs were asked for counting: the two completion tokens received are recorded (the
    # prompt's, never reported, are not known).
    (record,) = log.records
    assert record.usage == Usage(completion_tokens=2, calls=1) and record.outcome == "error"


async def test_retries_with_backoff_on_503(fake_endpoint: tuple[str, Any]) -> None:
    remote = backend(fake_endpoint, "flaky", max_retries=3)
    result = await remote.generate(req())
    assert result.text == "".join(answer_tokens(0, None))


async def test_gives_up_when_retries_are_exhausted(fake_endpoint: tuple[str, Any]) -> None:
    _, app = fake_endpoint
    app.state.calls["flaky"] = 0  # type: ignore[attr-defined]
    remote = backend(fake_endpoint, "flaky", max_retries=0)
    with pytest.raises(BackendUnavailableError):
        await remote.generate(req())


async def test_timeout(fake_endpoint: tuple[str, Any]) -> None:
    remote = backend(fake_endpoint, "slow", timeout=0.5, max_retries=0)
    with pytest.raises(BackendTimeoutError):
        await remote.generate(req())


async def test_logprobs_pass_through(fake_endpoint: tuple[str, Any]) -> None:
    remote = backend(fake_endpoint, "vllm")
    result = await remote.generate(req(logprobs=True, top_logprobs=2))
    logprobs = result.choices[0].logprobs
    assert logprobs is not None and len(logprobs) == 5
    assert logprobs[0].top[0].logprob == -0.25


async def test_remote_over_a_real_model_through_ponders_own_server(tiny_backend: Any) -> None:
    """A real endpoint: Ponder's server in front of the embedded model, reached over HTTP."""
    from ponder.config import PonderConfig
    from ponder.routing.registry import BackendRegistry
    from ponder.server.app import create_app
    from tests.fake_openai import serve_app

    config = PonderConfig(default_model="tiny", trace_db=":memory:", default_strategy=None)
    registry = BackendRegistry(config)
    registry.register("tiny", tiny_backend)
    with serve_app(create_app(registry.config, registry=registry, close_backends=False)) as url:
        remote = RemoteBackend(RemoteConfig(base_url=f"{url}/v1", model="tiny"))
        result = await remote.generate(req(n=3, temperature=0.0, max_tokens=8))
        direct = await tiny_backend.generate(req(n=3, temperature=0.0, max_tokens=8))
        assert [c.text for c in result.choices] == [c.text for c in direct.choices]
        assert result.usage.completion_tokens == direct.usage.completion_tokens
        await remote.aclose()
