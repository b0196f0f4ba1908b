"""The HTTP server, driven by the real openai SDK over loopback, and its error handling."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from ponder.backends.embedded import EmbeddedBackend
from ponder.backends.scripted import ScriptedBackend
from ponder.config import PonderConfig, ProviderConfig
from ponder.routing.registry import BackendRegistry
from ponder.server.app import create_app
from tests.fake_openai import serve_app

MODEL = "tiny"
MESSAGES: list[Any] = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def server(tiny_backend: EmbeddedBackend) -> Iterator[str]:
    # Pass-through: these tests pin the plain OpenAI surface, not a strategy.
    registry = BackendRegistry(
        PonderConfig(default_model=MODEL, max_n=8, trace_db=":memory:", default_strategy=None)
    )
    registry.register(MODEL, tiny_backend)
    with serve_app(create_app(registry.config, registry=registry, close_backends=False)) as url:
        yield url


@pytest.fixture
def client(server: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0) as c:
        yield c


def test_health_and_models(server: str) -> None:
    assert httpx.get(f"{server}/health").json()["status"] == "ok"
    ids = [m["id"] for m in httpx.get(f"{server}/v1/models").json()["data"]]
    assert MODEL in ids and "qwen2.5-coder-1.5b-instruct" in ids


def test_sync_completion(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=8, temperature=0
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content
    assert reply.usage is not None
    assert reply.usage.completion_tokens <= 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_n_logprobs_seed_stop(client: openai.OpenAI) -> None:
    kwargs: dict[str, Any] = dict(
        model=MODEL,
        messages=MESSAGES,
        max_completion_tokens=6,
        n=3,
        seed=11,
        temperature=0.9,
        logprobs=True,
        top_logprobs=3,
        stop=["\n\n"],
    )
    first = client.chat.completions.create(**kwargs)
    again = client.chat.completions.create(**kwargs)
    assert len(first.choices) == 3
    assert [c.message.content for c in first.choices] == [c.message.content for c in again.choices]
    for choice in first.choices:
        assert choice.logprobs is not None and choice.logprobs.content
        assert len(choice.logprobs.content[0].top_logprobs) == 3
    assert first.usage is not None
    assert first.usage.completion_tokens == sum(
        len(c.logprobs.content or []) for c in first.choices if c.logprobs
    )


def test_sync_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=8,
        n=2,
        temperature=0.8,
        seed=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts = ["", ""]
    finishes: dict[int, str] = {}
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert all(texts)
    assert set(finishes) == {0, 1}
    assert usage is not None and 0 < usage.completion_tokens <= 16


async def test_async_client_streamed_and_not(server: str) -> None:
    async with openai.AsyncOpenAI(
        base_url=f"{server}/v1", api_key="unused", max_retries=0
    ) as client:
        reply = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=6, temperature=0
        )
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=6, temperature=0, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == reply.choices[0].message.content


def test_json_schema_response_format(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    reply = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=20,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
    )
    assert isinstance(json.loads(reply.choices[0].message.content or "")["ok"], bool)


def test_unknown_fields_are_accepted(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=4, extra_body={"some_future_field": {"x": 1}}
    )
    assert reply.choices


def _post(server: str, body: Any, raw: bool = False) -> httpx.Response:
    if raw:
        return httpx.post(
            f"{server}/v1/chat/completions",
            content=body,
            headers={"content-type": "application/json"},
        )
    return httpx.post(f"{server}/v1/chat/completions", json=body)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": MODEL, "messages": MESSAGES, "n": 0}, 400, "n"),
        ({"model": MODEL, "messages": MESSAGES, "n": 9}, 400, "n"),
        ({"model": MODEL, "messages": MESSAGES, "temperature": "hot"}, 400, "temperature"),
        ({"model": MODEL, "messages": "hello"}, 400, "messages"),
        ({"model": MODEL, "messages": []}, 400, "messages"),
        (
            {"model": MODEL, "messages": MESSAGES, "top_logprobs": 21, "logprobs": True},
            400,
            "top_logprobs",
        ),
        ({"model": MODEL, "messages": MESSAGES, "top_logprobs": 2}, 400, "top_logprobs"),
        ({"model": MODEL, "messages": MESSAGES, "max_tokens": 100000}, 400, "max_tokens"),
        ({"messages": MESSAGES}, 400, "model"),
        ({"model": "no-such-model", "messages": MESSAGES}, 404, "model"),
    ],
)
def test_bad_requests_get_openai_shaped_4xx(
    server: str, body: Any, status: int, param: str
) -> None:
    response = _post(server, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    assert error["type"]
    assert (error["param"] or "").startswith(param)


def test_malformed_json(server: str) -> None:
    response = _post(server, b'{"model": "tiny", "messages": [', raw=True)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_sdk_raises_typed_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, n=100)


def test_usage_of_every_request_is_recorded(server: str, client: openai.OpenAI) -> None:
    before = (
        httpx.get(f"{server}/v1/usage").json().get(MODEL, {"completion_tokens": 0, "requests": 0})
    )
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5)
    after = httpx.get(f"{server}/v1/usage").json()[MODEL]
    assert reply.usage is not None
    assert after["completion_tokens"] - before["completion_tokens"] == reply.usage.completion_tokens
    assert after["requests"] == before["requests"] + 1


def test_remote_provider_through_the_server_passes_tools(fake_endpoint: tuple[str, Any]) -> None:
    url, app = fake_endpoint
    config = PonderConfig(
        providers=(ProviderConfig(name="lab", base_url=f"{url}/vllm/v1", models=("org/m:7b",)),),
        trace_db=":memory:",
        default_strategy=None,
    )
    tools = [{"type": "function", "function": {"name": "calc", "parameters": {"type": "object"}}}]
    with (
        serve_app(create_app(config)) as server,
        openai.OpenAI(base_url=f"{server}/v1", api_key="x") as client,
    ):
        reply = client.chat.completions.create(
            model="lab/org/m:7b", messages=MESSAGES, n=2, seed=0, tools=tools, tool_choice="auto"
        )
    assert [c.message.content for c in reply.choices] == ["The answer is 40.", "The answer is 41."]
    assert reply.usage is not None and reply.usage.completion_tokens == 10
    _profile, body = app.state.requests[-1]  # type: ignore[attr-defined]
    assert body["model"] == "org/m:7b"
    assert body["tools"] == tools and body["tool_choice"] == "auto"


def _tagged(url: str, tag: str, *, failed: int, timeout: float = 30.0) -> dict[str, Any]:
    """The ledger row of ``tag`` once it holds ``failed`` failed requests."""
    deadline = time.monotonic() + timeout
    while True:
        row: dict[str, Any] = httpx.get(f"{url}/v1/usage", params={"tag": tag}).json()
        if row["failed"] >= failed or time.monotonic() > deadline:
            return row
        time.sleep(0.05)


@pytest.fixture(scope="module")
def slow_server() -> Iterator[tuple[str, ScriptedBackend]]:
    # 60 tokens, one every 50 ms: three seconds if nobody stops it.
    backend = ScriptedBackend(lambda request, index: "tick " * 60, token_delay=0.05)
    config = PonderConfig(default_model="slow", trace_db=":memory:", default_strategy=None)
    registry = BackendRegistry(config)
    registry.register("slow", backend)
    with serve_app(create_app(config, registry=registry)) as url:
        yield url, backend


@pytest.mark.parametrize("strategy", [None, {"strategy": "self-consistency", "n": 3}])
def test_a_client_that_leaves_a_plain_request_cancels_it_and_its_usage_is_kept(
    slow_server: tuple[str, ScriptedBackend], strategy: dict[str, Any] | None
) -> None:
    url, _ = slow_server
    tag = f"left-{bool(strategy)}"
    body: dict[str, Any] = {"model": f"slow#{tag}", "messages": MESSAGES}
    if strategy:
        body["ponder"] = strategy
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/v1/chat/completions", json=body, timeout=0.5)
    row = _tagged(url, tag, failed=1)
    assert row["requests"] == 1 and row["failed"] == 1
    # Cancelled on disconnect: far fewer than the 60 tokens (180 for three paths) a finished
    # request would have decoded, but the tokens that were decoded are all counted.
    paths = 3 if strategy else 1
    assert 0 < row["completion_tokens"] < 30 * paths
    assert row["calls"] == 1  # self-consistency samples its three paths in one call
    time.sleep(1.0)
    assert _tagged(url, tag, failed=1)["completion_tokens"] == row["completion_tokens"]


def test_a_client_that_leaves_a_stream_has_its_tokens_counted_exactly(
    slow_server: tuple[str, ScriptedBackend],
) -> None:
    url, _ = slow_server
    body = {"model": "slow#left-stream", "messages": MESSAGES, "stream": True}
    seen = 0
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and 'tick"' in line:
                seen += 1
                if seen == 5:
                    break
    row = _tagged(url, "left-stream", failed=1)
    assert row["failed"] == 1
    assert 5 <= row["completion_tokens"] < 30


def test_a_client_that_leaves_stops_the_embedded_engine(server: str) -> None:
    body = {
        "model": f"{MODEL}#left-engine",
        "messages": [{"role": "user", "content": "Count from 1 to 1000, one number per line."}],
        "max_tokens": 1500,
        "temperature": 0,
    }
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server}/v1/chat/completions", json=body, timeout=1.0)
    row = _tagged(server, "left-engine", failed=1)
    assert row["failed"] == 1
    # The engine stopped the sequence and reported its exact count: some tokens, not 1500.
    assert 0 < row["completion_tokens"] < 1500
    assert row["prompt_tokens"] > 0
