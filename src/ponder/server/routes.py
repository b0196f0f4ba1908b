"""The HTTP routes: small functions that turn the wire format into a gateway call and back.
Everything a request does happens in :class:`~ponder.gateway.Gateway`.

The chat route is the hot path, and a pass-through must be cheap: it is served by a plain
Starlette route that reads the body once (one JSON parse, one pydantic validation) and raises
the same :class:`RequestValidationError` FastAPI would, so an invalid request gets the same
OpenAI-shaped 400. FastAPI's per-request dependency machinery cost about a sixth of a
pass-through's CPU time. The FastAPI route with the same path documents the endpoint in the
OpenAPI schema and would serve it the same way.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import suppress
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from ponder.errors import (
    ClientDisconnectedError,
    InvalidRequestError,
    PolicyError,
    PonderError,
    TraceNotFoundError,
)
from ponder.gateway import ChatCall, Gateway, Plan
from ponder.gateway.deadline import request_timeout
from ponder.gateway.identity import Caller
from ponder.protocol.chat import ChatCompletionRequest, ModelCard, ModelList
from ponder.server import convert, metrics, sse
from ponder.server.errors import ERROR_RESPONSES
from ponder.tenancy.models import GroupBy
from ponder.types import Delta

T = TypeVar("T")

router = APIRouter(responses=ERROR_RESPONSES)


def gateway_of(http: Request) -> Gateway:
    gateway: Gateway = http.app.state.gateway
    return gateway


async def caller_of(http: Request) -> Caller:
    """Who is calling, from ``Authorization: Bearer`` (the OpenAI SDK's header)."""
    scheme, _, token = http.headers.get("authorization", "").partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" else None
    return await gateway_of(http).accounts.caller(bearer or None)


def require_admin(caller: Caller) -> None:
    if not caller.admin:
        raise PolicyError("this needs the admin key", param="authorization")


@router.get("/health")
async def health(http: Request) -> dict[str, object]:
    return {"status": "ok", "loaded_models": gateway_of(http).registry.loaded()}


@router.get("/v1/models")
async def models(http: Request) -> ModelList:
    entries = gateway_of(http).registry.entries()
    return ModelList(data=[ModelCard(id=e.id, kind=e.kind, installed=e.installed) for e in entries])


@router.get("/v1/usage", response_model=None)
async def usage(
    http: Request,
    tag: str | None = None,
    group_by: GroupBy | None = None,
    since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    """The ledger: a key sees its own requests, a team admin its team's, the admin all.
    Without ``group_by``, the admin gets this process's per-model totals (and ``tag``'s)."""
    gateway = gateway_of(http)
    caller = await caller_of(http)
    if group_by is None and caller.admin:
        ledger = gateway.ledger
        return dict(ledger.snapshot() if tag is None else ledger.tagged(tag))
    store = gateway.accounts.store
    if store is None:
        return {"data": []}
    key_id, team = (None, None) if caller.admin else (caller.key_id, None)
    if caller.key is not None and caller.key.team_admin:
        key_id, team = None, caller.key.team
    rows = await store.usage(
        group_by=group_by or "model", since=since, until=until, key_id=key_id, team=team
    )
    return {"object": "list", "group_by": group_by or "model", "data": rows}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus metrics."}},
)
async def prometheus(http: Request) -> Response:
    require_admin(await caller_of(http))
    body = metrics.render(http.app.state.metrics)
    return Response(body, media_type=metrics.CONTENT_TYPE_LATEST)


@router.get("/v1/deployments")
async def deployments(http: Request) -> dict[str, object]:
    """Every deployment with its routing state: in flight, latency, failures, cooldown."""
    require_admin(await caller_of(http))
    return {"object": "list", "data": gateway_of(http).registry.status()}


@router.get("/v1/traces/{trace_id}")
async def get_trace(http: Request, trace_id: str) -> JSONResponse:
    # Another key's trace is not found, as if it did not exist.
    found = await gateway_of(http).trace(trace_id, await caller_of(http))
    if found is None:
        raise TraceNotFoundError(f"no trace {trace_id!r}", param="trace_id")
    return JSONResponse(found)


async def chat(http: Request) -> Response:
    """``POST /v1/chat/completions``, served without FastAPI's dependency machinery."""
    wire, body = chat_request(await http.body(), http.headers.get("content-type"))
    return await _chat(http, wire, body)


# First, so that it serves the path; the route below documents it.
router.add_route("/v1/chat/completions", chat, methods=["POST"], include_in_schema=False)


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, http: Request) -> Response:
    # FastAPI parsed the body once already; http.json() returns that parse.
    return await _chat(http, body, await http.json())


