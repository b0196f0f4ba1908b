"""The app of one worker process, for ``ponder serve --workers N`` (or ``uvicorn --factory
ponder.server.factory:app``): built from the settings ``ponder serve`` leaves in the
environment, since uvicorn starts workers by import string."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import FastAPI

from ponder import logs
from ponder.config import load_config
from ponder.server.app import create_app


def app() -> FastAPI:
    fmt = os.environ.get("PONDER_LOG_FORMAT", "text")
    logs.configure(logging.INFO, "json" if fmt == "json" else "text")
    path = os.environ.get("PONDER_CONFIG") or None
    config = load_config(Path(path) if path else None)
    if max_n := os.environ.get("PONDER_MAX_N"):
        config = config.replace(max_n=int(max_n))
    preload = [name for name in os.environ.get("PONDER_PRELOAD", "").split(",") if name]
    return create_app(config, preload=preload)
