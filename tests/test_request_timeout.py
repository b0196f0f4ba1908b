"""Per-request timeouts: the server's ``request_timeout`` and a client's shorter
``X-Ponder-Timeout`` stop a request's work at its deadline; the client gets a 504 (or an
error event once its stream has begun), and what the work spent is still recorded."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ponder.backends.scripted import ScriptedBackend
from ponder.config import EndpointConfig, PonderConfig, ProviderConfig
from ponder.errors import InvalidRequestError
from ponder.gateway.deadline import request_timeout
from ponder.routing.registry import BackendRegistry
from ponder.server.app import create_app
from tests.fake_openai import serve_app

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


def served(fake_url: str | None = None, **config: Any) -> Any:
    """A server whose model "m" writes one word every 0.3 s (eight words: 2.4 s)."""
    providers = ()
    if fake_url is not None:
        endpoint = EndpointConfig(base_url=f"{fake_url}/slow/v1", timeout=30.0)
        providers = (ProviderConfig(name="up", models=("far",), **endpoint.endpoint_fields()),)
    settings = PonderConfig(
        default_model="m", trace_db=":memory:", default_strategy=None, providers=providers
    ).replace(**config)
    registry = BackendRegistry(settings)
    slow = ScriptedBackend.cycle(["one two three four five six seven eight"])
    slow.token_delay = 0.3
    registry.register("m", slow)
    return serve_app(create_app(settings, registry=registry))


def usage(url: str, model: str = "m") -> dict[str, Any]:
    """The server's usage totals for ``model`` (zeros before its first request)."""
    reply = httpx.get(f"{url}/v1/usage")
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json().get(model, {"completion_tokens": 0, "failed": 0})
    return data


def test_the_shortest_timeout_wins_and_a_bad_one_is_a_400() -> None:
    assert request_timeout({}, None) is None
    assert request_timeout({}, 30.0) == 30.0
    assert request_timeout({"x-ponder-timeout": "2.5"}, 30.0) == 2.5
    assert request_timeout({"x-ponder-timeout": "60"}, 30.0) == 30.0  # never past the server's
    assert request_timeout({"x-stainless-timeout": "5"}, None) == 5.0  # the SDK's own
    assert request_timeout({"x-stainless-timeout": "junk"}, 7.0) == 7.0  # not ours to refuse
    for bad in ("0", "-1", "nan", "inf", "soon"):
        with pytest.raises(InvalidRequestError):
            request_timeout({"x-ponder-timeout": bad}, None)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with served() as base:
        yield base


def test_a_request_past_its_timeout_is_a_504_and_its_spend_is_recorded(url: str) -> None:
    before = usage(url)
    started = time.monotonic()
    reply = httpx.post(
        f"{url}/v1/chat/completions", json=BODY, headers={"X-Ponder-Timeout": "1"}, timeout=30
    )
    took = time.monotonic() - started
    assert reply.status_code == 504, reply.text
    assert reply.json()["error"]["code"] == "request_timeout"
    assert took < 2.2  # stopped at its deadline, not after the whole reply (2.4 s)
    after = usage(url)
    spent = after["completion_tokens"] - before["completion_tokens"]
    assert 1 <= spent < 8  # the words written before the deadline, no more
    assert after["failed"] == before["failed"] + 1


def test_a_stream_past_its_timeout_ends_with_an_error_event(url: str) -> None:
    events: list[Any] = []
    with httpx.stream(
        "POST",
        f"{url}/v1/chat/completions",
        json={**BODY, "stream": True},
        headers={"X-Ponder-Timeout": "1"},
        timeout=30,
    ) as reply:
        assert reply.status_code == 200
        for line in reply.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[6:]))
    words = [e for e in events if "choices" in e and e["choices"][0]["delta"].get("content")]
    assert 1 <= len(words) < 8
    assert events[-1]["error"]["code"] == "request_timeout"


def test_a_request_within_its_timeout_is_unaffected(url: str) -> None:
    reply = httpx.post(
        f"{url}/v1/chat/completions", json=BODY, headers={"X-Ponder-Timeout": "20"}, timeout=30
    )
    assert reply.status_code == 200
    assert reply.json()["usage"]["completion_tokens"] == 8


def test_the_server_timeout_bounds_a_pass_through(fake_endpoint: tuple[str, object]) -> None:
    """The fake's "slow" profile waits 5 s before answering; the server allows 1 s."""
    with served(fake_endpoint[0], request_timeout=1.0) as base:
        started = time.monotonic()
        reply = httpx.post(f"{base}/v1/chat/completions", json={**BODY, "model": "far"}, timeout=30)
        assert reply.status_code == 504, reply.text
        assert reply.json()["error"]["code"] == "request_timeout"
        assert time.monotonic() - started < 4
        assert usage(base, "far")["failed"] == 1


def test_a_response_past_its_timeout_is_a_504_too(url: str) -> None:
    reply = httpx.post(
        f"{url}/v1/responses",
        json={"model": "m", "input": "hi", "max_output_tokens": 8},
        headers={"X-Ponder-Timeout": "1"},
        timeout=30,
    )
    assert reply.status_code == 504, reply.text
    assert reply.json()["error"]["code"] == "request_timeout"
