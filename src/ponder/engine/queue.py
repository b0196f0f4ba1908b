"""The jobs waiting for the engine, oldest first, and the bounds that keep that wait short.

A queue without bounds turns overload into waiting past every client's timeout. So at most
``max_waiting`` jobs wait at once (past that a call is refused as it is submitted), and a
job that has waited ``max_queue_seconds`` without starting is taken out and refused. Either
way the caller gets :class:`~ponder.errors.OverloadedError` (503 with ``Retry-After``) at
once, rather than a reply after it has given up. Which waiting jobs start is
:mod:`ponder.engine.admission`'s business; this module only holds them.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator

from ponder.engine.admission import overdue
from ponder.engine.jobs import Job
from ponder.errors import OverloadedError


class WaitingJobs:
    """Jobs waiting for sequence slots and KV cells, in submission order. Not thread-safe:
    the engine holds its lock around every use."""

    def __init__(self) -> None:
        self._jobs: collections.deque[Job] = collections.deque()

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[Job]:
        return iter(self._jobs)

    def __getitem__(self, index: int) -> Job:
        return self._jobs[index]

    def push(self, job: Job, *, limit: int, engine: str, retry_after: float) -> None:
        """Queue ``job``, or refuse it when ``limit`` jobs already wait."""
        if len(self._jobs) >= limit:
            raise OverloadedError(
                f"the engine for {engine} has {len(self._jobs)} requests waiting, its limit "
                "(engine.max_waiting); try again shortly",
                retry_after=retry_after,
            )
        self._jobs.append(job)

    def take(self, indices: Iterable[int]) -> list[Job]:
        """Remove and return the jobs at ``indices`` (in the order given)."""
        order = list(indices)
        taken = [self._jobs[i] for i in order]
        gone = set(order)
        self._jobs = collections.deque(j for i, j in enumerate(self._jobs) if i not in gone)
        return taken

    def expire(self, now: float, limit: float) -> list[tuple[Job, float]]:
        """Remove and return the jobs that have waited past ``limit`` seconds, with how long."""
        indices = overdue([job.queued_at for job in self._jobs], now, limit)
        return [(job, now - job.queued_at) for job in self.take(indices)]

    def find(self, job_id: int) -> Job | None:
        return next((job for job in self._jobs if job.id == job_id), None)

    def remove(self, job: Job) -> None:
        self._jobs.remove(job)

    def drain(self) -> list[Job]:
        """Every waiting job, the queue left empty (the engine is closing)."""
        jobs = list(self._jobs)
        self._jobs.clear()
        return jobs
