"""The embedded engine under overload: a full queue and a queue deadline refuse a call at
once with 503 and ``Retry-After``, and the requests already running are unharmed."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator

import pytest

from ponder.backends.embedded import EmbeddedBackend
from ponder.engine.admission import Holding, overdue, retry_after
from ponder.errors import OverloadedError
from ponder.metering import CallLog, recording
from ponder.types import GenerationRequest, Message, SamplingParams


def request(n: int = 1, max_tokens: int = 8, seed: int = 1) -> GenerationRequest:
    return GenerationRequest(
        messages=(Message("user", "Write a short story about a cat."),),
        n=n,
        sampling=SamplingParams(temperature=0.5, max_tokens=max_tokens, seed=seed, ignore_eos=True),
    )


@pytest.fixture
def bounded(tiny_backend: EmbeddedBackend) -> Iterator[EmbeddedBackend]:
    """The shared tiny engine with a queue of one job (its settings restored after)."""
    model = tiny_backend.engine.model
    before = model.config
    model.config = dataclasses.replace(before, max_waiting=1)
    try:
        yield tiny_backend
    finally:
        model.config = before


def test_overdue_finds_only_jobs_past_the_limit() -> None:
    assert overdue([], 10.0, 1.0) == []
    assert overdue([9.5, 9.8], 10.0, 1.0) == []  # the oldest has not waited that long
    assert overdue([5.0, 8.0, 9.9], 10.0, 1.0) == [0, 1]


def test_retry_after_follows_the_first_job_to_free_its_slots() -> None:
    running = [Holding(slots=4, cells=0, steps_left=300), Holding(slots=2, cells=0, steps_left=80)]
    assert retry_after(running, 0.05) == 4.0  # 80 steps of 50 ms
    assert retry_after([], 0.05) == 1.0  # never less than a second
    assert retry_after(running, 1.0) == 30.0  # never more than 30


async def test_a_full_queue_refuses_at_once_and_running_work_finishes(
    bounded: EmbeddedBackend,
) -> None:
    width = bounded.engine.max_sequences
    refused_before = bounded.engine.stats.refused
    blocker = bounded.stream(request(n=width, max_tokens=64))
    deltas = aiter(blocker)
    await anext(deltas)  # running: every slot is taken
    queued = bounded.stream(request(n=1, max_tokens=4, seed=2))  # waits: the queue holds one
    log = CallLog()
    with recording(log), pytest.raises(OverloadedError) as refused:
        await bounded.generate(request(n=1, max_tokens=4, seed=3))
    assert refused.value.status_code == 503
    assert 1 <= refused.value.retry_after <= 30
    assert bounded.engine.stats.refused == refused_before + 1
    # Refused before it was queued: nothing was spent, and the call is on the record, ended
    # (a call left open would hold the request's end for the settle timeout).
    assert log.usage.total_tokens == 0
    assert [r.outcome for r in log.records] == ["error"]
    await asyncio.wait_for(log.settled(), 1)
    finished = [d.finish_reason for d in [*[d async for d in deltas]] if d.finish_reason]
    assert finished == ["length"] * width
    assert blocker.usage.completion_tokens == width * 64
    assert [d async for d in queued]
    assert queued.usage.completion_tokens == 4


async def test_a_job_that_waits_past_the_deadline_is_refused(bounded: EmbeddedBackend) -> None:
    width = bounded.engine.max_sequences
    model = bounded.engine.model
    model.config = dataclasses.replace(model.config, max_queue_seconds=0.5)
    expired_before = bounded.engine.stats.expired
    blocker = bounded.stream(request(n=width, max_tokens=200))
    deltas = aiter(blocker)
    await anext(deltas)
    log = CallLog()
    with recording(log), pytest.raises(OverloadedError, match="max_queue_seconds"):
        # The blocker holds every slot for far longer than the 0.5 s deadline.
        await asyncio.wait_for(bounded.generate(request(n=1, max_tokens=4, seed=4)), 30)
    assert bounded.engine.stats.expired == expired_before + 1
    assert log.usage.total_tokens == 0
    await blocker.aclose()
