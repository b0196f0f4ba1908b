"""``/metrics``: usage and engine load in Prometheus text, over real HTTP and the real engine."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ponder.backends.embedded import EmbeddedBackend
from ponder.config import PonderConfig
from ponder.routing.registry import BackendRegistry
from ponder.server.app import create_app
from tests.fake_openai import serve_app

MODEL = "tiny"


@pytest.fixture(scope="module")
def server(tiny_backend: EmbeddedBackend) -> Iterator[str]:
    registry = BackendRegistry(
        PonderConfig(default_model=MODEL, trace_db=":memory:", default_strategy=None)
    )
    registry.register(MODEL, tiny_backend)
    with serve_app(create_app(registry.config, registry=registry, close_backends=False)) as url:
        yield url


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = httpx.get(f"{url}/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(({"model": MODEL} | labels).items()))), 0.0)


def test_counters_move_by_exactly_what_a_request_spent(
    server: str, tiny_backend: EmbeddedBackend
) -> None:
    before = scrape(server)
    with openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0) as client:
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=6, n=2
        )
    after = scrape(server)
    assert reply.usage is not None
    assert value(after, "ponder_requests_total", outcome="ok") == (
        value(before, "ponder_requests_total", outcome="ok") + 1
    )
    for name, spent in (
        ("ponder_prompt_tokens_total", reply.usage.prompt_tokens),
        ("ponder_completion_tokens_total", reply.usage.completion_tokens),
    ):
        assert value(after, name) - value(before, name) == spent
    # The engine counts what it evaluated: the prompt once for both paths, every sampled token.
    engine_completion = value(after, "ponder_engine_decode_tokens_total") - value(
        before, "ponder_engine_decode_tokens_total"
    )
    assert engine_completion == reply.usage.completion_tokens
    assert value(after, "ponder_request_seconds_total") > value(
        before, "ponder_request_seconds_total"
    )
    slots = tiny_backend.engine.max_sequences
    assert value(after, "ponder_engine_sequence_slots") == slots
    assert value(after, "ponder_engine_sequence_slots_free") == slots
    assert value(after, "ponder_engine_sequences_running") == 0


def test_a_failed_request_is_counted_as_failed(server: str) -> None:
    before = scrape(server)
    reply = httpx.post(
        f"{server}/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "word " * 5000}],
            "max_tokens": 4,
        },
    )
    assert reply.status_code == 400
    after = scrape(server)
    failed = value(after, "ponder_requests_total", outcome="failed")
    assert failed == value(before, "ponder_requests_total", outcome="failed") + 1
