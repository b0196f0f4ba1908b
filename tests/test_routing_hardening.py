"""Routing under hostile input, from a review of the routing change: a pass-through that
falls back to a local model, Retry-After that is huge or infinite, redaction of every field
that goes upstream, streams closed unread, client strings of any size, lone surrogates in
names and policies, retries under a spending cap, flags that must not fail open, and one
GGUF file under many spellings."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ponder.backends.scripted import ScriptedBackend
from ponder.config import PolicySettings, PonderConfig, ProviderConfig, RoutingSettings
from ponder.routing.catalog import MAX_RESOLVED
from ponder.routing.registry import BackendRegistry
from ponder.server.app import create_app
from ponder.types import GenerationRequest, Message
from tests.fake_openai import make_app, serve_app

ADMIN = "admin-secret"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
EMAIL = "jane.doe+ops@example.com"


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Any]]:
    app = make_app()
    with serve_app(app) as url:
        yield url, app


def _server(url: str, profile: str, *, local: str | None = None, **config: Any) -> Any:
    """``m`` served by one fake endpoint profile; optionally ``local`` registered as an
    in-process (non-remote, local) model."""
    cfg = PonderConfig(
        trace_db=":memory:",
        default_strategy=None,
        providers=(ProviderConfig(name="cloud", base_url=f"{url}/{profile}/v1", models=("m",)),),
        **config,
    )
    registry = BackendRegistry(cfg)
    if local is not None:
        registry.register(local, ScriptedBackend.cycle(["The answer is 42."]), local=True)
    return serve_app(create_app(cfg, registry=registry, admin_key=ADMIN))


def _chat(base: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(
        f"{base}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "6*7?"}], "max_tokens": 5, **body},
        headers={**AUTH, **headers},
        timeout=30,
    )


# -- 1. the pass-through falls back onto a deployment that has no endpoint -----------------
@pytest.mark.parametrize("stream", [False, True])
def test_passthrough_fallback_to_a_local_model_is_not_a_500(
    upstream: tuple[str, Any], stream: bool
) -> None:
    url, _ = upstream
    routing = RoutingSettings(backoff=0.01, num_retries=0, fallbacks={"m": ("home",)})
    with _server(url, "error-503", local="home", routing=routing) as base:
        reply = _chat(base, {"model": "m", "stream": stream})
        assert reply.status_code != 500, reply.text  # AssertionError in forwarding.py:55


def test_local_only_header_on_a_remote_model_with_a_local_fallback_is_not_a_500(
    upstream: tuple[str, Any],
) -> None:
    url, _ = upstream
    routing = RoutingSettings(fallbacks={"m": ("home",)})
    with _server(url, "vllm", local="home", routing=routing) as base:
        reply = _chat(base, {"model": "m"}, **{"X-Ponder-Local-Only": "1"})
        assert reply.status_code in (200, 403), reply.text


# -- 2. Retry-After ---------------------------------------------------------------------------
def test_a_long_retry_after_is_not_reported_as_a_policy_refusal(upstream: tuple[str, Any]) -> None:
    url, _ = upstream
    with _server(url, "wait-60", routing=RoutingSettings(backoff=0.01)) as base:
        first = _chat(base, {"model": "m"})
        assert first.status_code >= 400
        second = _chat(base, {"model": "m"})
        # The only deployment asked to wait 60 s: a 429/503, not 403 policy_denied.
        assert second.status_code != 403, second.text


@pytest.mark.parametrize("wait", ["inf", "100000000"])
def test_retry_after_is_capped(upstream: tuple[str, Any], wait: str) -> None:
    """An endpoint's Retry-After of ~forever must not switch a deployment off for good."""
    url, _ = upstream
    with _server(url, f"wait-{wait}", routing=RoutingSettings(backoff=0.01)) as base:
        _chat(base, {"model": "m"})
        listed = httpx.get(f"{base}/v1/deployments", headers=AUTH).json()["data"]
        (cloud,) = [d for d in listed if d["id"] == "cloud/m"]
        seconds = cloud["retry_after_seconds"]
        assert seconds is not None and seconds <= 3600, seconds  # inf shows as null


