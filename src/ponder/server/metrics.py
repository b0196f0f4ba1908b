"""``/metrics``: the server's usage and the embedded engines' load, in Prometheus text format.

Values are read when Prometheus scrapes, from the usage ledger and from each loaded engine,
so the numbers on ``/metrics`` and ``/v1/usage`` are the same counts, failed requests
included. Each app gets its own collector registry: two servers in one process (as in tests)
never share a series.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from ponder.gateway.ledger import UsageLedger
from ponder.routing.registry import BackendRegistry

__all__ = ["CONTENT_TYPE_LATEST", "metrics_registry", "render"]

# (Usage field, metric name, help)
_USAGE = (
    ("prompt_tokens", "ponder_prompt_tokens", "Prompt tokens spent, all inner calls included."),
    ("completion_tokens", "ponder_completion_tokens", "Completion tokens generated."),
    ("reasoning_tokens", "ponder_reasoning_tokens", "Completion tokens not shown in replies."),
    ("calls", "ponder_backend_calls", "Backend calls made on behalf of requests."),
)

# (EngineLoad field, metric name, help)
_LOAD = (
    ("waiting_requests", "ponder_engine_requests_waiting", "Jobs queued for slots or KV cells."),
    ("running_requests", "ponder_engine_requests_running", "Jobs being decoded."),
    ("running_sequences", "ponder_engine_sequences_running", "Sequences still decoding."),
    ("sequence_slots", "ponder_engine_sequence_slots", "Sequences the context can hold."),
    ("free_sequence_slots", "ponder_engine_sequence_slots_free", "Sequence slots free."),
    ("kv_cells", "ponder_engine_kv_cells", "KV cells in the context."),
    ("kv_cells_reserved", "ponder_engine_kv_cells_reserved", "KV cells promised to jobs."),
)

# (EngineStats field, metric name, help)
_STATS = (
    ("steps", "ponder_engine_steps", "llama_decode steps."),
    ("decode_tokens", "ponder_engine_decode_tokens", "Tokens sampled, all sequences."),
    ("prompt_tokens", "ponder_engine_prompt_tokens", "Prompt tokens evaluated."),
    ("decode_seconds", "ponder_engine_decode_seconds", "Time inside llama_decode."),
    ("sample_seconds", "ponder_engine_sample_seconds", "Time sampling and matching stops."),
    ("backfilled", "ponder_engine_backfilled", "Jobs started ahead of an older queued job."),
    ("refused", "ponder_engine_refused", "Jobs refused with 503: the queue was full."),
    ("expired", "ponder_engine_expired", "Jobs refused with 503: they waited too long."),
)


@runtime_checkable
class EngineBacked(Protocol):
    """A backend that runs its own engine (the embedded one), whose load and counters are
    exported; matched by shape so that /metrics does not import llama.cpp."""

    engine: Any


class _PonderCollector(Collector):
    def __init__(self, ledger: UsageLedger, backends: BackendRegistry) -> None:
        self._ledger = ledger
        self._backends = backends

    def collect(self) -> Iterator[Metric]:
        totals = self._ledger.by_model()
        requests = CounterMetricFamily(
            "ponder_requests", "Chat completion requests served.", labels=["model", "outcome"]
        )
        seconds = CounterMetricFamily(
            "ponder_request_seconds", "Wall time spent serving requests.", labels=["model"]
        )
        for model, t in totals.items():
            requests.add_metric([model, "ok"], t.requests - t.failed)
            requests.add_metric([model, "failed"], t.failed)
            seconds.add_metric([model], t.seconds)
        yield requests
        yield seconds
        for key, name, help_ in _USAGE:
            family = CounterMetricFamily(name, help_, labels=["model"])
            for model, t in totals.items():
                family.add_metric([model], getattr(t.usage, key))
            yield family

        engines = {
            name: backend.engine
            for name, backend in self._backends.backends().items()
            if isinstance(backend, EngineBacked)
        }
        loads = {name: engine.load() for name, engine in engines.items()}
        for key, name, help_ in _LOAD:
            gauge = GaugeMetricFamily(name, help_, labels=["model"])
            for model, load in loads.items():
                gauge.add_metric([model], getattr(load, key))
            yield gauge
        for key, name, help_ in _STATS:
            counter = CounterMetricFamily(name, help_, labels=["model"])
            for model, engine in engines.items():
                counter.add_metric([model], getattr(engine.stats, key))
            yield counter
        yield from _deployment_metrics(self._backends.status())


# Per deployment: routing state, from BackendRegistry.status().
_DEPLOYMENT_GAUGES = (
    ("in_flight", "ponder_deployment_in_flight", "Calls in flight to the deployment."),
    ("cooling_down", "ponder_deployment_cooling_down", "1 while the deployment is cooled down."),
    ("latency_seconds", "ponder_deployment_latency_seconds", "Average latency of its calls."),
)
_DEPLOYMENT_COUNTERS = (
    ("requests", "ponder_deployment_requests", "Calls routed to the deployment."),
    ("failures", "ponder_deployment_failures", "Calls to the deployment that failed."),
    ("cooldowns", "ponder_deployment_cooldowns", "Times the deployment was cooled down."),
)


def _deployment_metrics(status: list[dict[str, Any]]) -> Iterator[Metric]:
    labels = ["deployment", "model"]
    for key, name, help_ in _DEPLOYMENT_GAUGES:
        gauge = GaugeMetricFamily(name, help_, labels=labels)
        for d in status:
            value = d[key]
            if value is not None:
                gauge.add_metric([d["id"], d["model"]], float(value))
        yield gauge
    for key, name, help_ in _DEPLOYMENT_COUNTERS:
        counter = CounterMetricFamily(name, help_, labels=labels)
        for d in status:
            counter.add_metric([d["id"], d["model"]], d[key])
        yield counter


def metrics_registry(ledger: UsageLedger, backends: BackendRegistry) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_PonderCollector(ledger, backends))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
