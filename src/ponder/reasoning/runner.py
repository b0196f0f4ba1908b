"""Running strategies, and a strategy dressed as a Backend so that strategies compose.

``StrategyBackend(spec, inner)`` is a Backend: ``generate`` runs the strategy (once per
requested choice) over ``inner`` and returns its final text as the choice, with exact usage
in which every completion token not shown as the answer counts as reasoning; ``stream``
sends the strategy's progress as reasoning deltas while it works, then the answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ponder.backends.base import Backend, Capabilities, QueueStream
from ponder.errors import InvalidRequestError, first_error
from ponder.reasoning.base import (
    RunContext,
    Services,
    Strategy,
    StrategyParams,
    StrategyResult,
    gather,
)
from ponder.reasoning.registry import StrategyRegistry
from ponder.reasoning.trace import Trace, TracingBackend
from ponder.types import Choice, Completion, Delta, GenerationRequest, Usage

# How deep strategies may run over one another: each level multiplies the calls.
MAX_NESTING = 4


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """A strategy, its validated parameters, and optionally the strategy it runs over."""

    name: str
    params: StrategyParams
    over: StrategySpec | None = None
    # The class that runs it (None: the built-in of that name).
    cls: type[Strategy] | None = None

    @staticmethod
    def parse(
        raw: Mapping[str, Any], registry: StrategyRegistry | None = None, *, depth: int = 0
    ) -> StrategySpec:
        """From the ``ponder`` body field: {"strategy": name, <params>..., "over": {...}}."""
        if depth >= MAX_NESTING:
            raise InvalidRequestError(
                f"strategies nest at most {MAX_NESTING} deep ('over')", param="ponder.over"
            )
        registry = registry or StrategyRegistry()
        data = dict(raw)
        name = data.pop("strategy", None)
        if not isinstance(name, str):
            raise InvalidRequestError(
                "ponder.strategy must name a strategy", param="ponder.strategy"
            )
        over_raw = data.pop("over", None)
        over = (
            StrategySpec.parse(over_raw, registry, depth=depth + 1)
            if isinstance(over_raw, Mapping)
            else None
        )
        return StrategySpec(
            name=name,
            params=registry.parse_params(name, data),
            over=over,
            cls=registry.get(name),
        )

    def strategy(self) -> Strategy:
        return (self.cls or StrategyRegistry().get(self.name))()

    def describe(self) -> str:
        return self.name if self.over is None else f"{self.name} over {self.over.describe()}"


async def run_strategy(
    spec: StrategySpec,
    backend: Backend,
    request: GenerationRequest,
    *,
    on_progress: Callable[[str], None] | None = None,
    backends: Mapping[str, Backend] | None = None,
    services: Services | None = None,
) -> StrategyResult:
    """Run one strategy once. On failure the error carries the usage spent so far."""
    inner: Backend = (
        backend
        if spec.over is None
        else StrategyBackend(spec.over, backend, backends=backends, services=services)
    )
    trace = Trace(strategy=spec.describe(), params=spec.params.model_dump())
    ctx = RunContext(
        backend=TracingBackend(inner, trace),
        trace=trace,
        on_progress=on_progress,
        backends={name: TracingBackend(b, trace) for name, b in (backends or {}).items()},
        services=services or Services(),
    )
    strategy = spec.strategy()
    started = time.perf_counter()
    try:
        result = await strategy.run(ctx, request, spec.params)
    finally:
        trace.seconds = time.perf_counter() - started
    return result


@dataclass(slots=True)
class _Runs:
    results: list[StrategyResult | None] = field(default_factory=list)


class StrategyBackend:
    """A strategy over an inner backend, itself a Backend."""

    def __init__(
        self,
        spec: StrategySpec,
        inner: Backend,
        *,
        backends: Mapping[str, Backend] | None = None,
        services: Services | None = None,
    ) -> None:
        self.spec = spec
        self.inner = inner
        self.backends = backends
        self.services = services
        self.name = f"{spec.describe()}@{inner.name}"
        self.capabilities = Capabilities(
            logprobs=False,
            prefill=False,
            json_schema=False,
            tools=False,
            cancel_frees_compute=inner.capabilities.cancel_frees_compute,
        )

    async def aclose(self) -> None:
        """The inner backend belongs to whoever built it."""

    async def generate(self, request: GenerationRequest) -> Completion:
        logs: list[list[str]] = [[] for _ in range(request.n)]
        results = await gather(
            *(
                run_strategy(
                    self.spec,
                    self.inner,
                    _nth(request, i),
                    on_progress=logs[i].append,
                    backends=self.backends,
                    services=self.services,
                )
                for i in range(request.n)
            )
        )
        return _completion(results, ["".join(lines) for lines in logs], self.spec, self.name)

    def stream(self, request: GenerationRequest) -> QueueStream:
        loop = asyncio.get_running_loop()
        tasks: dict[int, asyncio.Task[None]] = {}
        runs = _Runs(results=[None] * request.n)

        def cancel(index: int) -> None:
            if index in tasks:
                tasks[index].cancel()

        def close() -> None:
            for task in tasks.values():
                task.cancel()

        stream = QueueStream(loop=loop, on_cancel=cancel, on_close=close)

        async def one(i: int) -> None:
            def progress(line: str) -> None:
                stream.push(Delta(index=i, reasoning=line))

            try:
                result = await run_strategy(
                    self.spec,
                    self.inner,
                    _nth(request, i),
                    on_progress=progress,
                    backends=self.backends,
                    services=self.services,
                )
            except asyncio.CancelledError:
                stream.push(Delta(index=i, finish_reason="cancelled", completion_tokens=0))
                return
            runs.results[i] = result
            stream.set_usage(Usage.sum([r.hidden_usage for r in runs.results if r is not None]))
            stream.push(
                Delta(
                    index=i,
                    text=result.text,
                    finish_reason="stop",
                    completion_tokens=result.usage.completion_tokens,
                )
            )

        async def run_all() -> None:
            try:
                async with asyncio.TaskGroup() as group:
                    for i in range(request.n):
                        tasks[i] = group.create_task(one(i))
            except BaseExceptionGroup as errors:
                stream.fail(first_error(errors))
                return
            done = [r for r in runs.results if r is not None]
            stream.trace = _merge_traces(done, self.spec)
            stream.shown_tokens = tuple(r.shown_tokens for r in done)
            stream.details = tuple(r.details for r in done)
            stream.finish(Usage.sum([r.hidden_usage for r in done]))

        stream.producer = loop.create_task(run_all())
        return stream


def _nth(request: GenerationRequest, i: int) -> GenerationRequest:
    """Run ``i`` of an ``n``-choice request: one choice, its own seed."""
    seed = request.sampling.seed
    return request.replace(
        n=1, sampling=request.sampling.replace(seed=None if seed is None else seed + 1000 * i)
    )


def _merge_traces(results: list[StrategyResult], spec: StrategySpec) -> Trace:
    if len(results) == 1:
        return results[0].trace
    merged = Trace(strategy=spec.describe(), params=spec.params.model_dump())
    for i, result in enumerate(results):
        merged.calls.extend(result.trace.calls)
        merged.notes.extend({"run": i, **note} for note in result.trace.notes)
        merged.seconds = max(merged.seconds, result.trace.seconds)
    return merged


def _completion(
    results: list[StrategyResult], logs: list[str], spec: StrategySpec, name: str
) -> Completion:
    choices = tuple(
        Choice(
            index=i,
            text=r.text,
            finish_reason="stop",
            completion_tokens=r.usage.completion_tokens,
            reasoning=logs[i] or None,
            shown_tokens=r.shown_tokens,
            details=r.details,
        )
        for i, r in enumerate(results)
    )
    return Completion(
        choices=choices,
        usage=Usage.sum([r.hidden_usage for r in results]),
        model=name,
        trace=_merge_traces(results, spec),
    )
