"""The gateway's side of tenancy: who a bearer token is, what a request reserves before it
runs, and the ledger row when it ends, however it ends.

A request's reservation is its worst case: the strategy's declared bound (or, without a
strategy, its prompt plus ``n`` x ``max_tokens``) at the highest price among the models it
may reach. The reservation is checked against every budget and rate limit of the key and its
team in one transaction, and every call the request then makes is checked against it (see
:mod:`ponder.gateway.guard`), so no budget is overspent by requests in flight. When the cost
cannot be estimated the request is refused under a budget, unless the operator configured
``default_request_tokens``.
"""

from __future__ import annotations

import asyncio
import hmac
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

import anyio

from ponder.config import PonderConfig, Price
from ponder.errors import (
    AuthenticationError,
    CancelledSequenceError,
    InvalidRequestError,
    PonderError,
)
from ponder.gateway.call import Admission, ChatCall, Plan
from ponder.gateway.identity import Caller
from ponder.metering import CallLog, CallRecord
from ponder.reasoning.base import Services
from ponder.reasoning.trace import Trace
from ponder.routing.registry import BackendRegistry
from ponder.tenancy import ApiKey, Budget, RequestRow, TenancyStore, resolve_database_url
from ponder.tenancy.models import RequestOutcome

# How long this process trusts what it read about a key: who it is, and which budgets and
# limits apply. A key revoked, or a budget added, on another replica takes effect within it;
# on this one, at once (the admin API clears the cache).
KEY_CACHE_SECONDS = 5.0
# How long closing waits for ledger rows still being written.
CLOSE_WAIT = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class Controls:
    """What holds a key back: its and its team's budgets, and whether any rate limit does."""

    budgets: tuple[Budget, ...]
    rate_limited: bool

    @property
    def any(self) -> bool:
        return bool(self.budgets) or self.rate_limited


