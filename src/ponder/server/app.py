"""The OpenAI-compatible HTTP server: the only code in Ponder that knows HTTP. It builds a
:class:`~ponder.gateway.Gateway` and serves it through the routes in
:mod:`ponder.server.routes`; errors become OpenAI-shaped bodies in :mod:`ponder.server.errors`."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ponder.config import PonderConfig
from ponder.gateway import Gateway
from ponder.reasoning.base import Services
from ponder.routing.registry import BackendRegistry
from ponder.server import (
    admin,
    errors,
    health_routes,
    limits,
    metrics,
    responses_routes,
    routes,
)
from ponder.server.preload import FailureHandler, Preload

log = logging.getLogger("ponder.server")

ADMIN_KEY_ENV = "PONDER_ADMIN_KEY"


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
    gateway: Gateway | None = None,
    preload: list[str] | None = None,
    close_backends: bool = True,
    admin_key: str | None = None,
    on_preload_failure: FailureHandler | None = None,
) -> FastAPI:
    """The app around one gateway. The admin key comes from ``PONDER_ADMIN_KEY`` unless
    given; the database (keys, budgets, ledger, traces) opens at start-up. The ``preload``
    models load in the background once it has started (:mod:`ponder.server.preload`); a
    load that fails is handed to ``on_preload_failure`` (else logged, and never ready)."""
    gateway = gateway or Gateway(
        config,
        registry=registry,
        close_backends=close_backends,
        admin_key=admin_key if admin_key is not None else os.environ.get(ADMIN_KEY_ENV),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await log_sandbox_status(gateway.services)
        await gateway.start()
        # Not awaited here: uvicorn listens only once start-up returns, and liveness must
        # answer while models load (minutes for a large GGUF).
        app.state.preloading.start(gateway)
        try:
            yield
        finally:
            await app.state.preloading.stop()
            await gateway.aclose()

    app = FastAPI(title="Ponder", version="0.1.0", lifespan=lifespan)
    app.state.gateway = gateway
    app.state.preload = list(preload or [])  # what /health/ready waits for
    app.state.preloading = Preload(app.state.preload, on_preload_failure)
    app.state.metrics = metrics.metrics_registry(gateway.ledger, gateway.registry)
    # Kept for callers that read them from the app (tests, embedding applications).
    app.state.registry = gateway.registry
    app.state.ledger = gateway.ledger
    errors.install(app)
    app.add_middleware(
        limits.Limits,
        max_body_bytes=config.max_body_bytes,
        max_concurrent_requests=config.max_concurrent_requests,
    )
    app.include_router(routes.router)
    app.include_router(admin.router)
    app.include_router(responses_routes.router)
    app.include_router(health_routes.router)
    return app
