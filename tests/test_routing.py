"""Routing through the whole server with the real openai SDK, against loopback fake endpoints
with failure profiles: fallbacks (on failure, on an overlong prompt, on a content filter's
refusal), cooldowns visible at /v1/deployments, Retry-After, a hung endpoint, a stream that
falls back before its first byte and one that dies after it, and names that resolve to
nothing creating nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from ponder.config import PonderConfig, ProviderConfig, RoutingSettings
from ponder.server.app import create_app
from tests.fake_openai import make_app, serve_app

ADMIN = "admin-secret"
MESSAGES: Any = [{"role": "user", "content": "What is 6 times 7?"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Any]]:
    app = make_app()
    with serve_app(app) as url:
        yield url, app


def server(url: str, deployments: dict[str, list[str]], **routing: Any) -> Any:
    """A Ponder server whose public model ``m`` is served by the given fake profiles (one
    provider each), plus ``good`` and ``also-good`` as fallback targets."""
    providers = [
        ProviderConfig(name=f"p{i}-{profile}", base_url=f"{url}/{profile}/v1", models=models)
        for i, (profile, models) in enumerate(deployments.items())
    ]
    config = PonderConfig(
        trace_db=":memory:",
        default_strategy=None,
        providers=tuple(providers),
        routing=RoutingSettings(**{"backoff": 0.01, **routing}),
    )
    return serve_app(create_app(config, admin_key=ADMIN))


def sdk(url: str, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=ADMIN, max_retries=0, **options)


def reached(app: Any, before: int) -> list[str]:
    return [profile for profile, _ in app.state.requests[before:]]


def status(url: str) -> dict[str, dict[str, Any]]:
    listed = httpx.get(f"{url}/v1/deployments", headers={"Authorization": f"Bearer {ADMIN}"})
    assert listed.status_code == 200
    return {d["id"]: d for d in listed.json()["data"]}


def test_a_failing_deployment_falls_over_to_the_other(upstream: tuple[str, Any]) -> None:
    url, app = upstream
    with server(url, {"error-503": ["m"], "vllm": ["m"]}) as ponder, sdk(ponder) as client:
        before = len(app.state.requests)
        for _ in range(20):
            reply = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=5)
            assert reply.choices[0].message.content == "The answer is 40."
        seen = reached(app, before)
        assert seen.count("vllm") == 20
        # The shuffle tries the failing one first about half the time; after allowed_fails
        # (3) failures it is cooled down and left alone.
        assert seen.count("error-503") == 3
        state = status(ponder)["p0-error-503/m"]
        assert state["cooling_down"] and state["cooldowns"] == 1
        assert state["failures"] == seen.count("error-503")
        metrics = httpx.get(f"{ponder}/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).text
        cooling = [line for line in metrics.splitlines() if "cooling_down{" in line]
        hot = [x for x in cooling if x.endswith(" 1.0")]
        assert len(hot) == 1 and 'deployment="p0-error-503/m"' in hot[0]


def test_fallbacks_after_every_deployment_failed(upstream: tuple[str, Any]) -> None:
    url, app = upstream
    with (
        server(
            url,
            {"error-500": ["m"], "vllm": ["good"]},
            fallbacks={"m": ("missing-model", "good")},
            num_retries=1,
        ) as ponder,
        sdk(ponder) as client,
    ):
        before = len(app.state.requests)
        reply = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=5)
        assert reply.choices[0].message.content == "The answer is 40."
        assert reached(app, before) == ["error-500", "error-500", "vllm"]


@pytest.mark.parametrize(
    ("profile", "table"),
    [("context", "context_window_fallbacks"), ("content", "content_policy_fallbacks")],
)
def test_refusals_fall_back_to_their_own_kind(
    upstream: tuple[str, Any], profile: str, table: str
) -> None:
    """An overlong prompt goes to the context-window fallbacks and a content filter's
    refusal to the content-policy ones, not to the plain fallbacks and without a retry."""
    url, app = upstream
    with (
        server(
            url,
            {profile: ["m"], "vllm": ["big"], "detailed": ["plain"]},
            fallbacks={"m": ("plain",)},
            **{table: {"m": ("big",)}},
        ) as ponder,
        sdk(ponder) as client,
    ):
        for stream in (False, True):
            before = len(app.state.requests)
            if stream:
                chunks = client.chat.completions.create(
                    model="m", messages=MESSAGES, max_tokens=5, stream=True
                )
                text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            else:
                reply = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=5)
                text = reply.choices[0].message.content or ""
            assert text == "The answer is 40."
            assert reached(app, before) == [profile, "vllm"]


def test_a_refusal_without_a_fallback_is_relayed_as_it_came(upstream: tuple[str, Any]) -> None:
    url, _ = upstream
    with server(url, {"context": ["m"]}) as ponder, sdk(ponder) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=5)
        assert caught.value.code == "context_length_exceeded"


def test_retry_after_is_honoured(upstream: tuple[str, Any]) -> None:
    url, app = upstream
    app.state.calls.pop("wait-1", None)
    with server(url, {"wait-1": ["m"]}) as ponder, sdk(ponder) as client:
        started = time.monotonic()
        reply = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=5)
        waited = time.monotonic() - started
        assert reply.choices[0].message.content == "The answer is 40."
        # The retry came after the second the endpoint asked for, not after the backoff.
        assert waited >= 1.0


def test_a_hung_deployment_times_out_and_falls_over(upstream: tuple[str, Any]) -> None:
    url, app = upstream
    with (
        server(
            url,
            {"hang": ["m"], "vllm": ["good"]},
            timeout=0.5,
            fallbacks={"m": ("good",)},
            num_retries=0,
        ) as ponder,
        sdk(ponder) as client,
    ):
        for strategy in (None, {"strategy": "cot"}):
            before = len(app.state.requests)
            reply = client.chat.completions.create(
                model="m",
                messages=MESSAGES,
                max_tokens=5,
                extra_body={"ponder": strategy} if strategy else None,
            )
            assert "40" in (reply.choices[0].message.content or "")
            assert reached(app, before) == ["hang", "vllm"]


def test_a_stream_falls_back_before_its_first_byte(upstream: tuple[str, Any]) -> None:
    url, app = upstream
    with (
        server(
            url, {"error-503": ["m"], "vllm": ["good"]}, fallbacks={"m": ("good",)}, num_retries=0
        ) as ponder,
        sdk(ponder) as client,
    ):
        for strategy in (None, {"strategy": "cot"}):
            before = len(app.state.requests)
            chunks = client.chat.completions.create(
                model="m",
                messages=MESSAGES,
                max_tokens=5,
                stream=True,
                extra_body={"ponder": strategy} if strategy else None,
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert "40" in text
            assert reached(app, before) == ["error-503", "vllm"]


def test_a_stream_that_dies_after_text_ends_with_an_error_and_is_recorded(
    upstream: tuple[str, Any],
) -> None:
    """Text already reached the client: no silent switch to another model mid-answer. The
    stream ends with an error event, and the tokens the client received are in the ledger."""
    url, app = upstream
    with (
        server(url, {"die-mid": ["m"], "vllm": ["good"]}, fallbacks={"m": ("good",)}) as ponder,
        sdk(ponder) as client,
    ):
        before = len(app.state.requests)
        received = []
        with pytest.raises(openai.APIError):
            for chunk in client.chat.completions.create(
                model="m",
                messages=MESSAGES,
                max_tokens=5,
                stream=True,
            ):
                if chunk.choices and chunk.choices[0].delta.content:
                    received.append(chunk.choices[0].delta.content)
        assert received == ["The", " answer"]
        assert reached(app, before) == ["die-mid"]
        usage = httpx.get(
            f"{ponder}/v1/usage", headers={"Authorization": f"Bearer {ADMIN}"}
        ).json()["m"]
        # Recorded as failed. Its tokens are what the endpoint reported, and it died before
        # its usage chunk: exact metering of a cut pass-through stream needs an endpoint that
        # reports usage on every chunk (vLLM's continuous_usage_stats).
        assert usage["requests"] == 1 and usage["failed"] == 1


def test_names_nobody_configured_create_nothing(upstream: tuple[str, Any]) -> None:
    url, _ = upstream
    with server(url, {"vllm": ["m"]}) as ponder, httpx.Client(base_url=ponder) as http:
        for i in range(200):
            for name in (f"p0-vllm/other-{i}", f"other-{i}", f"/tmp/x{i}.gguf"):
                reply = http.post(
                    "/v1/chat/completions",
                    json={"model": name, "messages": MESSAGES},
                    headers={"Authorization": f"Bearer {ADMIN}"},
                )
                assert reply.status_code == 404, reply.text
        remote = {k for k, d in status(ponder).items() if d["kind"] == "remote"}
        assert remote == {"p0-vllm/m"}
        health = http.get("/health").json()
        assert health["loaded_models"] == []


def test_a_key_has_fallbacks_of_its_own_tried_before_the_models(
    upstream: tuple[str, Any],
) -> None:
    url, app = upstream
    with server(
        url,
        {"error-502": ["m"], "vllm": ["keys-choice"], "detailed": ["model-choice"]},
        fallbacks={"m": ("model-choice",)},
        num_retries=0,
    ) as ponder:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        assert httpx.post(f"{ponder}/v1/admin/teams", headers=admin, json={"name": "t"}).is_success
        key = httpx.post(
            f"{ponder}/v1/admin/keys",
            headers=admin,
            json={"team": "t", "name": "k", "policy": {"fallbacks": {"m": ["keys-choice"]}}},
        ).json()["key"]
        for token, expected in ((key, "vllm"), (ADMIN, "detailed")):
            with sdk(ponder).with_options(api_key=token) as client:
                before = len(app.state.requests)
                client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=5)
                assert reached(app, before) == ["error-502", expected]
