"""A request's spending cap, enforced on every call it makes.

The gateway reserves a request's worst case in the budget before it runs; this Backend
wrapper makes that worst case true. Before each call it checks that the call's own worst
case (its prompt, bounded from above by its UTF-8 length, plus ``n`` x ``max_tokens``) fits
what is left of the reservation, and refuses the call with :class:`BudgetExceededError`
otherwise. So a request can never spend more than it reserved, whatever strategy runs, and a
budget can never be overspent by requests in flight.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ponder.backends.base import Backend, Capabilities, GenerationStream
from ponder.errors import BudgetExceededError
from ponder.metering import CallLog
from ponder.types import Completion, Delta, GenerationRequest, Usage


def worst_case(request: GenerationRequest, default_max_tokens: int) -> int:
    """The most tokens one call can spend."""
    max_tokens = request.sampling.max_tokens or default_max_tokens
    return request.prompt_token_bound() + request.n * max_tokens


class SpendingCap:
    """What one request may spend, in tokens, shared by every call it makes: what finished
    calls spent (the request's call log) plus the worst case of calls still running must
    stay within it."""

    def __init__(self, tokens: int, default_max_tokens: int, log: CallLog) -> None:
        self.tokens = tokens
        self.default_max_tokens = default_max_tokens
        self.log = log
        self.in_flight = 0

    def admit(self, request: GenerationRequest) -> int:
        """Let a call start, or refuse it; returns what it holds until :meth:`release`."""
        need = worst_case(request, self.default_max_tokens)
        left = self.tokens - self.log.usage.total_tokens - self.in_flight
        if need > left:
            raise BudgetExceededError(
                f"this call could spend {need} tokens; the request's reservation has {left} "
                f"left of {self.tokens}",
                param="max_tokens",
            )
        self.in_flight += need
        return need

    def release(self, held: int) -> None:
        self.in_flight -= held


class GuardedBackend:
    """A Backend whose every call is admitted against one request's :class:`SpendingCap`."""

    def __init__(self, inner: Backend, cap: SpendingCap) -> None:
        self.inner = inner
        self.cap = cap
        self.name = inner.name
        self.capabilities: Capabilities = inner.capabilities

    async def generate(self, request: GenerationRequest) -> Completion:
        held = self.cap.admit(request)
        try:
            return await self.inner.generate(request)
        finally:
            self.cap.release(held)

    def stream(self, request: GenerationRequest) -> GenerationStream:
        held = self.cap.admit(request)
        try:
            inner = self.inner.stream(request)
        except BaseException:
            self.cap.release(held)
            raise
        return _GuardedStream(inner, self.cap, held)

    async def aclose(self) -> None:
        """The inner backend belongs to the registry."""


class _GuardedStream:
    """Holds its call's worst case until the stream ends, however it ends."""

    def __init__(self, inner: GenerationStream, cap: SpendingCap, held: int) -> None:
        self.inner = inner
        self._cap = cap
        self._held = held

    def __aiter__(self) -> AsyncIterator[Delta]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Delta]:
        try:
            async for delta in self.inner:
                yield delta
        finally:
            self._release()

    def cancel(self, index: int) -> None:
        self.inner.cancel(index)

    async def aclose(self) -> None:
        await self.inner.aclose()
        self._release()

    @property
    def usage(self) -> Usage:
        return self.inner.usage

    def _release(self) -> None:
        held, self._held = self._held, 0
        self._cap.release(held)
