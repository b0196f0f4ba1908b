"""Keys, permissions, budgets, rate limits and scoping through the whole server, with the
real openai SDK as the client and the real database (SQLite here; the store's own suite runs
on PostgreSQL too)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from ponder.backends.scripted import ScriptedBackend
from ponder.config import PonderConfig
from ponder.routing.registry import BackendRegistry
from ponder.server.app import create_app
from tests.fake_openai import serve_app
from tests.strategy_helpers import solution

ADMIN = "admin-secret-for-tests"
HI: list[Any] = [{"role": "user", "content": "What is 3 + 4?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("keys") / "ponder.sqlite3"
    config = PonderConfig(default_model="s", database_url=f"sqlite:///{db}", default_strategy=None)
    registry = BackendRegistry(config)
    registry.register("s", ScriptedBackend.cycle([solution(7)]))
    registry.register("other", ScriptedBackend.cycle([solution(7)]))
    app = create_app(config, registry=registry, close_backends=False, admin_key=ADMIN)
    with serve_app(app) as url:
        yield url


def admin(url: str, method: str, path: str, **body: Any) -> dict[str, Any]:
    reply = httpx.request(
        method,
        f"{url}/v1/admin{path}",
        json=body or None,
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert reply.is_success, reply.text
    result: dict[str, Any] = reply.json()
    return result


def new_key(url: str, team: str, **permissions: Any) -> dict[str, Any]:
    teams = httpx.get(f"{url}/v1/admin/keys", headers={"Authorization": f"Bearer {ADMIN}"})
    assert teams.is_success
    known = {k["team"] for k in teams.json()["data"]}
    if team not in known:
        httpx.post(
            f"{url}/v1/admin/teams",
            json={"name": team},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
    return admin(url, "POST", "/keys", team=team, name=f"{team}-key", **permissions)


def sdk(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def test_right_wrong_missing_and_revoked_keys(server: str) -> None:
    key = new_key(server, "alpha")
    assert key["key"].startswith("pk-") and key["prefix"] in key["key"]
    with sdk(server, key["key"]) as client:
        reply = client.chat.completions.create(model="s", messages=HI, max_tokens=16)
        assert reply.choices[0].message.content
    with sdk(server, "pk-not-a-real-key") as client, pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="s", messages=HI, max_tokens=16)
    missing = httpx.post(f"{server}/v1/chat/completions", json={"model": "s", "messages": HI})
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    admin(server, "DELETE", f"/keys/{key['id']}")
    with sdk(server, key["key"]) as client, pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="s", messages=HI, max_tokens=16)


def test_rotation_replaces_the_secret(server: str) -> None:
    key = new_key(server, "beta")
    rotated = admin(server, "POST", f"/keys/{key['id']}/rotate")
    assert rotated["id"] == key["id"] and rotated["key"] != key["key"]
    with sdk(server, key["key"]) as old, pytest.raises(openai.AuthenticationError):
        old.chat.completions.create(model="s", messages=HI, max_tokens=16)
    with sdk(server, rotated["key"]) as new:
        new.chat.completions.create(model="s", messages=HI, max_tokens=16)


@pytest.mark.parametrize(
    ("permissions", "request_fields"),
    [
        ({"allowed_models": ["other"]}, {"model": "s"}),
        ({"allowed_strategies": ["cot"]}, {"model": "ponder/self-consistency;n=2/s"}),
        ({"max_effort": "low"}, {"model": "s", "reasoning_effort": "high"}),
    ],
)
def test_a_key_without_access_gets_a_403(
    server: str, permissions: dict[str, Any], request_fields: dict[str, Any]
) -> None:
    key = new_key(server, "gamma", **permissions)
    with sdk(server, key["key"]) as client, pytest.raises(openai.PermissionDeniedError) as denied:
        client.chat.completions.create(messages=HI, max_tokens=16, **request_fields)
    assert denied.value.code == "policy_denied"


def test_a_budget_refuses_what_it_cannot_pay_for_and_settles_exactly(server: str) -> None:
    key = new_key(server, "delta")
    admin(
        server,
        "PUT",
        "/budgets",
        scope="key",
        owner=key["id"],
        unit="tokens",
        period="total",
        limit=300,
    )
    with sdk(server, key["key"]) as client:
        first = client.chat.completions.create(model="s", messages=HI, max_tokens=100)
        assert first.usage is not None
        with pytest.raises(openai.RateLimitError) as refused:  # 429 insufficient_quota
            client.chat.completions.create(model="s", messages=HI, max_tokens=250)
        assert refused.value.code == "budget_exceeded"
    rows = httpx.get(
        f"{server}/v1/usage",
        params={"group_by": "key"},
        headers={"Authorization": f"Bearer {key['key']}"},
    ).json()["data"]
    (row,) = rows  # the key sees its own row only
    assert row["total_tokens"] == first.usage.total_tokens  # the ledger is exact
    assert row["requests"] == 1


def test_a_rate_limit_answers_429_with_retry_after(server: str) -> None:
    key = new_key(server, "epsilon")
    admin(server, "PUT", "/rate_limits", scope="key", owner=key["id"], rpm=1)
    headers = {"Authorization": f"Bearer {key['key']}"}
    body = {"model": "s", "messages": HI, "max_tokens": 16}
    assert httpx.post(f"{server}/v1/chat/completions", json=body, headers=headers).is_success
    limited = httpx.post(f"{server}/v1/chat/completions", json=body, headers=headers)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60


def test_traces_and_usage_belong_to_the_key_that_made_them(server: str) -> None:
    owner, other = new_key(server, "zeta"), new_key(server, "eta")
    body = {"model": "ponder/self-consistency;n=2/s", "messages": HI, "max_tokens": 32}
    made = httpx.post(
        f"{server}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {owner['key']}"},
    )
    trace_id = made.headers["x-ponder-trace-id"]

    def fetch(secret: str) -> int:
        url = f"{server}/v1/traces/{trace_id}"
        return httpx.get(url, headers={"Authorization": f"Bearer {secret}"}).status_code

    assert fetch(owner["key"]) == 200
    assert fetch(other["key"]) == 404  # not even its existence leaks
    assert fetch(ADMIN) == 200
    mine = httpx.get(
        f"{server}/v1/usage",
        params={"group_by": "key"},
        headers={"Authorization": f"Bearer {other['key']}"},
    ).json()["data"]
    assert mine == []
    metrics = httpx.get(f"{server}/metrics", headers={"Authorization": f"Bearer {other['key']}"})
    assert metrics.status_code == 403
    assert httpx.get(f"{server}/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).is_success


def put_policy(url: str, path: str, policy: Any) -> httpx.Response:
    return httpx.put(
        f"{url}/v1/admin{path}/policy",
        content=json.dumps(policy),
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
    )


def test_teams_and_keys_carry_a_policy_through_the_admin_api(server: str) -> None:
    local = {"local_only": True, "rules": [{"effect": "deny", "vendor": "deepseek"}]}
    team = admin(server, "POST", "/teams", name="theta", policy=local)
    assert team["name"] == "theta" and team["policy"] == local
    key = admin(server, "POST", "/keys", team="theta", name="t", policy={"redact": True})
    assert key["policy"] == {"redact": True} and key["key"].startswith("pk-")
    plain = admin(server, "POST", "/keys", team="theta", name="plain", policy={})
    assert plain["policy"] is None

    changed = put_policy(server, f"/keys/{plain['id']}", {"mode": "allow", "rules": []})
    assert changed.is_success, changed.text
    assert changed.json()["policy"] == {"mode": "allow"} and "key" not in changed.json()
    listed = admin(server, "GET", "/keys?team=theta")["data"]
    assert [k["policy"] for k in listed] == [{"redact": True}, {"mode": "allow"}]
    assert put_policy(server, f"/keys/{plain['id']}", None).json()["policy"] is None
    assert put_policy(server, "/teams/theta", {}).json()["policy"] is None
    teams = {t["name"]: t for t in admin(server, "GET", "/teams")["data"]}
    assert teams["theta"]["policy"] is None
    assert put_policy(server, "/teams/theta", local).json()["policy"] == local

    missing = put_policy(server, "/teams/nobody", local)
    assert missing.status_code == 404
    not_admin = httpx.put(
        f"{server}/v1/admin/keys/{key['id']}/policy",
        json={},
        headers={"Authorization": f"Bearer {key['key']}"},
    )
    assert not_admin.status_code == 403


@pytest.mark.parametrize(
    "policy",
    [
        {"mode": "maybe"},
        {"local_only": "yes"},
        {"rules": [{"effect": "deny", "colour": "red"}]},
        {"rules": 5},
        {"unknown": 1},
    ],
)
def test_an_invalid_policy_is_a_400(server: str, policy: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    created = httpx.post(
        f"{server}/v1/admin/teams", json={"name": "iota", "policy": policy}, headers=headers
    )
    assert created.status_code == 400, created.text
    error = created.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "policy"
    assert all(t["name"] != "iota" for t in admin(server, "GET", "/teams")["data"])
    new_key(server, "kappa")
    key_id = admin(server, "GET", "/keys?team=kappa")["data"][0]["id"]
    put = put_policy(server, f"/keys/{key_id}", policy)
    assert put.status_code == 400 and put.json()["error"]["param"] == "policy"
    wrong_shape = put_policy(server, f"/keys/{key_id}", ["local_only"])
    assert wrong_shape.status_code == 400


def test_a_key_policy_is_enforced_on_its_requests(server: str) -> None:
    key = new_key(server, "lambda", policy={"rules": [{"effect": "deny", "model": "s"}]})
    with sdk(server, key["key"]) as client, pytest.raises(openai.PermissionDeniedError) as denied:
        client.chat.completions.create(model="s", messages=HI, max_tokens=16)
    assert denied.value.code == "policy_denied"
    put_policy(server, f"/keys/{key['id']}", None)  # cleared: takes effect at once
    with sdk(server, key["key"]) as client:
        client.chat.completions.create(model="s", messages=HI, max_tokens=16)
