"""The OpenAI-compatible HTTP server. The only code in Ponder that knows HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import TypeVar

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ponder.backends.base import Backend, GenerationStream
from ponder.backends.registry import BackendRegistry
from ponder.config import PonderConfig
from ponder.errors import (
    ClientDisconnectedError,
    ModelNotFoundError,
    PolicyError,
    PonderError,
    TraceNotFoundError,
)
from ponder.metering import UsageMeter, metered
from ponder.protocol.chat import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ModelCard,
    ModelList,
    PonderInfo,
)
from ponder.protocol.errors import ErrorDetail, ErrorResponse
from ponder.reasoning.base import Services
from ponder.reasoning.profile import builtin_profile
from ponder.reasoning.runner import StrategyBackend, StrategySpec
from ponder.reasoning.selection import select_strategy
from ponder.reasoning.trace import Trace
from ponder.server import convert, metrics
from ponder.server.ledger import UsageLedger
from ponder.traces import TraceStore, default_trace_path
from ponder.types import GenerationRequest, Usage

log = logging.getLogger("ponder.server")

T = TypeVar("T")

# How long a failed or abandoned request waits for its cancelled calls to report their exact
# usage (an engine sequence reports at its next decode step).
SETTLE_SECONDS = 10.0


def error_response(
    status: int, message: str, type_: str, *, param: str | None = None, code: str | None = None
) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(message=message, type=type_, param=param, code=code))
    return JSONResponse(status_code=status, content=body.model_dump())


def _error_event(exc: PonderError) -> str:
    detail = ErrorDetail(message=exc.message, type=exc.error_type, param=exc.param, code=exc.code)
    return _event(ErrorResponse(error=detail).model_dump())


async def log_sandbox_status(services: Services) -> None:
    """Say at start-up which isolation model-written programs get; loudly when it is weak or
    missing (strategies that run programs then refuse, and auto goes without them)."""
    status = await services.sandbox.status()
    if not status.available:
        log.error(
            "sandbox unavailable, model-written programs will not run: %s. Fix: %s",
            status.detail,
            status.fix,
        )
    elif status.mode == "process":
        log.warning(status.detail)
    else:
        log.info("sandbox: %s", status.detail)


def create_app(
    config: PonderConfig,
    *,
    registry: BackendRegistry | None = None,
    preload: list[str] | None = None,
    close_backends: bool = True,
) -> FastAPI:
    registry = registry or BackendRegistry(config)
    # Read once at start: a broken profile stops the server instead of failing requests.
    services = Services.from_config(config)
    ledger = UsageLedger()
    traces = TraceStore(config.trace_db or default_trace_path())
    scrape = metrics.metrics_registry(ledger, registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await log_sandbox_status(services)
        for name in preload or []:
            await registry.get(name)
        yield
        if close_backends:
            await registry.aclose()
        traces.close()

    app = FastAPI(title="Ponder", version="0.1.0", lifespan=lifespan)
    app.state.registry = registry
    app.state.ledger = ledger
    app.state.traces = traces

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        if first.get("type") == "json_invalid":
            return error_response(
                400,
                "the request body is not valid JSON",
                "invalid_request_error",
                code="invalid_json",
            )
        message = first.get("msg", "invalid request")
        where = ".".join(loc)
        return error_response(
            400,
            f"{where}: {message}" if where else message,
            "invalid_request_error",
            param=where or None,
            code="invalid_value",
        )

    @app.exception_handler(PonderError)
    async def _ponder(request: Request, exc: PonderError) -> JSONResponse:
        return error_response(
            exc.status_code, exc.message, exc.error_type, param=exc.param, code=exc.code
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(
            exc.status_code, str(exc.detail), "invalid_request_error", code=str(exc.status_code)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(500, "internal server error", "server_error")

    @app.get("/health")
    async def health() -> dict[str, object]:
        return {"status": "ok", "loaded_models": registry.loaded()}

    @app.get("/v1/models")
    async def models() -> ModelList:
        return ModelList(
            data=[
                ModelCard(id=e.id, kind=e.kind, installed=e.installed) for e in registry.entries()
            ]
        )

    @app.get("/v1/usage")
    async def usage(tag: str | None = None) -> dict[str, object]:
        return ledger.snapshot() if tag is None else ledger.tagged(tag)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(scrape), media_type=metrics.CONTENT_TYPE_LATEST)

    @app.get("/v1/traces/{trace_id}")
    async def get_trace(trace_id: str) -> JSONResponse:
        found = await traces.get(trace_id)
        if found is None:
            raise TraceNotFoundError(f"no trace {trace_id!r}", param="trace_id")
        return JSONResponse(found)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(
        body: ChatCompletionRequest, http: Request
    ) -> JSONResponse | StreamingResponse:
        # "model#tag": the tag only labels usage in the ledger (see ledger.py).
        name, _, tag = body.model.partition("#")
        spec, base_model = select_strategy(
            model=name,
            ponder=body.ponder,
            reasoning_effort=body.reasoning_effort,
            effort_map=config.effort,
            default=config.default_strategy,
        )
        model = registry.canonical(base_model)
        registry.kind_of(model)  # unknown model: 404 before any work
        request = convert.to_generation_request(body, model=model)
        registry.check_n(request.n)
        backend: Backend = await registry.get(model)
        if spec is not None:
            named = await _named_backends(spec, registry, services)
            backend = StrategyBackend(spec, backend, backends=named, services=services)
        request_id = convert.new_id()
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(
                _sse(
                    backend,
                    request,
                    request_id,
                    body.model,
                    model,
                    include_usage,
                    ledger,
                    traces,
                    tag=tag,
                ),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        started = time.perf_counter()
        with metered() as meter:
            work = asyncio.ensure_future(backend.generate(request))
        try:
            completion = await _unless_disconnected(http, work)
        except PonderError as exc:
            await _settle(meter)
            seconds = time.perf_counter() - started
            ledger.record(model, _spent(meter, exc.usage), ok=False, seconds=seconds, tag=tag)
            raise
        ledger.record(
            model, completion.usage, ok=True, seconds=time.perf_counter() - started, tag=tag
        )
        info = None
        if isinstance(completion.trace, Trace):
            await traces.put(completion.trace, model)
            info = _ponder_info(completion.trace, completion.usage)
        reply = convert.to_response(
            completion, request_id=request_id, model=body.model, ponder=info
        )
        headers = {"X-Ponder-Trace-Id": info.trace_id} if info and info.trace_id else None
        return JSONResponse(reply.model_dump(exclude_none=True), headers=headers)

    return app


def _ponder_info(trace: Trace, usage: Usage) -> PonderInfo:
    """The reply's extension block; for ``auto``, the rungs each choice climbed and why it
    stopped, so a client sees what its answer cost without fetching the trace."""
    climbed = [n for n in trace.notes if n.get("kind") == "rungs"]
    details = (
        {"rungs": [n["rungs"] for n in climbed], "stop": [n["stop"] for n in climbed]}
        if climbed
        else None
    )
    return PonderInfo(
        trace_id=trace.id, strategy=trace.strategy, calls=usage.calls, details=details
    )


async def _named_backends(
    spec: StrategySpec | None, registry: BackendRegistry, services: Services
) -> dict[str, Backend]:
    """Backends a strategy reaches besides the request's model, through the same registry and
    policy: mixture-of-agents proposers and aggregator (a denied one fails the request), and
    the models ``auto`` may escalate to (a denied one is left out, so that rung is skipped)."""
    named: dict[str, Backend] = {}
    while spec is not None:
        for name in getattr(spec.params, "proposers", None) or []:
            named[name] = await registry.get(name, purpose="proposer")
        aggregator = getattr(spec.params, "aggregator", None)
        if aggregator:
            named[aggregator] = await registry.get(aggregator, purpose="proposer")
        if spec.name == "auto":
            profile = services.auto_profile or builtin_profile()
            effort = profile.efforts.get(str(getattr(spec.params, "effort", "")))
            for rung in effort.ladder if effort else ():
                if rung.model is None or rung.model in named:
                    continue
                try:
                    named[rung.model] = await registry.get(rung.model, purpose="escalation")
                except (PolicyError, ModelNotFoundError) as exc:
                    log.info("auto will not escalate to %s: %s", rung.model, exc.message)
        spec = spec.over
    return named


async def _sse(
    backend: Backend,
    request: GenerationRequest,
    request_id: str,
    shown_model: str,
    model: str,
    include_usage: bool,
    ledger: UsageLedger,
    traces: TraceStore,
    *,
    tag: str = "",
) -> AsyncIterator[str]:
    with_logprobs = request.sampling.logprobs
    meter = UsageMeter()
    started = time.perf_counter()
    try:
        with metered(meter):
            stream: GenerationStream = backend.stream(request)
    except PonderError as exc:
        seconds = time.perf_counter() - started
        ledger.record(model, _spent(meter, exc.usage), ok=False, seconds=seconds, tag=tag)
        yield _error_event(exc)
        yield "data: [DONE]\n\n"
        return
    ok = False
    try:
        yield _event(
            convert.role_chunk(request_id, shown_model, request.n).model_dump(exclude_none=True)
        )
        async for delta in stream:
            chunk = convert.to_chunk(
                delta, request_id=request_id, model=shown_model, with_logprobs=with_logprobs
            )
            yield _event(chunk.model_dump(exclude_none=True))
        if include_usage:
            tail = convert.usage_chunk(stream.usage, request_id=request_id, model=shown_model)
            yield _event(tail.model_dump(exclude_none=True))
        ok = True
    except PonderError as exc:
        yield _error_event(exc)
    finally:
        await stream.aclose()
        usage = stream.usage
        if not ok:
            # A client that disconnects cancels this generator; the shield lets the cancelled
            # calls report what they spent before the ledger is written.
            with anyio.CancelScope(shield=True):
                await _settle(meter)
            usage = _spent(meter, usage)
        ledger.record(model, usage, ok=ok, seconds=time.perf_counter() - started, tag=tag)
    trace = getattr(stream, "trace", None)
    if isinstance(trace, Trace):
        await traces.put(trace, model)
        info = _ponder_info(trace, stream.usage)
        yield _event(
            ChatCompletionChunk(
                id=request_id, model=shown_model, choices=[], ponder=info
            ).model_dump(exclude_none=True)
        )
    yield "data: [DONE]\n\n"


async def _unless_disconnected(http: Request, work: asyncio.Future[T]) -> T:
    """Await ``work`` unless the client disconnects first; then cancel it (which stops its
    decoding) and raise :class:`ClientDisconnectedError`. Starlette does this for streamed
    responses; a plain request would otherwise decode to the end for nobody."""
    watcher: asyncio.Future[None] = asyncio.ensure_future(_disconnected(http))
    try:
        await asyncio.wait((work, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not work.done():
            work.cancel()
            with suppress(asyncio.CancelledError, PonderError):
                await work
    if work.cancelled():
        raise ClientDisconnectedError("the client closed the connection before the reply")
    return work.result()


async def _disconnected(http: Request) -> None:
    # The body has been read, so the next message is the disconnect (uvicorn holds it back
    # until then).
    while (await http.receive())["type"] != "http.disconnect":
        pass


async def _settle(meter: UsageMeter) -> None:
    with suppress(TimeoutError):
        async with asyncio.timeout(SETTLE_SECONDS):
            await meter.settled()


def _spent(meter: UsageMeter, reported: Usage | None) -> Usage:
    """What a failed request cost: the meter sums every leaf call, cancelled ones included;
    an error's own usage is kept when it knows more (a backend that does not meter)."""
    reported = reported or Usage()
    return meter.usage if meter.usage.total_tokens >= reported.total_tokens else reported


def _event(payload: object) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"
