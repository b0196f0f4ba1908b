"""The Gateway: the one place a chat request is admitted, resolved, run, metered and
recorded. The HTTP server, ``ponder ask``, the bench and the Python library all call it.

A request goes through five steps:

1. **select**: the strategy, from the request (``ponder``, ``ponder/<strategy>/<model>``),
   its ``reasoning_effort``, or the configured default;
2. **resolve**: the request's model and every model the strategy declares it will call
   (``Strategy.models``), through the same registry and policy;
3. **admit**: the caller's permissions on all of them, and a reservation of the request's
   worst case against its key's and team's budgets and rate limits (``accounts.py``); every
   call it then makes must fit the reservation (``guard.py``);
4. **run**: the strategy over the backend, or the backend alone, under one :class:`CallLog`;
5. **record**: usage from the log's records into the ledger (settling the reservation), the
   trace into the store, however the request ends.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ponder.backends.base import Backend
from ponder.config import PonderConfig, load_config
from ponder.errors import (
    ModelNotFoundError,
    PolicyError,
    UnsupportedFeatureError,
)
from ponder.gateway.accounts import Accounts
from ponder.gateway.bookkeeping import Bookkeeping
from ponder.gateway.call import (
    ChatCall,
    Plan,
    as_messages,
    refuse_upstream_routing,
    unhonoured,
)
from ponder.gateway.deadline import Deadline, within
from ponder.gateway.forwarding import ForwardedStream, Forwarder
from ponder.gateway.guard import GuardedBackend, SpendingCap
from ponder.gateway.identity import Caller
from ponder.gateway.journal import Journal
from ponder.gateway.ledger import UsageLedger
from ponder.gateway.passthrough import Forwarded
from ponder.gateway.reply import Reply, ReplyStream, reply_usage, spent_on_failure
from ponder.gateway.requestlog import log_refusal, log_request
from ponder.gateway.telemetry import Telemetry, deployment_lookup
from ponder.metering import CallLog, recording
from ponder.reasoning.base import Services, StrategyResult
from ponder.reasoning.registry import StrategyRegistry
from ponder.reasoning.runner import StrategyBackend, StrategySpec, run_strategy
from ponder.reasoning.selection import Selection, select_strategy
from ponder.reasoning.trace import Trace
from ponder.routing.backend import RoutedBackend
from ponder.routing.policy import Scope
from ponder.routing.registry import BackendRegistry
from ponder.tools.mcp import McpServers
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
        admin_key: str | None = None,
        close_backends: bool = True,
        store_traces: bool = True,
    ) -> None:
        self.config = config
        self.registry = registry or BackendRegistry(config)
        # Read once at start: a broken profile or plugin stops start-up, not a request.
        self.strategies = strategies or StrategyRegistry.discover()
        services = services or Services.from_config(config)
        if services.price_of is None:  # a budget in dollars is priced by the deployments
            services = dataclasses.replace(services, price_of=self.registry.model_price)
        self.services = services
        # In-process totals for /metrics and usage tags; the durable ledger is the store's.
        self.ledger = ledger or UsageLedger()
        # OpenTelemetry spans per request and per model call (off unless configured).
        self.telemetry = Telemetry.from_config(
            config.telemetry, deployment_lookup(self.registry.catalog)
        )
        # The database, the in-flight journal and the reservation sweep; none until start().
        self.books = Bookkeeping(
            config, admin_key, self.registry.price_of, store_traces=store_traces
        )
        self.forwarder = Forwarder(self._end_forwarded)
        self._close_backends = close_backends
        # The configured MCP servers' connections, shared by every request; no servers is
        # no work (and no MCP SDK needed); configured ones without the SDK fail here.
        self.mcp = McpServers(config.mcp_servers)

    @classmethod
    def from_config(cls, path: str | Path | None = None, **overrides: Any) -> Gateway:
        """A gateway from a TOML file (None: the defaults), e.g. for the library."""
        config = load_config(Path(path) if path is not None else None)
        return cls(config.replace(**overrides) if overrides else config)

    @property
    def accounts(self) -> Accounts:
        """Keys, budgets and the ledger (:mod:`ponder.gateway.accounts`)."""
        return self.books.accounts

    @property
    def journal(self) -> Journal | None:
        return self.books.journal

    async def start(self) -> None:
        """Open the database (see :class:`Bookkeeping`) and connect the MCP servers."""
        await self.books.open()
        await self.mcp.start()  # a server that is down is logged and retried, not raised

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.forwarder.aclose()
        await self.mcp.aclose()
        if self._close_backends:
            await self.registry.aclose()
        await self.books.aclose()

    async def trace(self, trace_id: str, caller: Caller) -> dict[str, Any] | None:
        """A stored trace, if this caller may see it (others get None, as for no trace)."""
        store = self.accounts.store
        row = await store.get_trace(trace_id) if store is not None else None
        if row is None or not caller.sees(row.key_id, row.team):
            return None
        return row.body

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
        local_only: bool = False,
    ) -> Reply:
        """Answer ``messages`` (a string is one user message) the way the server would;
        ``local_only`` keeps every hop on deployments marked ``local``."""
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
                local_only=local_only,
            )
        )

    # -- one request -------------------------------------------------------------------------
    async def plan(self, call: ChatCall) -> Plan:
        """Steps 1-3: select the strategy, resolve every model it will reach, and admit the
        caller (permissions, then a reservation of the worst case). A request that policy
        refuses is written to the ledger (nothing spent) before its 403 goes out."""
        try:
            return await self._plan(call)
        except PolicyError as exc:
            refused = CallLog()
            refused.events.append(f"refused: {exc.message}")
            log_refusal(exc)
            await self.accounts.finish(
                call.caller,
                None,
                # The name as sent, made storable (it may hold lone surrogates).
                model=call.model.encode("utf-8", "backslashreplace").decode()[:300],
                strategy=None,
                effort=call.reasoning_effort,
                log=refused,
                seconds=0.0,
                error=exc,
                trace=None,
            )
            raise

    async def _plan(self, call: ChatCall) -> Plan:
        refuse_upstream_routing(call)
        name, _, tag = call.model.partition("#")  # "#tag" only labels usage in the ledger
        tag = tag[:MAX_TAG]  # kept per tag in memory: bounded in length as in number
        selection = select_strategy(
            model=name,
            ponder=call.ponder,
            reasoning_effort=call.reasoning_effort,
            effort_map=self.config.effort,
            default=self.config.default_strategy,
            registry=self.strategies,
        )
        scope = call.caller.scope(self.registry.scope, local_only=call.local_only)
        # A GGUF file by path is the operator's (the CLI, the library), never a key's.
        paths = call.caller.key is None
        model = self.registry.canonical(selection.model)
        self.registry.resolve(model, paths=paths)  # unknown model: 404 before any work
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
        base = await self.registry.get(model, scope=scope, paths=paths)
        # The pass-through sends the client's body as it is: not where personal data must
        # be redacted first (that takes the routed path, whose calls redact and restore).
        remote = not scope.redact and all(d.kind == "remote" for d in self.registry.reachable(base))
        plan = Plan(
            selection=selection,
            model=model,
            tag=tag,
            backend=base,
            routed=base,
            named=await self.resolve_models(selection.spec, scope),
            upstream=base if remote and selection.spec is None and call.body is not None else None,
            log=self.telemetry.call_log(),
            caller=call.caller,
            deadline=Deadline.after(call.timeout),
        )
        plan.admission = await self.accounts.admit(
            call.caller, call, plan, self.services, self.registry
        )
        backend: Backend = base
        named: dict[str, Backend] = dict(plan.named)
        if plan.admission.cap_tokens is not None:
            cap = SpendingCap(
                plan.admission.cap_tokens, self.config.engine.default_max_tokens, plan.log
            )

            def guard(leaf: Backend) -> Backend:
                return GuardedBackend(leaf, cap)

            # Each attempt (retries and fallbacks too) is admitted against the cap.
            backend = base.wrapped(guard)
            named = {k: b.wrapped(guard) for k, b in plan.named.items()}
        plan.backend = (
            StrategyBackend(selection.spec, backend, backends=named, services=self.services)
            if selection.spec is not None
            else backend
        )
        self.books.begin(plan, call)
        return plan

    async def resolve_models(
        self, spec: StrategySpec | None, scope: Scope | None = None
    ) -> dict[str, RoutedBackend]:
        """The backends a strategy declares besides the request's model, routed under the
        request's scope (so every call they make is checked again); a required one that is
        denied fails the request, an optional one (``auto``'s escalation) is left out."""
        named: dict[str, RoutedBackend] = {}
        while spec is not None:
            for use in spec.strategy().models(spec.params, self.services):
                if use.name in named:
                    continue
                try:
                    named[use.name] = await self.registry.get(
                        use.name, purpose=use.purpose, scope=scope, paths=False
                    )
                except (PolicyError, ModelNotFoundError):
                    if use.required:
                        raise
            spec = spec.over
        return named

    async def complete(self, call: ChatCall, plan: Plan | None = None) -> Reply:
        """A whole reply. Usage is recorded whether it succeeds, fails or is cancelled."""
        plan = plan or await self.plan(call)
        try:
            with recording(plan.log):
                completion = await within(
                    plan.deadline, plan.backend.generate(call.request.replace(model=plan.model))
                )
        except BaseException as exc:
            await spent_on_failure(plan.log, exc)
            await self._end(plan, call, error=exc, trace=None)
            raise
        reply = Reply.build(completion, plan.log, plan.model, plan.selection, plan.started)
        await self._end(plan, call, error=None, trace=reply.trace)
        return reply

    async def forward(self, call: ChatCall, plan: Plan) -> Forwarded:
        """A pass-through request (see :mod:`ponder.gateway.forwarding`)."""
        return await self.forwarder.forward(call, plan)

    async def forward_stream(self, call: ChatCall, plan: Plan) -> ForwardedStream:
        """A pass-through stream, recorded when it ends."""
        return await self.forwarder.forward_stream(call, plan)

    async def stream(self, call: ChatCall, plan: Plan) -> ReplyStream:
        """Deltas as they come; recorded when the stream ends, however it ends. Plan first
        (:meth:`plan`), so that a request that cannot run fails before a stream starts; one
        that fails while its stream is being opened is recorded (and its reservation
        settled) before the error goes on."""
        request = call.request.replace(model=plan.model)
        try:
            with recording(plan.log):
                inner = plan.backend.stream(request)
        except BaseException as exc:
            await spent_on_failure(plan.log, exc)
            await self._end(plan, call, error=exc, trace=None)
            raise

        async def finished(stream: ReplyStream, error: BaseException | None) -> None:
            await self._end(plan, call, error=error, trace=stream.reply.trace)

        return ReplyStream(inner, request, plan, finished)

    async def solve(
        self,
        spec: StrategySpec,
        request: GenerationRequest,
        *,
        model: str,
        backend: Backend | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> StrategyResult:
        """One strategy run with its full result (the CLI and the bench), as the local user.
        ``backend`` stands in for the model's own (a recording or a sample bank over it);
        the strategy's other models are resolved as for any request."""
        canonical = self.registry.canonical(model)
        call = ChatCall(model=canonical, request=request, ponder={"strategy": spec.name})
        plan = Plan(
            selection=Selection(spec, canonical, "request"),
            model=canonical,
            tag="",
            backend=backend or await self.registry.get(canonical),
        )
        try:
            plan.named = await self.resolve_models(spec, self.registry.scope)
            with recording(plan.log):
                result = await run_strategy(
                    spec,
                    plan.backend,
                    request.replace(model=canonical),
                    on_progress=on_progress,
                    backends=plan.named,
                    services=self.services,
                )
        except BaseException as exc:
            await spent_on_failure(plan.log, exc)
            await self._end(plan, call, error=exc, trace=None)
            raise
        await self._end(plan, call, error=None, trace=result.trace)
        return result

    # -- the end of every request ------------------------------------------------------------
    async def _end(
        self, plan: Plan, call: ChatCall, *, error: BaseException | None, trace: Trace | None
    ) -> None:
        """Record what a request spent (the log's sum), however it ended."""
        seconds = time.perf_counter() - plan.started
        usage = reply_usage(plan.log, None)
        log_request(plan, usage, error, seconds, trace)
        self.telemetry.request_ended(plan, usage, error, seconds)
        if trace is not None:
            for event in plan.log.events:  # what routing decided: skips, fallbacks
                trace.note("routing", event=event)
        self.ledger.record(plan.model, usage, ok=error is None, seconds=seconds, tag=plan.tag)
        spec = plan.spec
        await self.books.finish(
            plan,
            strategy=spec.describe() if spec is not None else None,
            effort=call.reasoning_effort,
            seconds=seconds,
            error=error,
            trace=trace,
        )

    async def _end_forwarded(self, plan: Plan, error: BaseException | None, ok: bool) -> None:
        seconds = time.perf_counter() - plan.started
        log_request(plan, plan.log.usage, error, seconds, None, ok=ok)
        self.telemetry.request_ended(plan, plan.log.usage, error, seconds, ok=ok)
        self.ledger.record(plan.model, plan.log.usage, ok=ok, seconds=seconds, tag=plan.tag)
        await self.books.finish(
            plan, strategy=None, effort=None, seconds=seconds, error=error, trace=None
        )


# The longest usage tag kept ("model#tag"); the rest is cut.
MAX_TAG = 100

__all__ = ["ChatCall", "Gateway", "Plan"]
