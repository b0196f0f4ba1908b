"""The servers ``bench/overhead.py`` measures, each run as ``overhead.py --serve ROLE``: the
canned fake endpoint (``fake``), the Ponder server in pass-through mode in front of it
(``ponder``), and a bare FastAPI route on the pass-through module (``module``).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fake_endpoint import MODEL, canned_app
from launch import serve_uvicorn

PROVIDER = "fake"


def ponder_app() -> Any:
    """The Ponder server in pass-through mode, for uvicorn's factory import (workers)."""
    from ponder.config import PonderConfig, ProviderConfig
    from ponder.server.app import create_app

    provider = ProviderConfig(
        name=PROVIDER,
        base_url=os.environ["PONDER_BENCH_UPSTREAM"],
        models=(MODEL,),
        max_retries=0,
    )
    config = PonderConfig(providers=(provider,), default_strategy=None, trace_db=":memory:")
    return create_app(config)


def module_app() -> Any:
    """A bare FastAPI route on :class:`ponder.gateway.passthrough.PassThrough`: no routing,
    metering or validation, so the floor for a server that passes through with it."""
    from fastapi import FastAPI, Request
    from fastapi.responses import Response, StreamingResponse

    from ponder.backends.endpoint import EndpointConfig
    from ponder.gateway.passthrough import Forwarded, PassThrough

    endpoint = EndpointConfig(base_url=os.environ["PONDER_BENCH_UPSTREAM"])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with PassThrough() as passthrough:
            app.state.passthrough = passthrough
            yield

    app = FastAPI(lifespan=lifespan)

    # Plain Starlette routes: the handler gets the request as it is, nothing validated.
    async def health(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def chat(request: Request) -> Response:
        body = json.loads(await request.body())
        passthrough: PassThrough = request.app.state.passthrough
        if body.get("stream"):
            reply = await passthrough.open_stream(endpoint, MODEL, body)
            if not isinstance(reply, Forwarded):
                return StreamingResponse(reply, media_type="text/event-stream")
        else:
            reply = await passthrough.forward(endpoint, MODEL, body)
        return Response(reply.content, reply.status_code, media_type="application/json")

    app.add_route("/health", health, methods=["GET"])
    app.add_route("/v1/chat/completions", chat, methods=["POST"])
    return app


def serve(role: str, port: int, workers: int, access_log: bool) -> None:
    if role == "fake":
        serve_uvicorn(
            canned_app(), port, log_level="warning", access_log=access_log, lifespan="off"
        )
        return
    serve_uvicorn(
        f"overhead_servers:{role}_app",
        port,
        workers=workers,
        log_level="info" if access_log else "warning",
        access_log=access_log,
    )
