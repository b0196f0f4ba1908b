"""Health and version endpoints for orchestrators and operators: ``/health/live`` (the
process answers), ``/health/ready`` (the models it was started with are loaded and the
database answers; 503 with the reasons otherwise) and ``/version``. None needs a key: a
probe carries none, and they disclose no configuration (a reason names what is wrong, not
where it points).

Liveness answers as soon as uvicorn serves, which is before the preloaded models have
loaded: they load in the background (``server/preload.py``), and readiness answers 503 with
``"loading models: …"`` until they have, so a probe never meets "connection refused" just
because a model is large. ``/health`` is the older endpoint, kept as it was
(``server/routes.py``).
"""

from __future__ import annotations

import asyncio
import platform
from importlib import metadata
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ponder.errors import PonderError
from ponder.gateway import Gateway
from ponder.server.preload import Preload

router = APIRouter(tags=["health"])

# How long readiness waits for the database before it calls it unreachable: a probe's own
# timeout is typically 1 s (Kubernetes' default), so answer within it.
DATABASE_TIMEOUT = 0.8


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    # One entry per check ("models", "database"): "ok", or what is wrong.
    checks: dict[str, str]


class VersionInfo(BaseModel):
    ponder: str
    llama_cpp: str | None  # None: the embedded engine is not installed
    python: str


@router.get("/health/live")
async def live() -> Liveness:
    """The process is up and serving (no check of models or the database)."""
    return Liveness()


@router.get(
    "/health/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready; `checks` says why."}},
)
async def ready(http: Request) -> JSONResponse:
    """200 when the preloaded models are loaded and the database answers; 503 otherwise."""
    gateway: Gateway = http.app.state.gateway
    preload: list[str] = getattr(http.app.state, "preload", [])
    preloading: Preload | None = getattr(http.app.state, "preloading", None)
    models = preloading.status() if preloading is not None and not preloading.done else "ok"
    if models == "ok":  # the preload is over: check the registry itself
        models = models_check(gateway, preload)
    checks = {"models": models, "database": await database_check(gateway)}
    ok = all(v == "ok" for v in checks.values())
    body = Readiness(status="ready" if ok else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


def models_check(gateway: Gateway, preload: list[str]) -> str:
    loaded = set(gateway.registry.loaded())
    missing = []
    for name in preload:
        try:
            ids = {
                d.id for d in gateway.registry.resolve(gateway.registry.canonical(name)).deployments
            }
        except PonderError:
            ids = set()
        if not ids & loaded:
            missing.append(name)
    return "ok" if not missing else f"not loaded: {', '.join(missing)}"


async def database_check(gateway: Gateway) -> str:
    store = gateway.accounts.store
    if store is None:
        return "not open (the server has not started)"
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT):
            await store.has_keys()
    except TimeoutError:
        return f"unreachable: no answer within {DATABASE_TIMEOUT} s"
    except Exception as exc:  # any failure of the driver means "not ready", never a 500
        return f"unreachable: {type(exc).__name__}"
    return "ok"


@router.get("/version")
async def version() -> VersionInfo:
    """Ponder's version, llama.cpp's (through llama-cpp-python; null when not installed)
    and Python's."""
    return VersionInfo(
        ponder=package_version("ponder") or "unknown",
        llama_cpp=package_version("llama_cpp_python"),
        python=platform.python_version(),
    )


def package_version(name: str) -> str | None:
    """An installed distribution's version, read from its metadata (importing llama_cpp
    would load the native library)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