def chat_request(raw: bytes, content_type: str | None) -> tuple[ChatCompletionRequest, Any]:
    """The request validated, and its JSON body as the client sent it (key order kept).

    Raises what FastAPI raises for a body parameter: :class:`RequestValidationError` for
    invalid JSON (``json_invalid``), a missing body, a body that is not JSON by its
    ``Content-Type`` (which is required), or one that fails validation, with each error's
    ``loc`` under ``body``; ``HTTPException(400)`` for a body that cannot be decoded."""
    if not raw:
        errors: list[dict[str, Any]] = [
            {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        ]
        raise RequestValidationError(errors)
    body: Any = raw
    if content_type is not None and _is_json(content_type):
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            error = {
                "type": "json_invalid",
                "loc": ("body", exc.pos),
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": exc.msg},
            }
            raise RequestValidationError([error], body=exc.doc) from exc
        except ValueError as exc:  # not UTF-8, -16 or -32
            raise HTTPException(400, "There was an error parsing the body") from exc
        except RecursionError as exc:
            raise InvalidRequestError(
                "the request body is nested too deeply", param="body"
            ) from exc
    try:
        wire = ChatCompletionRequest.model_validate(body, from_attributes=True)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=body) from exc
    return wire, body


def _truthy(value: str | None, header: str = "X-Ponder-Local-Only") -> bool:
    """A request header's flag: ``true``, ``1`` or ``yes``, or ``false``, ``0`` or ``no``
    (any case); anything else is a 400, never read as false."""
    if value is None:
        return False
    flag = value.strip().lower()
    if flag in ("1", "true", "yes"):
        return True
    if flag in ("0", "false", "no", ""):
        return False
    raise InvalidRequestError(f"{header} must be true or false", param=header)


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


async def _chat(http: Request, body: ChatCompletionRequest, raw: Any) -> Response:
    gateway = gateway_of(http)
    if isinstance(raw, dict) and not isinstance(raw.get("stream", False), bool | None):
        # Validation coerced it ("true", 1); the body a pass-through forwards would not be.
        raise InvalidRequestError("stream must be true or false", param="stream")
    call = ChatCall(
        model=body.model,
        request=convert.to_generation_request(body, model=body.model),
        ponder=body.ponder,
        reasoning_effort=body.reasoning_effort,
        body=raw,
        caller=await caller_of(http),
        local_only=_truthy(http.headers.get("x-ponder-local-only")),
        timeout=request_timeout(http.headers, gateway.config.request_timeout),
    )
    # Planned before the first byte: a request that cannot run gets its 4xx, not a 200.
    plan = await gateway.plan(call)
    if plan.upstream is not None:
        return await _relay(gateway, call, plan, stream=bool(body.stream))
    request_id = convert.new_id()
    if body.stream:
        stream = await gateway.stream(call, plan)
        deltas = aiter(stream)
        # The first delta before the status line: a strategy that finds, as it starts, that
        # it cannot run (a missing capability, a budget too small) fails with its 4xx, as
        # the same request without streaming does, and not with a 200 and an error event.
        first = await _unless_disconnected(http, asyncio.ensure_future(_first(deltas)))
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            sse.chat_events(
                stream,
                deltas=deltas,
                first=first,
                request_id=request_id,
                model=body.model,
                include_usage=include_usage,
            ),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    reply = await _unless_disconnected(http, asyncio.ensure_future(gateway.complete(call, plan)))
    wire = convert.to_response(reply, request_id=request_id, model=body.model)
    headers = {"X-Ponder-Trace-Id": reply.trace.id} if reply.trace is not None else None
    return JSONResponse(wire.model_dump(exclude_none=True), headers=headers)


async def _relay(
    gateway: Gateway, call: ChatCall, plan: Plan, *, stream: bool
) -> Response | StreamingResponse:
    """A pass-through request: the endpoint's reply, or its event stream, as it sent it."""
    if not stream:
        forwarded = await gateway.forward(call, plan)
        return Response(forwarded.content, forwarded.status_code, media_type="application/json")
    opened = await gateway.forward_stream(call, plan)
    if opened.refused is not None:
        refused = opened.refused
        return Response(refused.content, refused.status_code, media_type="application/json")
    return StreamingResponse(
        opened.events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _first(deltas: AsyncIterator[Delta]) -> Delta | None:
    try:
        return await anext(deltas)
    except StopAsyncIteration:
        return None


async def _unless_disconnected(http: Request, work: asyncio.Future[T]) -> T:
    """Await ``work`` unless the client disconnects first; then cancel it (which stops its
    decoding; the gateway still records what it spent) and raise
    :class:`ClientDisconnectedError`. Starlette does this for streamed responses; a plain
    request would otherwise decode to the end for nobody."""
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