# -- 3. redaction misses parts of the request that go upstream ----------------------------
@pytest.mark.parametrize(
    "extra",
    [
        {"messages": [{"role": "user", "name": EMAIL, "content": "hello"}]},
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "notify",
                        "description": f"Mail the result to {EMAIL}",
                        "parameters": {"type": "object", "properties": {}},
                    },
                }
            ]
        },
        {"stop": [EMAIL]},
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "r",
                    "schema": {"type": "string", "description": f"the owner is {EMAIL}"},
                },
            }
        },
    ],
    ids=["message-name", "tools-description", "stop", "json-schema"],
)
def test_redaction_covers_every_field_sent_upstream(
    upstream: tuple[str, Any], extra: dict[str, Any]
) -> None:
    url, app = upstream
    with _server(url, "echo", policy=PolicySettings(redact=True)) as base:
        before = len(app.state.requests)
        reply = _chat(base, {"model": "m", **extra})
        assert reply.status_code == 200, reply.text
        sent = json.dumps([body for _, body in app.state.requests[before:]])
        assert EMAIL not in sent


# -- 4. health.in_flight leaks when an eagerly opened stream is closed unread ---------------
async def test_a_routed_stream_closed_before_it_is_read_ends_its_call() -> None:
    registry = BackendRegistry(PonderConfig(trace_db=":memory:"))
    registry.register("x", ScriptedBackend.cycle(["hello"]))
    routed = await registry.get("x")
    stream = routed.stream(GenerationRequest(messages=(Message("user", "hi"),)))
    await stream.aclose()
    await asyncio.sleep(0.05)
    deployment = routed.group.deployments[0]
    assert registry.health.state(deployment).in_flight == 0


# -- 5. the resolved-name cache is bounded in entries but not in bytes ---------------------
def test_the_resolved_name_cache_does_not_keep_client_strings_of_any_size() -> None:
    registry = BackendRegistry(
        PonderConfig(
            trace_db=":memory:",
            providers=(ProviderConfig(name="p", base_url="http://127.0.0.1:9/v1", models=("m",)),),
        )
    )
    junk = "x" * 100_000
    for i in range(50):
        registry.resolve(f"m#{i}{junk}")  # a '#tag' of any length resolves to m
    kept = sum(len(k) for k in registry.catalog._resolved)
    # 4096 such names (a few MB request bodies each) would pin gigabytes for good.
    assert kept < 1_000_000, f"{kept} characters of client text kept (bound: {MAX_RESOLVED} keys)"


# -- 6. a refused request whose model string has a lone surrogate is a 500 -----------------
def test_a_policy_refusal_of_an_odd_model_string_is_a_403(upstream: tuple[str, Any]) -> None:
    from ponder.config.routing import PolicyRule

    url, _ = upstream
    policy = PolicySettings(rules=(PolicyRule(effect="deny", model="m"),))
    with _server(url, "vllm", policy=policy) as base:
        raw = '{"model":"m#\\ud800","messages":[{"role":"user","content":"hi"}],"max_tokens":3}'
        reply = httpx.post(
            f"{base}/v1/chat/completions",
            content=raw,
            headers={**AUTH, "content-type": "application/json"},
        )
        assert reply.status_code == 403, reply.text  # 500: the ledger write of call.model


# -- 7. the admin API: a policy with a lone surrogate is stored, then every listing is a 500 -
def test_a_policy_with_a_lone_surrogate_is_a_400_and_breaks_nothing(
    upstream: tuple[str, Any],
) -> None:
    url, _ = upstream
    with _server(url, "vllm") as base:
        raw = '{"name":"t","policy":{"rules":[{"effect":"deny","model":"\\ud800"}]}}'
        created = httpx.post(
            f"{base}/v1/admin/teams",
            content=raw,
            headers={**AUTH, "content-type": "application/json"},
        )
        listed = httpx.get(f"{base}/v1/admin/teams", headers=AUTH)
        assert (created.status_code, listed.status_code) == (400, 200), (created.text, listed.text)


