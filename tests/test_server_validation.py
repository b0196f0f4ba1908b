"""Invalid requests get an OpenAI-shaped 400, never a 500, and nothing runs: non-finite
numbers anywhere, an unknown auto effort, strategies nested without end, lone surrogates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ponder.backends.scripted import ScriptedBackend
from ponder.config import PonderConfig
from ponder.routing.registry import BackendRegistry
from ponder.server.app import create_app
from tests.fake_openai import serve_app

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, ScriptedBackend]]:
    config = PonderConfig(default_model="s", trace_db=":memory:")
    registry = BackendRegistry(config)
    backend = ScriptedBackend.cycle(["The answer is: 7"])
    registry.register("s", backend)
    with serve_app(create_app(config, registry=registry, close_backends=False)) as url:
        yield url, backend


def nested(depth: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"strategy": "cot"}
    for _ in range(depth):
        spec = {"strategy": "self-consistency", "n": 1, "over": spec}
    return spec


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "ponder/cot;temperature=NaN/s", "messages": HI}, "ponder.temperature"),
        ({"model": "ponder/cot;temperature=-Infinity/s", "messages": HI}, "ponder.temperature"),
        ({"model": "s", "messages": HI, "temperature": float("nan")}, "temperature"),
        ({"model": "s", "messages": HI, "top_p": float("inf")}, "top_p"),
        ({"model": "s", "messages": HI, "ponder": {"strategy": "auto", "effort": "nope"}}, None),
        ({"model": "s", "messages": HI, "ponder": nested(900)}, "ponder.over"),
        ({"model": "s", "messages": HI, "stream": True, "ponder": nested(5)}, "ponder.over"),
    ],
)
def test_refused_with_a_400_before_any_work(
    server: tuple[str, ScriptedBackend], body: dict[str, Any], param: str | None
) -> None:
    url, backend = server
    before = len(backend.calls)
    reply = httpx.post(
        f"{url}/v1/chat/completions",
        content=json.dumps(body, allow_nan=True),
        headers={"content-type": "application/json"},
    )
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    assert len(backend.calls) == before


@pytest.mark.parametrize(
    "raw",
    [
        '{"model":"s","messages":[{"role":"user","content":"\\ud800"}]}',
        '{"model":"s","messages":[{"role":"user","content":"x"}],"stop":["\\udc00"]}',
    ],
)
def test_a_lone_surrogate_is_a_400(server: tuple[str, ScriptedBackend], raw: str) -> None:
    url, _ = server
    reply = httpx.post(
        f"{url}/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert reply.status_code == 400
    assert "surrogate" in reply.json()["error"]["message"]
    # The connection is still good for the next request.
    assert httpx.post(f"{url}/v1/chat/completions", json={"model": "s", "messages": HI}).is_success


def test_four_levels_of_over_still_run(server: tuple[str, ScriptedBackend]) -> None:
    url, _ = server
    body = {"model": "s", "messages": HI, "ponder": nested(3)}
    assert httpx.post(f"{url}/v1/chat/completions", json=body).status_code == 200
