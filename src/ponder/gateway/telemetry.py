"""OpenTelemetry spans for requests, following the GenAI semantic conventions: one span per
request (``chat {model}``) and, under it, one per model call it made (every path, retry,
fallback, proposer and escalation), each with its token counts.

Off by default; ``[telemetry] otel = true`` (or ``PONDER_TELEMETRY__OTEL=true``) turns it on,
and needs the ``otel`` extra. Nothing here imports ``opentelemetry`` unless it is on, so
Ponder imports and runs without it.

The hook is the request's :class:`~ponder.metering.CallLog`, the one record of what a
request spent: each leaf call ends by adding a ``CallRecord`` to it. With telemetry on, the
gateway gives each request a :class:`TimedCallLog`, which also notes the wall-clock time
each call ended, and when the request ends (where its ledger row is written) the spans are
made from the log with their exact start and end times. Spans are therefore emitted when a
request ends, not while it runs; their parent is the span current at that point (an HTTP
server span, when the process has one from instrumentation).

Attributes: ``gen_ai.operation.name`` (``chat``), ``gen_ai.request.model``,
``gen_ai.response.model``, ``gen_ai.provider.name`` (and the older ``gen_ai.system``: the
deployment's vendor), ``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``,
``error.type`` on failure; and Ponder's own ``ponder.*`` (strategy, request id, deployment,
reasoning tokens, call outcome). A model call is a ``CLIENT`` span to a remote endpoint, an
``INTERNAL`` one for the embedded engine (a model in this process, as the conventions allow).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ponder.config import TelemetrySettings
from ponder.errors import ConfigError, PonderError
from ponder.gateway.call import Plan
from ponder.metering import CallLog, CallRecord
from ponder.routing.catalog import Catalog, Deployment
from ponder.types import Usage

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

Lookup = Callable[[str], Deployment | None]

OPERATION = "chat"


def deployment_lookup(catalog: Catalog) -> Lookup:
    """A call's deployment by the id it records: configured ones by index, and those
    registered at run time (a backend built outside) by a scan, only on a miss."""

    def lookup(deployment_id: str) -> Deployment | None:
        found = catalog.deployment(deployment_id)
        if found is None:
            found = next((d for d in catalog.deployments() if d.id == deployment_id), None)
        return found

    return lookup


class TimedCallLog(CallLog):
    """A :class:`CallLog` that also notes when each call ended (ns since the epoch), in the
    order of ``records``: a record has its duration but not its time."""

    def __init__(self) -> None:
        super().__init__()
        self.ended_ns: list[int] = []

    def _end(self, record: CallRecord) -> None:
        self.ended_ns.append(time.time_ns())
        super()._end(record)


class Telemetry:
    """Makes a request's spans when it ends; without a tracer, does nothing."""

    def __init__(self, tracer: Tracer | None = None, lookup: Lookup | None = None) -> None:
        self.tracer = tracer
        self._lookup = lookup

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    @classmethod
    def from_config(cls, settings: TelemetrySettings, lookup: Lookup | None = None) -> Telemetry:
        if not settings.otel:
            return cls(None, lookup)
        return cls(tracer_for(settings), lookup)

    def call_log(self) -> CallLog:
        """The log a request records into (timed only when spans will be made from it)."""
        return TimedCallLog() if self.enabled else CallLog()

    def request_ended(
        self,
        plan: Plan,
        usage: Usage,
        error: BaseException | None,
        seconds: float,
        *,
        ok: bool = True,
    ) -> None:
        """The request's span and its calls' spans, ending now."""
        if self.tracer is None:
            return
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        end = time.time_ns()
        spec = plan.spec
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.request.model": plan.model,
            "gen_ai.response.model": plan.model,
            "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
            "ponder.usage.reasoning_tokens": usage.reasoning_tokens,
            "ponder.request_id": plan.request_id,
            "ponder.strategy": spec.describe() if spec is not None else "none",
            "ponder.calls": len(plan.log.records),
        }
        span = self.tracer.start_span(
            f"{OPERATION} {plan.model}",
            kind=SpanKind.INTERNAL,
            start_time=end - int(seconds * 1e9),
            attributes=attributes,
        )
        failure = error_type(error) if error is not None else (None if ok else "client_error")
        if failure is not None:
            span.set_attribute("error.type", failure)
            span.set_status(Status(StatusCode.ERROR, failure))
        parent = trace.set_span_in_context(span)
        ended = getattr(plan.log, "ended_ns", [])
        for i, record in enumerate(plan.log.records):
            # A plain log (a plan built before telemetry was on) has no times: the call is
            # then shown ending with its request.
            self._call_span(record, ended[i] if i < len(ended) else end, parent)
        span.end(end_time=end)

    def _call_span(self, record: CallRecord, end: int, parent: Any) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        assert self.tracer is not None
        deployment = self._lookup(record.backend) if self._lookup is not None else None
        model = deployment.model if deployment is not None else record.backend
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": record.usage.prompt_tokens,
            "gen_ai.usage.output_tokens": record.usage.completion_tokens,
            "ponder.usage.reasoning_tokens": record.usage.reasoning_tokens,
            "ponder.deployment": record.backend,
            "ponder.outcome": record.outcome,
        }
        if deployment is not None:
            attributes["gen_ai.provider.name"] = deployment.vendor
            attributes["gen_ai.system"] = deployment.vendor  # the name before semconv 1.37
        remote = deployment is not None and deployment.kind == "remote"
        span = self.tracer.start_span(
            f"{OPERATION} {model}",
            context=parent,
            kind=SpanKind.CLIENT if remote else SpanKind.INTERNAL,
            start_time=end - int(record.seconds * 1e9),
            attributes=attributes,
        )
        if record.outcome != "ok":
            span.set_attribute("error.type", record.outcome)
            span.set_status(Status(StatusCode.ERROR, record.outcome))
        span.end(end_time=end)


def error_type(error: BaseException) -> str:
    """``error.type``: Ponder's error code where it has one, else the exception's class."""
    if isinstance(error, PonderError):
        return error.code or type(error).__qualname__
    return type(error).__qualname__


def tracer_for(settings: TelemetrySettings) -> Tracer:
    """A tracer from the process's tracer provider when one is configured (by
    ``opentelemetry-instrument`` or an embedding application); else from a provider of
    Ponder's own, exporting as ``settings.exporter`` says. The global provider is never set:
    the embedding application owns it."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )
    except ImportError as exc:
        raise ConfigError(
            "[telemetry] otel = true needs OpenTelemetry: pip install 'ponder[otel]' "
            "(or turn it off)"
        ) from exc
    from ponder import __version__

    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return current.get_tracer("ponder", __version__)
    exporter: SpanExporter
    if settings.exporter == "console":
        exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise ConfigError(
                '[telemetry] exporter = "otlp" needs opentelemetry-exporter-otlp-proto-http '
                "(pip install 'ponder[otel]'), or set exporter = \"console\""
            ) from exc
        exporter = OTLPSpanExporter()  # endpoint and headers: the OTEL_EXPORTER_OTLP_* variables
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider.get_tracer("ponder", __version__)
