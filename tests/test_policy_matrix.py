"""The policy bypass matrix: every name form a client might use to reach a denied deployment,
at every kind of hop, under global, team, key and request rules. Each case goes through the
whole server with the real openai SDK, to loopback fake endpoints; a denied endpoint must
receive nothing, and the request must either be served by an allowed deployment or get 403
``policy_denied``.

The deployments (each endpoint is a fake with its own path, so what each received is known):

==============  =========================  ========  ======  =====
public name     deployment id              vendor    region  local
==============  =========================  ========  ======  =====
gpt-4o          openai/gpt-4o              openai    us      no
gpt-4o          azure/gpt-4o               azure     eu      no
deepseek-chat   deepseek/deepseek-chat     deepseek  cn      no
qwen-local      home/qwen-local            vllm      -       yes
qwen-broken     broken/qwen-broken (503s)  vllm      -       yes
==============  =========================  ========  ======  =====

``qwen-broken`` falls back to the name under test, so fallbacks are a hop kind too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest

from ponder.config import PolicySettings, PonderConfig, ProviderConfig, RoutingSettings
from ponder.config.routing import PolicyRule
from ponder.reasoning.profile import AutoProfile, EffortProfile, Rung
from ponder.server.app import create_app
from tests.fake_openai import make_app, serve_app

ADMIN = "admin-secret"
REMOTE = ("openai", "azure", "deepseek")


@dataclass(frozen=True)
class Rules:
    """One way of denying, and the endpoints (fake profiles) it must keep untouched."""

    name: str
    denied: tuple[str, ...]
    config: dict[str, Any] = field(default_factory=dict)  # PonderConfig fields
    team: dict[str, Any] | None = None  # the admin API's team body extras
    key: dict[str, Any] | None = None  # ... and the key's
    header: bool = False  # the request asks to stay local


RULES = (
    Rules(
        "global vendor",
        ("openai",),
        {"policy": PolicySettings(rules=(PolicyRule(effect="deny", vendor="OpenAI"),))},
    ),
    Rules("global model glob", ("openai",), {"deny_models": ("openai/*",)}),
    Rules("global gpt-4 glob", ("openai", "azure"), {"deny_models": ("*gpt-4*",)}),
    Rules("global local-only", REMOTE, {"policy": PolicySettings(local_only=True)}),
    Rules(
        "global allow-list",
        REMOTE,
        {"policy": PolicySettings(mode="allow", rules=(PolicyRule(effect="allow", local=True),))},
    ),
    Rules(
        "team vendor",
        ("deepseek", "openai"),
        team={
            "policy": {
                "rules": [
                    {"effect": "deny", "vendor": "deep*"},
                    {"effect": "deny", "vendor": "openai"},
                ]
            }
        },
    ),
    Rules(
        "team allowed models",
        ("openai", "azure", "deepseek"),
        team={"allowed_models": ["qwen-*", "home/*"]},
    ),
    Rules(
        "key region",
        ("openai", "deepseek"),
        key={
            "policy": {
                "rules": [{"effect": "deny", "region": "cn"}, {"effect": "deny", "region": "us"}]
            }
        },
    ),
    Rules("key local-only", REMOTE, key={"policy": {"local_only": True}}),
    Rules("request local-only", REMOTE, header=True),
)

# Names for the denied models as a client might write them.
FORMS = {
    "openai": ["gpt-4o", "gpt-4o#tag", "OPENAI/GPT-4o", "gpt\u20104o", "ｇｐｔ-4o", "gpt-\u200b4o"],
    "deepseek": ["deepseek-chat", "DeepSeek-Chat#x", "deepseek/deepseek\u2011chat"],
}
HOPS = ("request", "stream", "strategy", "proposer", "aggregator", "escalation", "fallback")


def cases() -> Iterator[Any]:
    for rules in RULES:
        targets = [t for t in ("openai", "deepseek") if t in rules.denied] or ["openai"]
        for target in targets:
            for name in FORMS[target]:
                for hop in HOPS:
                    yield pytest.param(rules, name, hop, id=f"{rules.name}|{name}|{hop}")


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Any]]:
    app = make_app()
    with serve_app(app) as url:
        yield url, app


def providers(url: str) -> tuple[ProviderConfig, ...]:
    def provider(name: str, model: str, **meta: Any) -> ProviderConfig:
        profile = "error-503" if name == "broken" else name
        return ProviderConfig(
            name=name, base_url=f"{url}/{profile}/v1", models=(model,), max_retries=0, **meta
        )

    return (
        provider("openai", "gpt-4o", vendor="openai", region="us"),
        provider("azure", "gpt-4o", vendor="azure", region="eu"),
        provider("deepseek", "deepseek-chat", vendor="deepseek", region="cn"),
        provider("home", "qwen-local", vendor="vllm", local=True),
        provider("broken", "qwen-broken", vendor="vllm", local=True),
    )


@dataclass
class Server:
    url: str
    token: str | None
    app: Any


@pytest.fixture(scope="module")
def servers(upstream: tuple[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Ponder server per rule set and name (the fallback and escalation name is fixed
    in the configuration), started on first use and kept for the module."""
    url, app = upstream
    started: dict[tuple[str, str], Server] = {}
    stack: list[Any] = []
    folder = tmp_path_factory.mktemp("matrix")

    def get(rules: Rules, name: str) -> Server:
        key = (rules.name, name)
        if key in started:
            return started[key]
        profile = folder / f"profile-{len(started)}.json"
        profile.write_text(
            AutoProfile(
                efforts={
                    "medium": EffortProfile(
                        accept_confidence=1000.0,  # never accepted: the ladder runs
                        ladder=(Rung(kind="escalate", model=name),),
                        max_tokens=16,
                        top_logprobs=2,
                    )
                }
            ).model_dump_json()
        )
        config = PonderConfig(
            default_model="qwen-local",
            database_url=f"sqlite:///{folder}/db-{len(started)}.sqlite",
            default_strategy=None,
            auto_profile=profile,
            providers=providers(url),
            routing=RoutingSettings(fallbacks={"qwen-broken": (name,)}, backoff=0.0),
            **rules.config,
        )
        context = serve_app(create_app(config, admin_key=ADMIN))
        base = context.__enter__()
        stack.append(context)
        token = None
        if rules.team is not None or rules.key is not None:
            admin = {"Authorization": f"Bearer {ADMIN}"}
            team = httpx.post(
                f"{base}/v1/admin/teams", headers=admin, json={"name": "t", **(rules.team or {})}
            )
            assert team.status_code == 200, team.text
            made = httpx.post(
                f"{base}/v1/admin/keys",
                headers=admin,
                json={"team": "t", "name": "k", **(rules.key or {})},
            )
            assert made.status_code == 200, made.text
            token = made.json()["key"]
        started[key] = Server(base, token, app)
        return started[key]

    yield get
    for context in reversed(stack):
        context.__exit__(None, None, None)


