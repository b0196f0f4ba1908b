"""A request's deadline: the server's ``request_timeout`` or the shorter one its client asked
for, enforced where the gateway awaits the request's work.

The deadline cancels the work, and cancellation is the path every backend already meters
exactly (a cancelled engine sequence or endpoint call records what it spent), so a request
that times out is recorded like one whose client left, and its caller gets
:class:`RequestTimeoutError` (504, or an error event once a stream has begun).

A stream is bounded item by item: each wait for the next delta or chunk ends at the
deadline, and nothing is awaited under the timeout while the consumer holds the item (a
timeout spanning a ``yield`` would cancel whatever the consumer is doing at the time).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from ponder.errors import InvalidRequestError, RequestTimeoutError

T = TypeVar("T")

# The request header a client sets its timeout with, in seconds.
TIMEOUT_HEADER = "x-ponder-timeout"
# The OpenAI SDKs send their own client timeout (seconds) on every request: past it the
# client has given up, so work past it is done for nobody.
SDK_TIMEOUT_HEADER = "x-stainless-timeout"


def request_timeout(headers: Mapping[str, str], server: float | None) -> float | None:
    """The timeout a request runs under: the shortest of the server's, the client's
    ``X-Ponder-Timeout`` (a bad value is a 400) and the OpenAI SDK's own timeout."""
    asked, sdk = headers.get(TIMEOUT_HEADER), headers.get(SDK_TIMEOUT_HEADER)
    candidates = [
        server,
        _seconds(asked, strict=True) if asked is not None else None,
        _seconds(sdk, strict=False) if sdk is not None else None,
    ]
    given = [c for c in candidates if c is not None]
    return min(given) if given else None


def _seconds(value: str, *, strict: bool) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if math.isfinite(seconds) and seconds > 0:
        return seconds
    if strict:
        raise InvalidRequestError(
            f"X-Ponder-Timeout must be a positive number of seconds, got {value[:40]!r}",
            param="x-ponder-timeout",
        )
    return None


@dataclass(frozen=True, slots=True)
class Deadline:
    """When a request must end (the event loop's time), and the timeout it came from."""

    at: float
    seconds: float

    @classmethod
    def after(cls, seconds: float | None) -> Deadline | None:
        """The deadline of a request that starts now with ``seconds`` (None: no bound)."""
        if seconds is None:
            return None
        return cls(asyncio.get_running_loop().time() + seconds, seconds)

    def expired(self) -> RequestTimeoutError:
        return RequestTimeoutError(
            f"the request ran past its timeout of {self.seconds:g} s and was stopped"
        )


async def within(deadline: Deadline | None, work: Awaitable[T]) -> T:
    """``await work``, cancelled at ``deadline`` (None: no bound)."""
    if deadline is None:
        return await work
    bound = asyncio.timeout_at(deadline.at)
    try:
        async with bound:
            return await work
    except TimeoutError:
        if not bound.expired():
            raise  # the work's own timeout (an endpoint's), not the request's deadline
        raise deadline.expired() from None


async def bounded(items: AsyncIterator[T], deadline: Deadline | None) -> AsyncIterator[T]:
    """``items``, each wait for the next ending at ``deadline``."""
    if deadline is None:
        async for item in items:
            yield item
        return
    while True:
        bound = asyncio.timeout_at(deadline.at)
        try:
            async with bound:
                item = await anext(items)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if not bound.expired():
                raise
            raise deadline.expired() from None
        yield item
