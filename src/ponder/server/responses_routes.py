"""The Responses API routes: ``POST /v1/responses`` (whole or streamed), and a stored
response's ``GET``, ``DELETE`` and ``GET …/input_items``. They parse the wire, hand the
request to :class:`~ponder.gateway.responses.Responses` and frame its result; everything a
request does happens in the gateway.

The body is parsed by FastAPI (Responses requests are not the pass-through's hot path).
A streamed response is prepared, planned and started (its first delta taken) before the
status line, as a chat stream is: a request that cannot run gets its 4xx, not a 200 and a
failure event. Events go out as ``event: <type>`` / ``data: <json>`` pairs, without the chat
stream's ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ponder.errors import InvalidRequestError
from ponder.gateway.deadline import request_timeout
from ponder.gateway.response_stream import response_events
from ponder.gateway.responses import Responses
from ponder.protocol.response_events import ResponseLifecycle, StreamEvent
from ponder.protocol.responses import DeletedResponse, ResponsesRequest
from ponder.server.errors import ERROR_RESPONSES
from ponder.server.routes import _truthy, _unless_disconnected, caller_of, gateway_of

router = APIRouter(responses=ERROR_RESPONSES)


def responses_of(http: Request) -> Responses:
    return Responses(gateway_of(http))


@router.post("/v1/responses", response_model=None)
async def create_response(body: ResponsesRequest, http: Request) -> Response:
    # FastAPI parsed and validated the body (an invalid one is the usual OpenAI-shaped 400);
    # http.json() returns that parse, to check what validation coerced.
    return await _create(http, body, await http.json())


async def _create(http: Request, request: ResponsesRequest, raw: Any) -> Response:
    for name in ("stream", "store"):
        if isinstance(raw, dict) and not isinstance(raw.get(name), bool | None):
            # Validation coerced it ("true", 1): refuse what the client did not mean exactly.
            raise InvalidRequestError(f"{name} must be true or false", param=name)
    responses = responses_of(http)
    turn = await responses.prepare(
        request,
        await caller_of(http),
        local_only=_truthy(http.headers.get("x-ponder-local-only")),
        seconds=request_timeout(http.headers, responses.gateway.config.request_timeout),
    )
    if request.stream:
        opened = await _unless_disconnected(http, asyncio.ensure_future(responses.open(turn)))
        return StreamingResponse(
            _framed(response_events(responses, opened)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    response, reply = await _unless_disconnected(
        http, asyncio.ensure_future(responses.create(turn))
    )
    headers = {"X-Ponder-Trace-Id": reply.trace.id} if reply.trace is not None else None
    return JSONResponse(response.wire(), headers=headers)


async def _framed(events: AsyncIterator[StreamEvent]) -> AsyncIterator[str]:
    async for event in events:
        payload = event.wire() if isinstance(event, ResponseLifecycle) else event.model_dump()
        data = json.dumps(payload, separators=(",", ":"))
        yield f"event: {event.type}\ndata: {data}\n\n"


@router.get("/v1/responses/{response_id}")
async def retrieve_response(http: Request, response_id: str) -> JSONResponse:
    response = await responses_of(http).retrieve(response_id, await caller_of(http))
    return JSONResponse(response.wire())


@router.delete("/v1/responses/{response_id}")
async def delete_response(http: Request, response_id: str) -> DeletedResponse:
    await responses_of(http).delete(response_id, await caller_of(http))
    return DeletedResponse(id=response_id)


@router.get("/v1/responses/{response_id}/input_items")
async def list_input_items(
    http: Request,
    response_id: str,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> dict[str, Any]:
    page = await responses_of(http).input_items(
        response_id, await caller_of(http), limit=limit, order=order, after=after
    )
    return page.model_dump()
