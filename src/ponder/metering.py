"""The one record of what a request spent: a :class:`CallLog` of typed :class:`CallRecord`s.

Every leaf call (the embedded engine, a remote endpoint, a scripted test backend) records
itself when it ends, however it ends: finished, failed, or cancelled because the caller went
away. The gateway opens a log per request; the leaf backends find it through a context
variable, so every strategy, task group and composed backend under the request records into
the same log without being told about it. A reply's usage, the ledger's row and the usage of
a failed request are all sums of the log's records: there is no other channel.

The variable holds a per-request object and is only ever set for the duration of a request;
nothing global accumulates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, Protocol

from ponder.errors import CancelledSequenceError
from ponder.types import Usage

Outcome = Literal["ok", "error", "cancelled"]

_CURRENT: ContextVar[CallLog | None] = ContextVar("ponder_call_log", default=None)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One leaf call: which backend, what it spent, how long, and how it ended."""

    backend: str
    usage: Usage
    seconds: float
    outcome: Outcome


def outcome_of(error: BaseException | None) -> Outcome:
    if error is None:
        return "ok"
    if isinstance(error, asyncio.CancelledError | CancelledSequenceError):
        return "cancelled"
    return "error"


class LogWatcher(Protocol):
    """Told of a log's progress as it happens (the gateway's journal, which keeps what a
    request has spent durable while it runs, so a process killed mid-request loses none)."""

    def recorded(self, call: int, record: CallRecord) -> None:
        """Call number ``call`` ended with ``record``."""

    def progressed(self, call: int, backend: str, usage: Usage) -> None:
        """Call number ``call`` (to ``backend``), still running, has spent ``usage`` so far."""


class CallLog:
    """Every leaf call of one request, cancelled ones included."""

    def __init__(self) -> None:
        self.records: list[CallRecord] = []
        self.watcher: LogWatcher | None = None
        self._calls = 0
        # What routing decided on the way (a hop policy skipped, a fallback taken): kept
        # with the request's ledger row and trace.
        self.events: list[str] = []
        self._open = 0
        self._settled = asyncio.Event()
        self._settled.set()

    @property
    def usage(self) -> Usage:
        return Usage.sum([r.usage for r in self.records])

    def begin(self, backend: str) -> Charge:
        """A call starts; it must end with :meth:`Charge.end`."""
        self._open += 1
        self._settled.clear()
        self._calls += 1
        return Charge(self, backend, self._calls)

    def _end(self, record: CallRecord) -> None:
        self.records.append(record)
        self._open -= 1
        if self._open == 0:
            self._settled.set()

    async def settled(self) -> None:
        """Return once every begun call has ended. A cancelled engine sequence reports its
        exact count one decode step after the cancel; callers bound the wait with
        ``asyncio.timeout`` and take the usage as a lower bound if it expires."""
        await self._settled.wait()


class Charge:
    """One call's claim on a log; ending it twice records once."""

    __slots__ = ("_backend", "_log", "_number", "_started")

    def __init__(self, log: CallLog | None, backend: str, number: int = 0) -> None:
        self._log = log
        self._backend = backend
        self._number = number
        self._started = time.perf_counter()

    def progress(self, usage: Usage) -> None:
        """What the call has spent so far, for calls that learn it as they go (a stream
        whose endpoint reports usage on every chunk)."""
        log = self._log
        if log is not None and log.watcher is not None:
            log.watcher.progressed(self._number, self._backend, usage)

    def end(self, usage: Usage, error: BaseException | None = None) -> None:
        log, self._log = self._log, None
        if log is not None:
            seconds = time.perf_counter() - self._started
            record = CallRecord(self._backend, usage, seconds, outcome_of(error))
            log._end(record)
            if log.watcher is not None:
                log.watcher.recorded(self._number, record)


def begin_charge(backend: str) -> Charge:
    """Start a call against the current request's log (a no-op outside a recorded
    request). Must be called on the event loop, in the request's context."""
    log = _CURRENT.get()
    return log.begin(backend) if log is not None else Charge(None, backend)


def current_log() -> CallLog | None:
    """The log of the request this context belongs to (None outside one): for work that
    will start calls later, outside this context (a stream opened on first read)."""
    return _CURRENT.get()


def note(event: str) -> None:
    """Note a routing decision in the current request's log (a no-op outside a request)."""
    log = _CURRENT.get()
    if log is not None and len(log.events) < MAX_EVENTS:
        log.events.append(event)


# A request notes at most this many decisions (a long run's retries stay bounded).
MAX_EVENTS = 64


@contextmanager
def recording(log: CallLog | None = None) -> Iterator[CallLog]:
    """Record the backend calls started in this context, and in the tasks created in it: a
    task copies the context when it is created, so a stream's producer started inside the
    block keeps recording after the block ends."""
    log = log or CallLog()
    token = _CURRENT.set(log)
    try:
        yield log
    finally:
        _CURRENT.reset(token)
