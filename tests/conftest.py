"""Shared fixtures: real embedded models (loaded once per session) and a loopback endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ponder.backends.embedded import EmbeddedBackend
from ponder.config import ContextConfig
from ponder.engine.weights import ModelStore
from tests.fake_openai import make_app, serve_app

TINY = "smollm2-135m-instruct"
SMALL = "qwen2.5-coder-0.5b-instruct"

# Small contexts keep the suite's memory and start-up low.
TEST_CONTEXT = ContextConfig(n_ctx=4096, n_seq_max=8, n_batch=256, default_max_tokens=256)


def _backend(name: str, config: ContextConfig = TEST_CONTEXT) -> Iterator[EmbeddedBackend]:
    path = ModelStore().ensure(name)
    backend = EmbeddedBackend.from_path(path, config, name=name)
    try:
        yield backend
    finally:
        backend.engine.close()
        backend.model.close()


@pytest.fixture(scope="session")
def tiny_backend() -> Iterator[EmbeddedBackend]:
    """SmolLM2-135M: fast, only for plumbing."""
    yield from _backend(TINY)


@pytest.fixture(scope="session")
def small_backend() -> Iterator[EmbeddedBackend]:
    """Qwen2.5-Coder-0.5B: for checks that need a model that follows instructions."""
    yield from _backend(SMALL)


@pytest.fixture(scope="session")
def fake_endpoint() -> Iterator[tuple[str, object]]:
    app = make_app()
    with serve_app(app) as url:
        yield url, app
