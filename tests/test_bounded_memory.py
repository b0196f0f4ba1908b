"""Memory does not grow with what clients send: distinct model names, tags, bearer tokens,
trace and response ids, and strategy names each leave the server's in-memory tables at a
fixed bound (or untouched), however many a client sends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ponder.backends.scripted import ScriptedBackend
from ponder.config import PonderConfig
from ponder.gateway import Gateway
from ponder.routing.catalog import MAX_RESOLVED
from ponder.routing.registry import BackendRegistry
from ponder.server.app import create_app
from tests.fake_openai import serve_app

ADMIN = "admin-secret-for-bounds"
DISTINCT = 600  # of each kind; the bounds below are fixed, whatever this is


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, FastAPI]]:
    config = PonderConfig(default_model="m", trace_db=":memory:", default_strategy=None)
    registry = BackendRegistry(config)
    registry.register("m", ScriptedBackend.cycle(["ok"]))
    app = create_app(config, registry=registry, admin_key=ADMIN)
    with serve_app(app) as url:
        yield url, app


def sizes(gateway: Gateway) -> dict[str, int]:
    """The in-memory tables a client's input could reach."""
    accounts: Any = gateway.accounts
    return {
        "deployments": len(gateway.registry.catalog.deployments()),
        "resolved names": len(gateway.registry.catalog._resolved),
        "callers": len(accounts._callers._items),
        "controls": len(accounts._controls._items),
        "models in the ledger": len(gateway.ledger.by_model()),
        "tags": len(gateway.ledger._tags),
        "open journal requests": len(gateway.journal._open) if gateway.journal else 0,
    }


def test_distinct_client_input_leaves_the_tables_bounded(served: tuple[str, FastAPI]) -> None:
    url, app = served
    gateway: Gateway = app.state.gateway
    admin = {"Authorization": f"Bearer {ADMIN}"}
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/v1/chat/completions", json={**chat, "model": "m"}, headers=admin)
        before = sizes(gateway)
        for i in range(DISTINCT):
            bogus = {"Authorization": f"Bearer sk-nobody-{i}"}
            wrong_key = client.post(
                "/v1/chat/completions", json={**chat, "model": "m"}, headers=bogus
            )
            assert wrong_key.status_code == 401
            for model in (f"unknown-{i}", f"ponder/nope-{i}/m", f"provider-{i}/x"):
                reply = client.post(
                    "/v1/chat/completions", json={**chat, "model": model}, headers=admin
                )
                assert reply.status_code in (400, 404), reply.text
            assert client.get(f"/v1/traces/trace-{i}", headers=admin).status_code == 404
            assert client.get(f"/v1/responses/resp_{i}", headers=admin).status_code == 404
        for i in range(50):  # tags are kept per tag, up to a bound of their own
            reply = client.post(
                "/v1/chat/completions", json={**chat, "model": f"m#job-{i}"}, headers=admin
            )
            assert reply.status_code == 200
        after = sizes(gateway)
    assert after["deployments"] == before["deployments"]
    assert after["models in the ledger"] == before["models in the ledger"]
    assert after["open journal requests"] == 0
    # Nothing a client made up is remembered: a wrong key, an unknown model or strategy.
    assert after["resolved names"] == before["resolved names"] <= MAX_RESOLVED
    assert after["callers"] == before["callers"]
    assert after["controls"] == before["controls"]
    # Tags are kept per tag (usage a caller can read back), up to a bound of their own.
    assert after["tags"] == before["tags"] + 50 <= gateway.ledger._max_tags
