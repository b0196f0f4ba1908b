"""Traces: the tree of every inner call a strategy made, with what came out of it.

A :class:`TracingBackend` wraps the backend a strategy uses and records each call into a
:class:`Trace`, so usage is summed from the calls themselves and no strategy can forget to
count one. Strategies add their own annotations (extracted answers, confidences, votes)
with :meth:`Trace.note`. A strategy used as a backend by another strategy appears as a
child trace of the call that ran it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ponder.backends.base import Backend, Capabilities, ChoiceBuilder, GenerationStream
from ponder.types import Completion, Delta, GenerationRequest, Usage


@dataclass(slots=True)
class TraceCall:
    id: str
    label: str
    messages: list[dict[str, Any]]
    prefill: str
    n: int
    sampling: dict[str, Any]
    outputs: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    started: float = 0.0
    seconds: float = 0.0
    error: str | None = None
    annotations: dict[str, Any] = field(default_factory=dict)
    child: Trace | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "messages": self.messages,
            "prefill": self.prefill,
            "n": self.n,
            "sampling": self.sampling,
            "outputs": self.outputs,
            "usage": _usage_dict(self.usage),
            "started": self.started,
            "seconds": round(self.seconds, 4),
            "error": self.error,
            "annotations": self.annotations,
            "child": self.child.as_dict() if self.child else None,
        }


@dataclass(slots=True)
class Trace:
    strategy: str
    params: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: f"trace-{uuid.uuid4().hex}")
    calls: list[TraceCall] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    seconds: float = 0.0

    @property
    def usage(self) -> Usage:
        return Usage.sum([c.usage for c in self.calls])

    def note(self, kind: str, **data: Any) -> None:
        self.notes.append({"kind": kind, "at": round(time.time() - self.started, 4), **data})

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "strategy": self.strategy,
            "params": self.params,
            "started": self.started,
            "seconds": round(self.seconds, 4),
            "usage": _usage_dict(self.usage),
            "calls": [c.as_dict() for c in self.calls],
            "notes": self.notes,
        }


def _usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "total_tokens": usage.total_tokens,
        "calls": usage.calls,
    }


class TracingBackend:
    """A Backend that records every call it forwards into a trace."""

    def __init__(self, inner: Backend, trace: Trace) -> None:
        self.inner = inner
        self.trace = trace
        self.name = inner.name
        self.capabilities: Capabilities = inner.capabilities

    def _start(self, request: GenerationRequest, label: str) -> TraceCall:
        s = request.sampling
        call = TraceCall(
            id=f"call-{len(self.trace.calls) + 1}",
            label=label,
            messages=[m.as_dict() for m in request.messages],
            prefill=request.prefill,
            n=request.n,
            sampling={
                "temperature": s.temperature,
                "top_p": s.top_p,
                "top_k": s.top_k,
                "max_tokens": s.max_tokens,
                "seed": s.seed,
                "stop": list(s.stop),
            },
            started=time.time(),
        )
        self.trace.calls.append(call)
        return call

    async def generate(self, request: GenerationRequest, label: str = "generate") -> Completion:
        completion, _ = await self.generate_recorded(request, label)
        return completion

    async def generate_recorded(
        self, request: GenerationRequest, label: str = "generate"
    ) -> tuple[Completion, TraceCall]:
        """Forward a call and return its trace record too, for the caller's annotations
        (the trace's last call is another one when calls run concurrently)."""
        call = self._start(request, label)
        started = time.perf_counter()
        try:
            completion = await self.inner.generate(request)
        except Exception as exc:
            call.error = str(exc)
            usage = getattr(exc, "usage", None)
            if isinstance(usage, Usage):
                call.usage = usage
            raise
        finally:
            call.seconds = time.perf_counter() - started
        call.usage = completion.usage
        call.outputs = [
            {
                "index": c.index,
                "text": c.text,
                "reasoning": c.reasoning,
                "finish_reason": c.finish_reason,
                "completion_tokens": c.completion_tokens,
            }
            for c in completion.choices
        ]
        child = getattr(completion, "trace", None)
        if isinstance(child, Trace):
            call.child = child
        return completion, call

    def stream(self, request: GenerationRequest, label: str = "stream") -> RecordedStream:
        """Forward a stream; its call is recorded (outputs, exact usage) when it ends,
        however it ends."""
        call = self._start(request, label)
        return RecordedStream(self.inner.stream(request), call, request.n)

    async def aclose(self) -> None:
        await self.inner.aclose()


class RecordedStream:
    """A stream whose trace record is filled in when it ends: what each sequence said, how
    it finished, and the stream's exact usage (cancelled sequences included)."""

    def __init__(self, inner: GenerationStream, call: TraceCall, n: int) -> None:
        self.inner = inner
        self.call = call
        self._builder = ChoiceBuilder(n)
        self._started = time.perf_counter()
        self._recorded = False

    def __aiter__(self) -> AsyncIterator[Delta]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Delta]:
        try:
            async for delta in self.inner:
                self._builder.add(delta)
                yield delta
        except Exception as exc:
            self.call.error = str(exc)
            raise
        finally:
            self._record()

    def cancel(self, index: int) -> None:
        self.inner.cancel(index)

    async def aclose(self) -> None:
        await self.inner.aclose()
        self._record()

    @property
    def usage(self) -> Usage:
        return self.inner.usage

    def _record(self) -> None:
        if self._recorded:
            return
        self._recorded = True
        self.call.seconds = time.perf_counter() - self._started
        self.call.usage = self.inner.usage
        self.call.outputs = [
            {
                "index": c.index,
                "text": c.text,
                "reasoning": c.reasoning,
                "finish_reason": c.finish_reason,
                "completion_tokens": c.completion_tokens,
            }
            for c in self._builder.choices(with_logprobs=False)
        ]
        child = getattr(self.inner, "trace", None)
        if isinstance(child, Trace):
            self.call.child = child
