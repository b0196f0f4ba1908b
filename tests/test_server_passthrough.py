"""Pass-through through the whole server, with the real openai SDK: a request no strategy
applies to reaches the endpoint as the client sent it (model id aside), comes back as the
endpoint sent it, and its usage is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from ponder.config import PonderConfig, ProviderConfig
from ponder.server.app import create_app
from tests.fake_openai import make_app, serve_app
from tests.test_passthrough import RICH


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Any]]:
    app = make_app()
    with serve_app(app) as url:
        yield url, app


def ponder_server(upstream_url: str, *, default: str | None, profile: str = "vllm") -> Any:
    config = PonderConfig(
        trace_db=":memory:",
        default_strategy={"strategy": default} if default else None,
        providers=(
            ProviderConfig(
                name="up", base_url=f"{upstream_url}/{profile}/v1", models=("served-model",)
            ),
        ),
    )
    return serve_app(create_app(config))


def last_body(app: Any) -> dict[str, Any]:
    profile, body = app.state.requests[-1]
    assert profile == "vllm"
    return dict(body)


def test_every_field_goes_upstream_unchanged(upstream: tuple[str, Any]) -> None:
    url, app = upstream
    with ponder_server(url, default=None) as ponder:
        # reasoning_effort picks Ponder's own level (see test_reasoning_effort_none_...).
        sent = {k: v for k, v in RICH.items() if k != "reasoning_effort"}
        sent["model"] = "up/served-model"
        reply = httpx.post(f"{ponder}/v1/chat/completions", json=sent)
        assert reply.status_code == 200, reply.text
        got = last_body(app)
        assert got == {**sent, "model": "served-model"}  # nothing dropped, added or renamed
        assert list(got) == list(sent)  # in the client's order
        usage = httpx.get(f"{ponder}/v1/usage").json()["up/served-model"]
        assert usage["total_tokens"] == reply.json()["usage"]["total_tokens"] > 0


def test_the_sdk_streams_through_with_usage_recorded(upstream: tuple[str, Any]) -> None:
    url, app = upstream
    with ponder_server(url, default=None) as ponder:
        with openai.OpenAI(base_url=f"{ponder}/v1", api_key="client-key", max_retries=0) as sdk:
            chunks = list(
                sdk.chat.completions.create(
                    model="served-model",
                    messages=[{"role": "user", "content": "Hi"}],
                    stream=True,
                    max_tokens=5,
                    extra_body={"chat_template_kwargs": {"enable_thinking": False}},
                )
            )
        got = last_body(app)
        assert got["chat_template_kwargs"] == {"enable_thinking": False}
        assert "logprobs" not in got and "temperature" not in got and "top_p" not in got
        # Metering asked for the usage chunk upstream; the client, who did not, gets none.
        assert got["stream_options"] == {"include_usage": True}
        assert all(c.usage is None for c in chunks)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text
        usage = httpx.get(f"{ponder}/v1/usage").json()["served-model"]
        assert usage["completion_tokens"] > 0 and usage["failed"] == 0


def test_the_default_strategy_passes_through_what_it_cannot_honour(
    upstream: tuple[str, Any],
) -> None:
    url, app = upstream
    with ponder_server(url, default="auto") as ponder:
        body = {
            "model": "served-model",
            "messages": [{"role": "user", "content": "Add 2 and 3."}],
            "tools": RICH["tools"],
            "tool_choice": "required",
            "logprobs": True,
        }
        reply = httpx.post(f"{ponder}/v1/chat/completions", json=body)
        assert reply.status_code == 200
        assert "ponder" not in reply.json()  # no strategy ran
        assert last_body(app) == body
        # Naming a strategy with the same fields is refused, before anything goes upstream.
        before = len(app.state.requests)
        named = {**body, "model": "ponder/cot/served-model"}
        refused = httpx.post(f"{ponder}/v1/chat/completions", json=named)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "unsupported_feature"
        assert len(app.state.requests) == before


def test_reasoning_effort_none_passes_through_and_is_forwarded(
    upstream: tuple[str, Any],
) -> None:
    url, app = upstream
    with ponder_server(url, default=None) as ponder:
        body = {
            "model": "served-model",
            "messages": [{"role": "user", "content": "Hi"}],
            "reasoning_effort": "none",  # maps to no strategy, and is forwarded as sent
        }
        assert httpx.post(f"{ponder}/v1/chat/completions", json=body).status_code == 200
        assert last_body(app) == body


def test_ponders_own_field_never_goes_upstream(upstream: tuple[str, Any]) -> None:
    url, app = upstream
    with ponder_server(url, default=None) as ponder:
        body = {"model": "served-model", "messages": [{"role": "user", "content": "Hi"}], "n": 2}
        reply = httpx.post(f"{ponder}/v1/chat/completions", json={**body, "ponder": None})
        assert reply.status_code == 200
        assert last_body(app) == body


def test_a_client_error_comes_back_as_the_endpoint_sent_it(upstream: tuple[str, Any]) -> None:
    url, _app = upstream
    with ponder_server(url, default=None, profile="error-422") as ponder:
        body = {"model": "served-model", "messages": [{"role": "user", "content": "Hi"}]}
        reply = httpx.post(f"{ponder}/v1/chat/completions", json=body)
        assert reply.status_code == 422
        assert reply.json() == {"error": {"message": "failure 422", "type": "fake", "code": 422}}
        usage = httpx.get(f"{ponder}/v1/usage").json()["served-model"]
        assert usage["failed"] == 1 and usage["total_tokens"] == 0