# -- 8. retries and fallbacks all run under one admission of the spending cap ---------------
class _SpendsThenFails:
    """A leaf that spends 60 tokens, records them, and fails as the deployment's fault (as a
    remote without native n does when its third sequential call gets a 503)."""

    def __init__(self, name: str, fail: bool) -> None:
        from ponder.backends.base import Capabilities

        self.name = name
        self.fail = fail
        self.capabilities = Capabilities()

    async def generate(self, request: GenerationRequest) -> Any:
        from ponder.errors import BackendUnavailableError
        from ponder.metering import begin_charge
        from ponder.types import Choice, Completion, Usage

        charge = begin_charge(self.name)
        usage = Usage(prompt_tokens=20, completion_tokens=40, calls=1)
        if self.fail:
            error = BackendUnavailableError(f"{self.name}: 503 after some calls")
            charge.end(usage, error)
            raise error
        charge.end(usage)
        choice = Choice(index=0, text="ok", finish_reason="stop", completion_tokens=40)
        return Completion(choices=(choice,), usage=usage, model=self.name)

    def stream(self, request: GenerationRequest) -> Any:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


async def test_retries_cannot_spend_past_the_requests_cap() -> None:
    from ponder.errors import BudgetExceededError
    from ponder.gateway.guard import GuardedBackend, SpendingCap
    from ponder.metering import recording
    from ponder.types import SamplingParams

    routing = RoutingSettings(num_retries=2, backoff=0.0, fallbacks={"a": ("b",)})
    registry = BackendRegistry(PonderConfig(trace_db=":memory:", routing=routing))
    registry.register("a", _SpendsThenFails("a", fail=True))  # type: ignore[arg-type]
    registry.register("b", _SpendsThenFails("b", fail=False))  # type: ignore[arg-type]
    request = GenerationRequest(
        messages=(Message("user", "hi"),), sampling=SamplingParams(max_tokens=40)
    )
    with recording() as log:
        cap = SpendingCap(100, 40, log)  # one call's worst case (~60) fits; two do not
        guarded = (await registry.get("a")).wrapped(lambda leaf: GuardedBackend(leaf, cap))
        with contextlib.suppress(BudgetExceededError):
            await guarded.generate(request)
    assert log.usage.total_tokens <= 100, f"{log.usage.total_tokens} tokens spent on a cap of 100"


# -- 9. an unrecognised X-Ponder-Local-Only value is silently ignored (fails open) ----------
@pytest.mark.parametrize("value", ["on", "y", "enabled"])
def test_an_unrecognised_local_only_value_is_not_ignored(
    upstream: tuple[str, Any], value: str
) -> None:
    url, _ = upstream
    with _server(url, "vllm") as base:
        reply = _chat(base, {"model": "m"}, **{"X-Ponder-Local-Only": value})
        assert reply.status_code in (400, 403), "served by a non-local deployment"


# -- 10. one GGUF file under many spellings is loaded many times --------------------------
async def test_one_gguf_file_is_one_backend() -> None:
    from ponder.engine.weights import ModelStore

    path = str(ModelStore().ensure("smollm2-135m-instruct"))
    head, tail = path.rsplit("/", 1)
    registry = BackendRegistry(PonderConfig(trace_db=":memory:"))
    try:
        for spelling in (path, f"{head}//{tail}", f"{head}/./{tail}"):
            await registry.get(spelling)
        assert len(registry.loaded()) == 1, registry.loaded()
    finally:
        await registry.aclose()


@pytest.mark.parametrize("field", ["models", "route", "fallbacks"])
def test_fields_that_let_an_endpoint_pick_the_model_are_refused(
    upstream: tuple[str, Any], field: str
) -> None:
    """An aggregator endpoint (OpenRouter's ``models``/``route``, a LiteLLM proxy's
    ``fallbacks``) would choose a model itself, past the policy: a 400, nothing sent."""
    url, app = upstream
    with _server(url, "vllm") as base:
        before = len(app.state.requests)
        reply = _chat(base, {"model": "m", field: ["openai/gpt-4o"]})
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["param"] == field
        assert len(app.state.requests) == before


@pytest.mark.parametrize("value", [1, "true", "yes", "false"])
def test_a_stream_flag_that_is_not_a_boolean_is_a_400(
    upstream: tuple[str, Any], value: object
) -> None:
    """Validation would coerce it, but the body the pass-through forwards would not be."""
    url, app = upstream
    with _server(url, "vllm") as base:
        before = len(app.state.requests)
        reply = _chat(base, {"model": "m", "stream": value})
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["param"] == "stream"
        assert len(app.state.requests) == before
