"""/health/live, /health/ready and /version: liveness needs nothing; readiness needs the
preloaded models loaded and the database answering, and says which is missing with a 503;
models preload in the background, so liveness answers while they load and a failed load is
reported; /health is unchanged; all are in the OpenAPI document. (A real ``ponder serve``
doing the same: tests/test_server_startup.py.)"""

from __future__ import annotations

import asyncio
import platform
import threading
import time
from typing import Any

from fastapi.testclient import TestClient

from ponder.backends.scripted import ScriptedBackend
from ponder.config import PonderConfig
from ponder.routing.registry import BackendRegistry
from ponder.server.app import create_app


def app_with(preload: list[str]) -> TestClient:
    registry = BackendRegistry(PonderConfig(default_model="small", trace_db=":memory:"))
    registry.register("small", ScriptedBackend(lambda r, i: "hi", name="small"))
    return TestClient(create_app(registry.config, registry=registry, preload=preload))


def wait_ready(client: TestClient, seconds: float = 10) -> Any:
    """/health/ready once it is 200 (the preload runs in the background), within a bound."""
    deadline = time.monotonic() + seconds
    while (ready := client.get("/health/ready")).status_code != 200:
        assert time.monotonic() < deadline, ready.json()
        time.sleep(0.01)
    return ready


class GatedRegistry(BackendRegistry):
    """A registry whose "slow" model loads only once the test opens the gate, and whose
    "broken" model fails to load, as a corrupt GGUF would."""

    def __init__(self, config: PonderConfig, gate: threading.Event) -> None:
        super().__init__(config)
        self.gate = gate

    async def get(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "broken":
            raise RuntimeError("not a GGUF file")
        if name == "slow":
            assert await asyncio.to_thread(self.gate.wait, 10), "the test never opened the gate"
        return await super().get(name, *args, **kwargs)


def gated_app(preload: list[str], gate: threading.Event, **options: Any) -> TestClient:
    registry = GatedRegistry(PonderConfig(default_model="slow", trace_db=":memory:"), gate)
    registry.register("slow", ScriptedBackend(lambda r, i: "hi", name="slow"))
    app = create_app(registry.config, registry=registry, preload=preload, **options)
    return TestClient(app)


def test_live_at_once_and_ready_only_once_preloading_is_done() -> None:
    gate = threading.Event()
    with gated_app(["slow"], gate) as client:
        assert client.get("/health/live").status_code == 200  # while the model loads
        loading = client.get("/health/ready")
        assert loading.status_code == 503
        assert loading.json()["checks"] == {
            "models": "loading models: slow",
            "database": "ok",
        }
        gate.set()
        assert wait_ready(client).json()["checks"]["models"] == "ok"


def test_a_failed_preload_is_handed_over_and_never_ready() -> None:
    failures: list[tuple[str, BaseException]] = []
    with gated_app(
        ["broken"], threading.Event(), on_preload_failure=lambda n, e: failures.append((n, e))
    ) as client:
        deadline = time.monotonic() + 10
        while not failures:
            assert time.monotonic() < deadline, "the failure was not reported"
            time.sleep(0.01)
        ((name, error),) = failures
        assert name == "broken" and "not a GGUF file" in str(error)
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        # The reason names the model, not the error (which may name a file path).
        assert ready.json()["checks"]["models"] == "failed to load broken"
        assert client.get("/health/live").status_code == 200


def test_live_ready_and_version_once_started() -> None:
    with app_with(["small"]) as client:
        assert client.get("/health/live").json() == {"status": "ok"}
        ready = wait_ready(client)
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"models": "ok", "database": "ok"}}
        version = client.get("/version").json()
        assert version["ponder"] and version["python"] == platform.python_version()
        assert "llama_cpp" in version
        assert client.get("/health").json()["status"] == "ok"  # the older endpoint, as it was


def test_not_ready_before_start_up_with_reasons() -> None:
    client = app_with(["small"])  # no lifespan: the database is not open yet
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready"
    assert ready.json()["checks"]["database"].startswith("not open")
    assert client.get("/health/live").status_code == 200


def test_not_ready_while_a_preloaded_model_is_missing_or_the_database_fails() -> None:
    with app_with(["small"]) as client:
        wait_ready(client)
        gateway = client.app.state.gateway  # type: ignore[attr-defined]
        client.app.state.preload = ["small", "qwen2.5-coder-0.5b-instruct"]  # type: ignore[attr-defined]
        body = client.get("/health/ready").json()
        assert body["checks"]["models"] == "not loaded: qwen2.5-coder-0.5b-instruct"
        client.app.state.preload = ["small"]  # type: ignore[attr-defined]

        async def broken() -> bool:
            raise OSError("connection refused")

        store = gateway.accounts.store
        original = store.has_keys
        store.has_keys = broken
        try:
            ready = client.get("/health/ready")
        finally:
            store.has_keys = original
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"models": "ok", "database": "unreachable: OSError"}


def test_declared_in_openapi() -> None:
    schema = app_with([]).app.openapi()  # type: ignore[attr-defined]
    for path in ("/health/live", "/health/ready", "/version", "/health"):
        assert "get" in schema["paths"][path]
    assert "503" in schema["paths"]["/health/ready"]["get"]["responses"]
