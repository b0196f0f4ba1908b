"""OpenTelemetry spans (ponder.gateway.telemetry): one span per request and one child per
model call, with the GenAI semantic conventions' attributes and exact token counts; and
nothing of OpenTelemetry's SDK loaded while telemetry is off."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from ponder.backends.scripted import ScriptedBackend
from ponder.config import PonderConfig, TelemetrySettings, config_from_mapping
from ponder.errors import BackendError
from ponder.gateway import Gateway
from ponder.gateway.telemetry import Telemetry, TimedCallLog, deployment_lookup
from ponder.metering import CallLog
from ponder.routing.registry import BackendRegistry

SRC = Path(__file__).resolve().parents[1] / "src" / "ponder"


def traced_gateway(backend: ScriptedBackend) -> tuple[Gateway, InMemorySpanExporter]:
    config = PonderConfig(default_model="small", trace_db=":memory:", default_strategy=None)
    registry = BackendRegistry(config)
    registry.register("small", backend, vendor="acme")
    gateway = Gateway(config, registry=registry)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gateway.telemetry = Telemetry(provider.get_tracer("test"), deployment_lookup(registry.catalog))
    return gateway, exporter


async def test_a_request_is_one_span_with_a_child_per_model_call() -> None:
    backend = ScriptedBackend(lambda request, i: f"answer {i} is 42", name="small")
    gateway, exporter = traced_gateway(backend)
    async with gateway:
        reply = await gateway.chat(
            "What is 6 * 7?", strategy={"strategy": "self-consistency", "n": 3}, max_tokens=16
        )
    spans = exporter.get_finished_spans()
    (request,) = [s for s in spans if s.parent is None]
    calls = [s for s in spans if s.parent is not None]
    assert reply.usage.calls == len(calls) >= 1
    assert all(c.parent.span_id == request.context.span_id for c in calls)  # type: ignore[union-attr]
    attrs = request.attributes or {}
    assert request.name == "chat small"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "small"
    assert attrs["ponder.strategy"].startswith("self-consistency")
    # The request's tokens are exactly its calls' tokens, as in its usage.
    assert attrs["gen_ai.usage.input_tokens"] == reply.usage.prompt_tokens > 0
    assert attrs["gen_ai.usage.output_tokens"] == reply.usage.completion_tokens > 0
    assert (
        sum(c.attributes["gen_ai.usage.input_tokens"] for c in calls) == reply.usage.prompt_tokens
    )  # type: ignore[index]
    assert (
        sum(c.attributes["gen_ai.usage.output_tokens"] for c in calls)
        == reply.usage.completion_tokens
    )  # type: ignore[index]
    for call in calls:
        assert call.attributes["gen_ai.provider.name"] == "acme"  # type: ignore[index]
        assert call.kind == SpanKind.INTERNAL  # a registered (in-process) model
        # Each call lies within its request.
        assert request.start_time <= call.start_time <= call.end_time <= request.end_time  # type: ignore[operator]


async def test_a_failed_request_and_call_are_marked_as_errors() -> None:
    def fail(request: object, i: int) -> str:
        raise BackendError("boom")

    gateway, exporter = traced_gateway(ScriptedBackend(fail, name="small"))
    async with gateway:
        with pytest.raises(BackendError):
            await gateway.chat("hi")  # no strategy: the one call, failing
    spans = exporter.get_finished_spans()
    (request,) = [s for s in spans if s.parent is None]
    assert request.status.status_code == StatusCode.ERROR
    assert request.attributes["error.type"]  # type: ignore[index]
    assert all(s.status.status_code == StatusCode.ERROR for s in spans if s.parent is not None)


def test_off_by_default_and_turned_on_by_config_or_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    off = Telemetry.from_config(TelemetrySettings())
    assert not off.enabled and type(off.call_log()) is CallLog
    monkeypatch.setenv("PONDER_TELEMETRY__OTEL", "true")
    monkeypatch.setenv("PONDER_TELEMETRY__EXPORTER", "console")
    from ponder.config import load_config

    settings = load_config(None).telemetry
    assert settings.otel and settings.exporter == "console"
    on = Telemetry.from_config(settings)
    assert on.enabled and isinstance(on.call_log(), TimedCallLog)
    assert config_from_mapping({"telemetry": {"otel": True}}).telemetry.exporter == "otlp"


def test_without_telemetry_the_sdk_is_never_imported() -> None:
    code = (
        "import sys, asyncio\n"
        "from ponder.config import PonderConfig\n"
        "from ponder.gateway import Gateway\n"
        "import ponder.server.app\n"
        "Gateway(PonderConfig(trace_db=':memory:'))\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_only_the_telemetry_module_names_opentelemetry_and_only_inside_functions() -> None:
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.startswith("opentelemetry") for n in names), path