def ask(server: Server, rules: Rules, name: str, hop: str) -> Any:
    """One request reaching ``name`` at ``hop``; the SDK's reply, or its APIStatusError."""
    headers = {"X-Ponder-Local-Only": "true"} if rules.header else {}
    client = openai.OpenAI(
        base_url=f"{server.url}/v1",
        api_key=server.token or ADMIN,
        max_retries=0,
        default_headers=headers,
    )
    messages: Any = [{"role": "user", "content": "What is 6 times 7?"}]
    model = name
    extra: dict[str, Any] = {}
    if hop == "strategy":
        model = f"ponder/self-consistency/{name}"
    elif hop in ("proposer", "aggregator"):
        model = "qwen-local"
        role = {"proposers": [name]} if hop == "proposer" else {"aggregator": name}
        extra = {"ponder": {"strategy": "mixture-of-agents", **role}}
    elif hop == "escalation":
        model = "qwen-local"
        extra = {"ponder": {"strategy": "auto", "effort": "medium"}}
    elif hop == "fallback":
        model = "qwen-broken"
    try:
        with client:
            if hop == "stream":
                chunks = list(
                    client.chat.completions.create(
                        model=model, messages=messages, max_tokens=8, stream=True
                    )
                )
                return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            return client.chat.completions.create(
                model=model, messages=messages, max_tokens=8, extra_body=extra or None
            )
    except openai.APIStatusError as exc:
        return exc


@pytest.mark.parametrize(("rules", "name", "hop"), list(cases()))
def test_no_denied_endpoint_is_reached(
    servers: Any, upstream: tuple[str, Any], rules: Rules, name: str, hop: str
) -> None:
    server = servers(rules, name)
    app = upstream[1]
    before = len(app.state.requests)
    outcome = ask(server, rules, name, hop)
    reached = [profile for profile, _ in app.state.requests[before:]]
    assert not set(reached) & set(rules.denied), f"reached {reached}"
    if isinstance(outcome, openai.APIStatusError) and hop == "fallback":
        # The broken model was allowed and failed; its fallback was denied and skipped, so
        # the client gets the model's own failure.
        assert outcome.status_code in (403, 503), outcome.response.text
        assert set(reached) <= {"error-503", "home", "azure"}
    elif isinstance(outcome, openai.APIStatusError):
        assert outcome.status_code == 403, outcome.response.text
        assert outcome.response.json()["error"]["code"] == "policy_denied"
    else:
        assert reached, "the request was served without reaching any endpoint"


def test_the_matrix_is_large_enough() -> None:
    assert len(list(cases())) >= 60


def test_a_denied_name_is_served_by_an_allowed_deployment(
    servers: Any, upstream: tuple[str, Any]
) -> None:
    """``gpt-4o`` under a rule denying only OpenAI is served by Azure's deployment, and the
    trace says the OpenAI one was skipped."""
    rules = RULES[0]
    server = servers(rules, "gpt-4o")
    app = upstream[1]
    before = len(app.state.requests)
    for _ in range(4):  # the weighted shuffle would pick OpenAI about half the time
        reply = ask(server, rules, "gpt-4o", "request")
        assert not isinstance(reply, Exception)
    assert {p for p, _ in app.state.requests[before:]} == {"azure"}


def test_deployments_show_their_state(servers: Any) -> None:
    server = servers(RULES[0], "gpt-4o")
    listed = httpx.get(
        f"{server.url}/v1/deployments", headers={"Authorization": f"Bearer {ADMIN}"}
    ).json()["data"]
    ids = {d["id"] for d in listed}
    assert {"openai/gpt-4o", "azure/gpt-4o", "home/qwen-local"} <= ids
    assert json.dumps(listed)  # plain JSON
