"""What the gateway hands back: a :class:`Reply`, or a :class:`ReplyStream` that becomes one.

A reply's usage is the sum of its :class:`~ponder.metering.CallRecord`s, so what a client
is told, what the ledger keeps and what a failed request cost come from one place. The only
view on top: completion tokens a strategy did not show as the answer count as reasoning.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from ponder.backends.base import ChoiceBuilder, GenerationStream, QueueStream
from ponder.errors import CancelledSequenceError, PonderError
from ponder.gateway.deadline import bounded
from ponder.metering import CallLog, CallRecord
from ponder.protocol.chat import PonderInfo
from ponder.reasoning.selection import Selection
from ponder.reasoning.trace import Trace
from ponder.types import Choice, Completion, Delta, GenerationRequest, Usage

if TYPE_CHECKING:
    from ponder.gateway.service import Plan

# How long a failed or abandoned request waits for its cancelled calls to report their exact
# usage (an engine sequence reports at its next decode step).
SETTLE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Reply:
    choices: tuple[Choice, ...]
    usage: Usage  # the records' sum, hidden strategy tokens counted as reasoning
    model: str  # the canonical model it ran on
    strategy: str | None  # what ran (None: the model alone)
    trace: Trace | None
    details: tuple[Mapping[str, Any], ...]  # per choice: what the strategy decided
    records: tuple[CallRecord, ...]
    seconds: float

    @property
    def text(self) -> str:
        return self.choices[0].text if self.choices else ""

    @property
    def spent(self) -> Usage:
        return self.usage

    @staticmethod
    def build(
        completion: Completion, log: CallLog, model: str, selection: Selection, started: float
    ) -> Reply:
        shown = [c.shown_tokens for c in completion.choices]
        trace = completion.trace if isinstance(completion.trace, Trace) else None
        return Reply(
            choices=completion.choices,
            usage=reply_usage(log, shown),
            model=model,
            strategy=selection.spec.describe() if selection.spec is not None else None,
            trace=trace,
            details=tuple(c.details for c in completion.choices if c.details is not None),
            records=tuple(log.records),
            seconds=time.perf_counter() - started,
        )

    def info(self) -> PonderInfo | None:
        """The reply's extension block on the wire (chat and Responses alike): what ran, what
        it decided per choice, and where its trace is; None when no strategy ran."""
        if self.strategy is None:
            return None
        return PonderInfo(
            trace_id=self.trace.id if self.trace is not None else None,
            strategy=self.strategy,
            calls=self.usage.calls,
            details=[dict(d) for d in self.details] or None,
        )


def reply_usage(log: CallLog, shown: list[int | None] | None) -> Usage:
    """The records' sum. Where a strategy answered, only each choice's shown tokens are
    answer; every other completion token it spent counts as reasoning."""
    total = log.usage
    if shown is None or all(s is None for s in shown):
        return total
    answer = sum(s for s in shown if s is not None)
    hidden = max(total.completion_tokens - answer, 0)
    return Usage(
        prompt_tokens=total.prompt_tokens,
        completion_tokens=total.completion_tokens,
        reasoning_tokens=max(hidden, total.reasoning_tokens),
        cached_prompt_tokens=total.cached_prompt_tokens,
        calls=total.calls,
    )


async def spent_on_failure(log: CallLog, error: BaseException) -> None:
    """Let cancelled calls report, then put what the request spent on its error."""
    with anyio.CancelScope(shield=True), suppress(TimeoutError):
        async with asyncio.timeout(SETTLE_SECONDS):
            await log.settled()
    if isinstance(error, PonderError):
        error.usage = log.usage


class ReplyStream:
    """A streamed reply: iterate the deltas; when iteration ends (or the stream is closed
    early, or fails) the usage is recorded from the log and :attr:`reply` is final."""

    def __init__(
        self,
        inner: GenerationStream,
        request: GenerationRequest,
        plan: Plan,
        on_finish: Callable[[ReplyStream, BaseException | None], Awaitable[None]],
    ) -> None:
        self.inner = inner
        self.request = request
        self.log = plan.log
        self.plan = plan
        self.started = plan.started
        self._on_finish = on_finish
        self._builder = ChoiceBuilder(request.n)
        self._finished = False
        self.reply = self._snapshot()

    def __aiter__(self) -> AsyncIterator[Delta]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Delta]:
        error: BaseException | None = GeneratorExit()  # left early, unless it ends or fails
        try:
            deadline = self.plan.deadline
            deltas = self.inner if deadline is None else bounded(aiter(self.inner), deadline)
            async for delta in deltas:
                self._builder.add(delta)
                yield delta
            error = None
        except BaseException as exc:
            error = exc
            raise
        finally:
            await self._finish(error)

    async def aclose(self) -> None:
        await self._finish(CancelledSequenceError("the stream was closed before its end"))

    async def _finish(self, error: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        # A client that disconnects cancels this stream (Starlette cancels through anyio,
        # which re-raises at every await): the shield lets the cancelled calls report what
        # they spent, and the ledger be written, before the cancellation goes on.
        with anyio.CancelScope(shield=True):
            await self.inner.aclose()
            if error is not None:
                with suppress(TimeoutError):
                    async with asyncio.timeout(SETTLE_SECONDS):
                        await self.log.settled()
            self.reply = self._snapshot()
            await self._on_finish(self, error)

    def _snapshot(self) -> Reply:
        shown = self.inner.shown_tokens if isinstance(self.inner, QueueStream) else None
        trace = self.inner.trace if isinstance(self.inner, QueueStream) else None
        details = self.inner.details if isinstance(self.inner, QueueStream) else ()
        selection = self.plan.selection
        return Reply(
            choices=self._builder.choices(self.request.sampling.logprobs),
            usage=reply_usage(self.log, list(shown) if shown is not None else None),
            model=self.plan.model,
            strategy=selection.spec.describe() if selection.spec is not None else None,
            trace=trace if isinstance(trace, Trace) else None,
            details=tuple(details),
            records=tuple(self.log.records),
            seconds=time.perf_counter() - self.started,
        )
