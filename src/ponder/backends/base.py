"""The Backend protocol: the one interface every model, endpoint and strategy speaks.

Like an httpx transport, it is tiny: ``generate`` for a whole result, ``stream`` for
per-sequence deltas with per-sequence cancellation, and ``aclose``. Strategies implement it
too, so they compose.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ponder.types import (
    Choice,
    Completion,
    Delta,
    FinishReason,
    GenerationRequest,
    TokenLogprob,
    Usage,
)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do natively; strategies adapt to it."""

    logprobs: bool = True
    max_top_logprobs: int = 20
    prefill: bool = True  # can continue a partial assistant message
    json_schema: bool = False
    tools: bool = False
    # Cancelling one sequence actually stops its decoding (and its cost).
    cancel_frees_compute: bool = False


@runtime_checkable
class GenerationStream(Protocol):
    """Deltas of all ``n`` sequences of one request, interleaved, in production order."""

    def __aiter__(self) -> AsyncIterator[Delta]: ...

    def cancel(self, index: int) -> None:
        """Stop sequence ``index``; the others go on. Its last delta has finish_reason
        ``cancelled`` and its exact token count."""

    async def aclose(self) -> None:
        """Stop every sequence and release the request's resources."""

    @property
    def usage(self) -> Usage:
        """Exact usage so far; final once iteration has ended."""


@runtime_checkable
class Backend(Protocol):
    name: str
    capabilities: Capabilities

    async def generate(self, request: GenerationRequest) -> Completion: ...

    def stream(self, request: GenerationRequest) -> GenerationStream: ...

    async def aclose(self) -> None: ...


_END = object()


class QueueStream:
    """A GenerationStream fed by a producer through an asyncio queue.

    Producers call :meth:`push` / :meth:`finish` / :meth:`fail` from the event loop thread,
    or the ``*_threadsafe`` variants from any thread.
    """

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        on_cancel: Callable[[int], None] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._on_cancel = on_cancel
        self._on_close = on_close
        self._usage = Usage()
        self._done = False
        # Once a strategy has finished (see ponder.reasoning.runner): its trace, and per
        # choice the tokens of the shown answer and what the strategy decided.
        self.trace: object | None = None
        self.shown_tokens: tuple[int, ...] | None = None
        self.details: tuple[Mapping[str, Any], ...] = ()
        # The task feeding this stream, if any: held so it is not garbage-collected.
        self.producer: asyncio.Task[None] | None = None

    # -- producer side -------------------------------------------------------------------
    def push(self, delta: Delta) -> None:
        self._queue.put_nowait(delta)

    def finish(self, usage: Usage) -> None:
        self._usage = usage
        self._queue.put_nowait(_END)

    def fail(self, error: BaseException) -> None:
        self._queue.put_nowait(error)

    def set_usage(self, usage: Usage) -> None:
        self._usage = usage

    def push_threadsafe(self, delta: Delta) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, delta)

    def finish_threadsafe(self, usage: Usage) -> None:
        self._loop.call_soon_threadsafe(self.finish, usage)

    def fail_threadsafe(self, error: BaseException) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, error)

    # -- consumer side -------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[Delta]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Delta]:
        try:
            while True:
                item = await self._queue.get()
                if item is _END:
                    self._done = True
                    return
                if isinstance(item, BaseException):
                    self._done = True
                    raise item
                assert isinstance(item, Delta)
                yield item
        finally:
            if not self._done:
                await self.aclose()

    def cancel(self, index: int) -> None:
        if self._on_cancel is not None and not self._done:
            self._on_cancel(index)

    async def aclose(self) -> None:
        if not self._done:
            self._done = True
            if self._on_close is not None:
                self._on_close()

    @property
    def usage(self) -> Usage:
        return self._usage


def merge_fragments(fragments: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Whole tool calls from streamed fragments, by ``index``, as OpenAI clients assemble
    them: ``function.arguments`` pieces are joined in order; ``id``, ``type`` and ``name``
    come from the first fragment that has them. A fragment without an ``index`` is numbered
    by its place in ``fragments``."""
    calls: dict[int, dict[str, Any]] = {}
    for position, fragment in enumerate(fragments):
        given = fragment.get("index")
        index = position if given is None else int(given)
        call = calls.setdefault(index, {"id": "", "type": "", "function": {}})
        for key in ("id", "type"):
            if fragment.get(key) and not call[key]:
                call[key] = fragment[key]
        function = fragment.get("function") or {}
        target = call["function"]
        if function.get("name") and "name" not in target:
            target["name"] = function["name"]
        target["arguments"] = target.get("arguments", "") + (function.get("arguments") or "")
    return [{**calls[i], "type": calls[i]["type"] or "function"} for i in sorted(calls)]


class ChoiceBuilder:
    """Accumulates deltas into final choices. Tool calls may come whole on one delta or as
    streamed fragments over many (a remote stream's, the embedded engine's): each choice
    keeps every fragment, numbered by its ``index`` (a whole call without one, by its place
    in its delta), and they are merged into whole calls at the end."""

    def __init__(self, n: int) -> None:
        self.text = [""] * n
        self.reasoning = [""] * n
        self.logprobs: list[list[TokenLogprob]] = [[] for _ in range(n)]
        self.finish: list[FinishReason | None] = [None] * n
        self.tokens = [0] * n
        self._fragments: list[list[Mapping[str, Any]]] = [[] for _ in range(n)]

    def add(self, delta: Delta) -> None:
        i = delta.index
        self.text[i] += delta.text
        self.reasoning[i] += delta.reasoning
        self.logprobs[i].extend(delta.logprobs)
        for place, fragment in enumerate(delta.tool_calls or ()):
            index = fragment.get("index")
            self._fragments[i].append({**fragment, "index": place if index is None else index})
        if delta.finish_reason is not None:
            self.finish[i] = delta.finish_reason
        if delta.completion_tokens is not None:
            self.tokens[i] = delta.completion_tokens

    def tool_calls(self, index: int) -> tuple[dict[str, Any], ...] | None:
        """Sequence ``index``'s tool calls so far, whole; None when it has made none."""
        fragments = self._fragments[index]
        return tuple(merge_fragments(fragments)) if fragments else None

    def choices(self, with_logprobs: bool) -> tuple[Choice, ...]:
        return tuple(
            Choice(
                index=i,
                text=self.text[i],
                finish_reason=self.finish[i] or "stop",
                completion_tokens=self.tokens[i],
                reasoning=self.reasoning[i] or None,
                logprobs=tuple(self.logprobs[i]) if with_logprobs else None,
                tool_calls=self.tool_calls(i),
            )
            for i in range(len(self.text))
        )


async def collect(stream: GenerationStream, request: GenerationRequest, model: str) -> Completion:
    """Drain a stream into a Completion."""
    builder = ChoiceBuilder(request.n)
    async for delta in stream:
        builder.add(delta)
    return Completion(
        choices=builder.choices(request.sampling.logprobs),
        usage=stream.usage,
        model=model,
    )
