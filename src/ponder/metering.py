"""Usage metering that survives cancellation.

A reply's usage normally travels back with the reply. When the caller goes away mid-request
(an HTTP client disconnects, a task is cancelled) there is no reply, but the tokens were still
spent. The server opens a :class:`UsageMeter` for each request; the leaf backends (the
embedded engine, a remote endpoint) charge it when a call ends, however it ends. The meter is
found through a context variable, so every strategy, task group and composed backend under the
request charges the same meter without being told about it.

The variable holds a per-request object and is only ever set for the duration of a request;
nothing global accumulates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ponder.types import Usage

_CURRENT: ContextVar[UsageMeter | None] = ContextVar("ponder_usage_meter", default=None)


class UsageMeter:
    """Sums the usage of every backend call of one request, including cancelled ones."""

    def __init__(self) -> None:
        self.usage = Usage()
        self._open = 0
        self._settled = asyncio.Event()
        self._settled.set()

    def begin(self) -> Charge:
        """A call starts; it must end with :meth:`Charge.end`."""
        self._open += 1
        self._settled.clear()
        return Charge(self)

    def _end(self, usage: Usage) -> None:
        self.usage = self.usage + usage
        self._open -= 1
        if self._open == 0:
            self._settled.set()

    async def settled(self) -> None:
        """Return once every begun call has ended. A cancelled engine sequence reports its
        exact count one decode step after the cancel; callers bound the wait with
        ``asyncio.timeout`` and take the usage as a lower bound if it expires."""
        await self._settled.wait()


class Charge:
    """One call's claim on a meter; ending it twice charges once."""

    __slots__ = ("_meter",)

    def __init__(self, meter: UsageMeter | None) -> None:
        self._meter = meter

    def end(self, usage: Usage) -> None:
        meter, self._meter = self._meter, None
        if meter is not None:
            meter._end(usage)


def begin_charge() -> Charge:
    """Start a call against the current request's meter (a no-op outside a metered
    request). Must be called on the event loop, in the request's context."""
    meter = _CURRENT.get()
    return meter.begin() if meter is not None else Charge(None)


@contextmanager
def metered(meter: UsageMeter | None = None) -> Iterator[UsageMeter]:
    """Meter the backend calls started in this context, and in the tasks created in it: a
    task copies the context when it is created, so a stream's producer started inside the
    block keeps charging after the block ends."""
    meter = meter or UsageMeter()
    token = _CURRENT.set(meter)
    try:
        yield meter
    finally:
        _CURRENT.reset(token)
