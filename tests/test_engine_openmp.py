"""An idle engine hands back its OpenMP worker threads (see ponder.engine.openmp).

While a second thread's pool lives, libgomp spins less at each barrier and every decode in
the process slows down, so the engine's worker thread frees its pool whenever it has nothing
to decode. Seen here as threads: the worker that appears while the engine decodes is gone
once it is idle.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from ponder.backends.embedded import EmbeddedBackend
from ponder.engine.openmp import worker_releaser
from ponder.types import GenerationRequest, Message, SamplingParams


def threads() -> set[int]:
    return {int(tid) for tid in os.listdir("/proc/self/task")}


async def settled() -> set[int]:
    """The process's threads once they stop changing (the engine frees its pool on its own
    thread, a moment after a request ends)."""
    seen = threads()
    for _ in range(100):
        await asyncio.sleep(0.05)
        now = threads()
        if now == seen:
            return now
        seen = now
    return seen


async def test_the_engine_frees_its_openmp_workers_when_idle(
    tiny_backend: EmbeddedBackend,
) -> None:
    if worker_releaser() is None:
        pytest.skip("llama.cpp was built without OpenMP here: there is no pool to free")
    if (tiny_backend.model.config.n_threads or os.cpu_count() or 1) < 2:
        pytest.skip("one llama.cpp thread runs no parallel region: there is no pool to free")
    request = GenerationRequest(
        messages=(Message("user", "Count from 1 to 50."),),
        sampling=SamplingParams(max_tokens=48, temperature=0.0, ignore_eos=True),
    )
    await tiny_backend.generate(request)  # the engine has decoded, then gone idle
    idle = await settled()
    during: set[int] = set()
    async for delta in tiny_backend.stream(request):
        if delta.text and not during:
            during = threads()  # mid-decode
    spawned = during - idle
    assert spawned, "no OpenMP worker appeared while the engine decoded"
    for _ in range(100):
        if not spawned & threads():
            break
        await asyncio.sleep(0.05)
    assert not spawned & threads(), "the idle engine kept its OpenMP workers"
