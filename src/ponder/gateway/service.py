"""The Gateway: the one place a chat request is admitted, resolved, run, metered and
recorded. The HTTP server, ``ponder ask``, the bench and the Python library all call it.

A request goes through five steps:

1. **admit**: policy on the named model (keys, budgets and rate limits plug in here);
2. **select**: the strategy, from the request (``ponder``, ``ponder/<strategy>/<model>``),
   its ``reasoning_effort``, or the configured default;
3. **resolve**: the request's model and every model the strategy declares it will call
   (``Strategy.models``), through the same registry and policy;
4. **run**: the strategy over the backend, or the backend alone, under one :class:`CallLog`;
5. **record**: usage from the log's records into the ledger, the trace into the store,
   however the request ends.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ponder.backends.base import Backend
from ponder.backends.registry import BackendRegistry
from ponder.config import PonderConfig, load_config
from ponder.errors import (
    ModelNotFoundError,
    PolicyError,
    UnsupportedFeatureError,
)
from ponder.gateway.call import ChatCall, Plan, as_messages, unhonoured
from ponder.gateway.forwarding import ForwardedStream, Forwarder
from ponder.gateway.ledger import UsageLedger
from ponder.gateway.passthrough import Forwarded
from ponder.gateway.reply import Reply, ReplyStream, spent_on_failure
from ponder.metering import CallLog, recording
from ponder.reasoning.base import Services, StrategyResult
from ponder.reasoning.registry import StrategyRegistry
from ponder.reasoning.runner import StrategyBackend, StrategySpec, run_strategy
from ponder.reasoning.selection import Selection, select_strategy
from ponder.traces import TraceStore, default_trace_path
from ponder.types import GenerationRequest, Message, SamplingParams


class Gateway:
    def __init__(
        self,
        config: PonderConfig,
        *,
        registry: BackendRegistry | None = None,
        strategies: StrategyRegistry | None = None,
        services: Services | None = None,
        ledger: UsageLedger | None = None,
        traces: TraceStore | None = None,
        close_backends: bool = True,
        store_traces: bool = True,
    ) -> None:
        self.config = config
        self.registry = registry or BackendRegistry(config)
        # Read once at start: a broken profile or plugin stops start-up, not a request.
        self.strategies = strategies or StrategyRegistry.discover()
        self.services = services or Services.from_config(config)
        self.ledger = ledger or UsageLedger()
        self.traces = traces or TraceStore(config.trace_db or default_trace_path())
        self.forwarder = Forwarder(self.ledger)
        # A model's endpoint settings, built once (the configuration is immutable) rather
        # than per pass-through request; bounded, as "provider/<any model>" names are open.
        self._upstream_of = functools.lru_cache(maxsize=1024)(self.registry.remote_config)
        self._close_backends = close_backends
        # Off for batch callers (the bench, calibration) that keep their own records.
        self._store_traces = store_traces

    @classmethod
    def from_config(cls, path: str | Path | None = None, **overrides: Any) -> Gateway:
        """A gateway from a TOML file (None: the defaults), e.g. for the library."""
        config = load_config(Path(path) if path is not None else None)
        return cls(config.replace(**overrides) if overrides else config)

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.forwarder.aclose()
        if self._close_backends:
            await self.registry.aclose()
        self.traces.close()

    # -- the library's face ----------------------------------------------------------------
    async def chat(
        self,
        messages: str | Sequence[Mapping[str, str] | Message],
        *,
        model: str | None = None,
        strategy: str | Mapping[str, Any] | None = None,
        effort: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        n: int = 1,
    ) -> Reply:
        """Answer ``messages`` (a string is one user message) the way the server would."""
        chat = as_messages(messages)
        sampling = SamplingParams(max_tokens=max_tokens, seed=seed)
        if temperature is not None:
            sampling = sampling.replace(temperature=temperature)
        choice = {"strategy": strategy} if isinstance(strategy, str) else strategy
        return await self.complete(
            ChatCall(
                model=model or self.config.default_model,
                request=GenerationRequest(messages=chat, sampling=sampling, n=n),
                ponder=dict(choice) if choice is not None else None,
                reasoning_effort=effort,
            )
        )

    # -- one request -------------------------------------------------------------------------
    async def plan(self, call: ChatCall) -> Plan:
        """Steps 1-3: select the strategy, admit and resolve every model it will reach."""
        name, _, tag = call.model.partition("#")  # "#tag" only labels usage in the ledger
        selection = select_strategy(
            model=name,
            ponder=call.ponder,
            reasoning_effort=call.reasoning_effort,
            effort_map=self.config.effort,
            default=self.config.default_strategy,
            registry=self.strategies,
        )
        model = self.registry.canonical(selection.model)
        self.registry.kind_of(model)  # unknown model: 404 before any work
        self.registry.check_n(call.request.n)
        unsupported = unhonoured(call.request) if selection.spec is not None else []
        if unsupported and selection.source == "request":
            raise UnsupportedFeatureError(
                f"strategy {selection.spec.describe()!r} cannot honour "  # type: ignore[union-attr]
                f"{', '.join(unsupported)}; send the request without a strategy to pass it "
                "straight to the model",
                param=unsupported[0],
            )
        if unsupported:
            # The server's own default must not drop what the client asked for: such a
            # request goes to the model as it is.
            selection = Selection(None, selection.model, selection.source)
        backend = await self.registry.get(model)
        named = await self.resolve_models(selection.spec)
        if selection.spec is not None:
            backend = StrategyBackend(
                selection.spec, backend, backends=named, services=self.services
            )
        upstream = (
            self._upstream_of(model) if selection.spec is None and call.body is not None else None
        )
        return Plan(
            selection=selection,
            model=model,
            tag=tag,
            backend=backend,
            named=named,
            upstream=upstream,
        )

    async def resolve_models(self, spec: StrategySpec | None) -> dict[str, Backend]:
        """The backends a strategy declares besides the request's model, through the same
        registry and policy; a required one that is denied fails the request, an optional
        one (``auto``'s escalation) is left out."""
        named: dict[str, Backend] = {}
        while spec is not None:
            for use in spec.strategy().models(spec.params, self.services):
                if use.name in named:
                    continue
                try:
                    named[use.name] = await self.registry.get(use.name, purpose=use.purpose)
                except (PolicyError, ModelNotFoundError):
                    if use.required:
                        raise
            spec = spec.over
        return named

    async def complete(self, call: ChatCall, plan: Plan | None = None) -> Reply:
        """A whole reply. Usage is recorded whether it succeeds, fails or is cancelled."""
        started = time.perf_counter()
        log = CallLog()
        try:
            plan = plan or await self.plan(call)
            request = call.request.replace(model=plan.model)
            with recording(log):
                completion = await plan.backend.generate(request)
        except BaseException as exc:
            await self._record_failure(plan, call, log, started, exc)
            raise
        reply = Reply.build(completion, log, plan.model, plan.selection, started)
        await self._record(reply, plan.tag, ok=True)
        return reply

    async def forward(self, call: ChatCall, plan: Plan) -> Forwarded:
        """A pass-through request (see :mod:`ponder.gateway.forwarding`)."""
        return await self.forwarder.forward(call, plan)

    async def forward_stream(self, call: ChatCall, plan: Plan) -> ForwardedStream:
        """A pass-through stream, recorded when it ends."""
        return await self.forwarder.forward_stream(call, plan)

    def stream(self, call: ChatCall, plan: Plan) -> ReplyStream:
        """Deltas as they come; recorded when the stream ends, however it ends. Plan first
        (:meth:`plan`), so that a request that cannot run fails before a stream starts."""
        request = call.request.replace(model=plan.model)
        log = CallLog()
        with recording(log):
            inner = plan.backend.stream(request)
        return ReplyStream(inner, request, log, plan, time.perf_counter(), self._finish_stream)

    async def solve(
        self,
        spec: StrategySpec,
        request: GenerationRequest,
        *,
        model: str,
        backend: Backend | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> StrategyResult:
        """One strategy run with its full result (the CLI and the bench). ``backend`` stands
        in for the model's own (a recording or a sample bank over it); the strategy's other
        models are resolved as for any request."""
        started = time.perf_counter()
        log = CallLog()
        canonical = self.registry.canonical(model)
        try:
            base = backend or await self.registry.get(canonical)
            named = await self.resolve_models(spec)
            with recording(log):
                result = await run_strategy(
                    spec,
                    base,
                    request.replace(model=canonical),
                    on_progress=on_progress,
                    backends=named,
                    services=self.services,
                )
        except BaseException as exc:
            await spent_on_failure(log, exc)
            self.ledger.record(
                canonical, log.usage, ok=False, seconds=time.perf_counter() - started
            )
            raise
        self.ledger.record(canonical, log.usage, ok=True, seconds=time.perf_counter() - started)
        if self._store_traces:
            await self.traces.put(result.trace, canonical)
        return result

    # -- recording ---------------------------------------------------------------------------
    async def _record(self, reply: Reply, tag: str, *, ok: bool) -> None:
        self.ledger.record(reply.model, reply.spent, ok=ok, seconds=reply.seconds, tag=tag)
        if reply.trace is not None and self._store_traces:
            await self.traces.put(reply.trace, reply.model)

    async def _record_failure(
        self, plan: Plan | None, call: ChatCall, log: CallLog, started: float, exc: BaseException
    ) -> None:
        await spent_on_failure(log, exc)
        model = plan.model if plan is not None else call.model.partition("#")[0]
        if plan is None and not log.records:
            return  # refused before anything was resolved or spent
        tag = plan.tag if plan is not None else ""
        self.ledger.record(
            model, log.usage, ok=False, seconds=time.perf_counter() - started, tag=tag
        )

    async def _finish_stream(self, stream: ReplyStream, ok: bool) -> None:
        reply = stream.reply
        self.ledger.record(
            stream.plan.model, reply.spent, ok=ok, seconds=reply.seconds, tag=stream.plan.tag
        )
        if ok and reply.trace is not None and self._store_traces:
            await self.traces.put(reply.trace, stream.plan.model)


__all__ = ["ChatCall", "Gateway", "Plan"]
