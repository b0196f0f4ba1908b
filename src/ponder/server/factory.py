"""The app of one worker process, for ``ponder serve --workers N`` (or ``uvicorn --factory
ponder.server.factory:app``): built from the settings ``ponder serve`` leaves in the
environment, since uvicorn starts workers by import string. A worker whose preload fails
exits with uvicorn's start-up failure code, which stops the supervisor instead of having it
start the same failing worker again."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from fastapi import FastAPI

from ponder import logs
from ponder.config import load_config
from ponder.server.app import create_app
from ponder.server.preload import one_line

log = logging.getLogger("ponder.server")

# uvicorn.config.STARTUP_FAILURE: its supervisor stops, rather than restarts, on this code.
STARTUP_FAILURE = 3


def app() -> FastAPI:
    fmt = os.environ.get("PONDER_LOG_FORMAT", "text")
    logs.configure(logging.INFO, "json" if fmt == "json" else "text")
    path = os.environ.get("PONDER_CONFIG") or None
    config = load_config(Path(path) if path else None)
    if max_n := os.environ.get("PONDER_MAX_N"):
        config = config.replace(max_n=int(max_n))
    preload = [name for name in os.environ.get("PONDER_PRELOAD", "").split(",") if name]
    return create_app(config, preload=preload, on_preload_failure=exit_worker)


def exit_worker(name: str, error: BaseException) -> None:
    """End this worker at once: it cannot serve, and uvicorn gives the app no way to stop
    its own server. Requests in flight on this worker are cut; the supervisor is about to
    stop every worker in any case."""
    log.error("could not load model %s: %s", name, one_line(error))
    logging.shutdown()
    sys.stderr.flush()
    os._exit(STARTUP_FAILURE)