class Accounts:
    def __init__(
        self,
        config: PonderConfig,
        store: TenancyStore | None,
        admin_key: str | None,
        prices: Callable[[str], Price | None] | None = None,
    ) -> None:
        self.config = config
        # A deployment's price by its id (what a call record names); None: unknown.
        self.prices = prices or config.prices.get
        self.store = store
        self.admin_key = admin_key or None
        # Bounded, short-lived caches that keep the database off a request's hot path.
        self._callers: TTLCache[str, Caller] = TTLCache(KEY_CACHE_SECONDS)
        self._controls: TTLCache[str, Controls] = TTLCache(KEY_CACHE_SECONDS)
        self._keys_exist = False  # once a key exists this process never goes back to one user
        self._no_keys_until = 0.0
        self._rows = GroupCommit(store)
        # Ledger rows and traces being written (shielded from cancellation): closing waits.
        self._writing = 0
        self._written = asyncio.Event()
        self._written.set()

    def forget(self) -> None:
        """Drop what was cached about keys (after an admin changed them)."""
        self._callers.clear()
        self._controls.clear()
        self._no_keys_until = 0.0

    @classmethod
    async def open(
        cls,
        config: PonderConfig,
        admin_key: str | None,
        prices: Callable[[str], Price | None] | None = None,
    ) -> Accounts:
        store = await TenancyStore.open(resolve_database_url(config))
        return cls(config, store, admin_key, prices)

    async def aclose(self) -> None:
        """Close the database once the rows being written are in (requests cancelled at
        shutdown finish writing theirs), waiting at most CLOSE_WAIT."""
        if self.store is not None:
            with suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_WAIT.total_seconds()):
                    await self._written.wait()
            await self.store.aclose()

    # -- who is calling ------------------------------------------------------------------
    async def caller(self, bearer: str | None) -> Caller:
        """The caller a bearer token names. A server with no admin key and no API keys has
        one user, the local one (it listens on loopback only); otherwise an unknown, revoked
        or missing token is a 401."""
        # Bytes, not str: compare_digest refuses non-ASCII text, and a header is the client's.
        if self.admin_key and bearer and hmac.compare_digest(_raw(bearer), _raw(self.admin_key)):
            return Caller(admin=True)
        if self.store is None:
            return Caller.local()
        if bearer:
            cached = self._callers.get(bearer)
            if cached is not None:
                return cached
            key = await self.store.authenticate(bearer)
            if key is not None:
                caller = Caller(key=key, team=await self.store.get_team(key.team))
                self._callers.put(bearer, caller)
                return caller
        if not self.admin_key and not await self._has_keys():
            return Caller.local()
        raise AuthenticationError(
            "a valid API key is required (Authorization: Bearer pk-...)"
            if not bearer
            else "the API key is not valid (unknown or revoked)"
        )

    async def _has_keys(self) -> bool:
        if self._keys_exist:
            return True
        now = time.monotonic()
        if now < self._no_keys_until:
            return False
        assert self.store is not None
        self._keys_exist = await self.store.has_keys()
        self._no_keys_until = now + 1.0
        return self._keys_exist

    async def controls(self, key: ApiKey) -> Controls:
        found = self._controls.get(key.id)
        if found is None:
            assert self.store is not None
            found = Controls(
                tuple(await self.store.budgets(key)), await self.store.has_rate_limits(key)
            )
            self._controls.put(key.id, found)
        return found

    # -- before a request runs -----------------------------------------------------------
    async def admit(
        self,
        caller: Caller,
        call: ChatCall,
        plan: Plan,
        services: Services,
        registry: BackendRegistry,
    ) -> Admission:
        """Check what the caller may use, and reserve the request's worst case."""
        spec = plan.spec
        names: list[str] = []
        effort = call.reasoning_effort
        while spec is not None:
            names.append(spec.name)
            effort = spec.params.model_dump().get("effort", effort)
            spec = spec.over
        caller.check_strategies(names)
        caller.check_effort(effort)
        if caller.key is None or self.store is None:
            return Admission(None, None)
        controls = await self.controls(caller.key)
        if not controls.any:
            return Admission(None, None)  # nothing to hold: the row is written at the end
        tokens = self.worst_case(call, plan, services, registry)
        budgets = controls.budgets
        if tokens is None:
            if any(b.limit for b in budgets):
                raise InvalidRequestError(
                    "this request's cost cannot be bounded under your budget: set max_tokens "
                    "(or an operator sets default_request_tokens)",
                    param="max_tokens",
                )
            tokens = 0
        price = self.highest_price(plan, registry)
        if price is None:
            if any(b.unit == "usd" for b in budgets):
                raise InvalidRequestError(
                    f"no price is configured for a deployment {plan.model!r} may reach, so "
                    "its cost cannot be held against a budget in dollars (set price on the "
                    "deployment, or [prices] in the configuration)",
                    param="model",
                )
            price = 0.0
        reservation = await self.store.reserve(caller.key, usd=tokens * price / 1e6, tokens=tokens)
        return Admission(reservation, tokens if budgets else None)

    def worst_case(
        self, call: ChatCall, plan: Plan, services: Services, registry: BackendRegistry
    ) -> int | None:
        request = call.request
        spec = plan.spec
        if spec is None:
            max_tokens = request.sampling.max_tokens
            if max_tokens is None and plan.upstream is None:
                max_tokens = self.config.engine.default_max_tokens  # the engine's own cap
            if max_tokens is None:
                return self.config.default_request_tokens
            return request.prompt_token_bound() + request.n * max_tokens
        if spec.over is not None:
            return self.config.default_request_tokens
        bound = spec.strategy().worst_case(spec.params, request, services)
        if bound is None:
            return self.config.default_request_tokens
        return bound * request.n

    def highest_price(self, plan: Plan, registry: BackendRegistry) -> float | None:
        """The highest price per token among every deployment the request may reach (its
        model's, the strategy's models', and their fallbacks', as the scope allows); None
        if one of them has no price."""
        routed = [plan.routed, *plan.named.values()]
        deployments = [d for b in routed if b is not None for d in registry.reachable(b)]
        if any(d.price is None for d in deployments):
            return None
        return max(
            (max(d.price.prompt, d.price.completion) for d in deployments if d.price),
            default=0.0,
        )

    def cost(self, records: tuple[CallRecord, ...] | list[CallRecord]) -> float:
        """Dollars for what the records spent, at each deployment's price."""
        total = 0.0
        for record in records:
            price = self.prices(record.backend)
            if price is not None:
                total += (
                    record.usage.prompt_tokens * price.prompt
                    + record.usage.completion_tokens * price.completion
                ) / 1e6
        return total

    # -- after it ends -------------------------------------------------------------------
    async def finish(
        self,
        caller: Caller,
        admission: Admission | None,
        *,
        model: str,
        strategy: str | None,
        effort: str | None,
        log: CallLog,
        seconds: float,
        error: BaseException | None,
        trace: Trace | None,
        request_id: str | None = None,
    ) -> None:
        """Write the ledger row (settling the reservation), and the trace; shielded, so a
        client that leaves cannot stop the spend from being recorded."""
        if self.store is None:
            return
        row = RequestRow(
            request_id=request_id or f"req-{uuid.uuid4().hex}",
            key_id=caller.key_id,
            team=caller.team_name,
            model=model,
            strategy=strategy,
            effort=effort,
            usage=log.usage,
            cost_usd=self.cost(log.records),
            seconds=seconds,
            outcome=outcome_of(error),
            trace_id=trace.id if trace is not None else None,
            calls=tuple(log.records),
            routing=tuple(log.events),
        )
        with anyio.CancelScope(shield=True):
            self._writing += 1
            self._written.clear()
            try:
                if admission is not None and admission.reservation is not None:
                    await self.store.settle(admission.reservation, row)
                else:
                    await self._rows.write(row)
                if trace is not None:
                    await self.store.put_trace(
                        trace.id,
                        trace.as_dict(),
                        key_id=caller.key_id,
                        team=caller.team_name,
                        model=model,
                    )
            finally:
                self._writing -= 1
                if self._writing == 0:
                    self._written.set()


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def outcome_of(error: BaseException | None) -> RequestOutcome:
    if error is None:
        return "ok"
    cancelled = (CancelledSequenceError, GeneratorExit, anyio.get_cancelled_exc_class())
    if isinstance(error, cancelled):
        return "cancelled"
    if isinstance(error, PonderError) and 400 <= error.status_code < 500:
        return "client_error"
    return "backend_error"


K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """A small cache whose entries expire after ``seconds`` (and the oldest go past
    ``size``), so memory does not grow with the keys clients send."""

    def __init__(self, seconds: float, size: int = 4096) -> None:
        self.seconds = seconds
        self.size = size
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        found = self._items.get(key)
        if found is None:
            return None
        if found[0] < time.monotonic():
            del self._items[key]
            return None
        return found[1]

    def put(self, key: K, value: V) -> None:
        self._items[key] = (time.monotonic() + self.seconds, value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()


class GroupCommit:
    """Ledger rows of requests that reserved nothing, written in shared transactions: a row
    that arrives while a write is under way joins the next one. Each caller waits until its
    own row is committed (nothing is acknowledged before it is durable), and only that long:
    the writing runs in a task of its own, so no request waits on the rows of those that
    came after it. Under load, many requests share one commit."""

    def __init__(self, store: TenancyStore | None) -> None:
        self.store = store
        self._pending: list[tuple[RequestRow, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(self, row: RequestRow) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        assert self.store is not None
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self.store.record_many([r for r, _ in batch])
            except BaseException as exc:
                for _, waiter in batch:
                    if not waiter.done():
                        waiter.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                for _, waiter in batch:
                    if not waiter.done():
                        waiter.set_result(None)
