"""One call's walk over deployments: retries, backoff, cooldowns and fallbacks, with policy
checked at every hop.

:class:`Attempts` hands out the next deployment to try, given how the last one ended:

1. the model's own deployments, allowed by the scope, in the routing strategy's order; up to
   ``num_retries + 1`` attempts, cycling, with exponential backoff before a deployment is
   tried again and its ``Retry-After`` honoured (a wait longer than ``retry_after_max``
   drops it for this call);
2. when they are spent: the scope's fallbacks for the name (the key's, then the team's),
   then the model's ``[routing] fallbacks``; after an overlong prompt, the
   ``context_window_fallbacks``; after a content filter's refusal, the
   ``content_policy_fallbacks``. Each fallback is a name, resolved and checked like any
   other, with attempts of its own.

A deployment the scope refuses is skipped and noted in the request's log; when nothing the
walk could reach is allowed, the call fails with :class:`PolicyError` (403). An error that
is the request's own (a 400 other than those two, a policy refusal, a cancellation) ends the
walk at once: retrying cannot help it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ponder.errors import (
    BackendError,
    BackendUnavailableError,
    ContentFilterError,
    ContextOverflowError,
    ModelError,
    ModelNotFoundError,
    PolicyError,
)
from ponder.metering import note
from ponder.routing.catalog import Deployment, Group
from ponder.routing.choose import ordered
from ponder.routing.names import normalise
from ponder.routing.policy import Scope
from ponder.types import Purpose

if TYPE_CHECKING:
    from ponder.routing.registry import BackendRegistry


def retryable(error: BaseException) -> bool:
    """An error that says the deployment, not the request, failed."""
    return isinstance(error, BackendError | ModelError)


class Attempts:
    def __init__(
        self,
        registry: BackendRegistry,
        group: Group,
        scope: Scope,
        purpose: Purpose,
    ) -> None:
        self.registry = registry
        self.settings = registry.settings
        self.scope = scope
        self.purpose = purpose
        self.origin = group.name
        self.denials: list[str] = []
        self.allowed_any = False
        self._visited: set[str] = {group.name}
        self._fallbacks: deque[str] = deque()
        self._error: BaseException | None = None
        self._tries: dict[str, int] = {}
        self._general_done = False
        self._waits: list[float] = []  # Retry-Afters longer than this call waits
        self._enter(group, purpose)

    # -- the current group ------------------------------------------------------------------
    def _enter(self, group: Group, purpose: Purpose) -> None:
        self.group = group
        allowed = []
        for d in group.deployments:
            reason = self.scope.denial(d, purpose)
            if reason is None:
                allowed.append(d)
            else:
                self.denials.append(reason)
                note(f"policy skipped {reason}")
        self.allowed_any = self.allowed_any or bool(allowed)
        self._queue = ordered(
            self.settings.strategy, allowed, self.registry.health, self.registry.rng
        )
        self._left = self.settings.num_retries + 1 if allowed else 0
        self._position = 0

    def _queue_fallbacks(self, kind: str) -> None:
        routing = self.settings
        names: tuple[str, ...]
        if kind == "context":
            names = lookup(routing.context_window_fallbacks, self.origin)
        elif kind == "content":
            names = lookup(routing.content_policy_fallbacks, self.origin)
        else:
            names = (*self.scope.fallbacks(self.origin), *lookup(routing.fallbacks, self.origin))
        self._fallbacks = deque(n for n in names if n not in self._visited)

    # -- the walk ---------------------------------------------------------------------------
    async def next(self, error: BaseException | None = None) -> Deployment:
        """The next deployment to try after ``error`` (None: the first attempt). Raises the
        error that ends the walk: ``error`` itself when it is the request's own or nothing
        is left, :class:`PolicyError` when nothing reachable was allowed."""
        if error is not None:
            self._error = error
            if isinstance(error, ContextOverflowError | ContentFilterError):
                self._left = 0
                self._general_done = True  # only the fallbacks for this kind of refusal
                kind = "context" if isinstance(error, ContextOverflowError) else "content"
                self._queue_fallbacks(kind)
            elif not retryable(error):
                raise error
        while True:
            deployment = self._next_in_group()
            if deployment is not None:
                await self._wait_for(deployment)
                return deployment
            if not self._fallbacks and not self._general_done:
                self._general_done = True
                self._queue_fallbacks("fail")
            if not self._fallbacks:
                break
            name = self._fallbacks.popleft()
            self._visited.add(name)
            try:
                group = self.registry.catalog.resolve(name, paths=False)
            except ModelNotFoundError:
                note(f"fallback {name!r} skipped: no such model")
                continue
            note(f"fallback from {self.origin} to {group.name}")
            self._enter(group, "fallback")
        if self._error is not None and self.allowed_any:
            raise self._error
        if self._waits:  # allowed, but each asked to be left alone for now
            busy = BackendUnavailableError(
                f"every deployment of {self.origin!r} asked to wait (Retry-After)"
            )
            busy.retry_after = min(self._waits)
            raise busy
        raise PolicyError(
            "; ".join(self.denials) or f"no deployment of {self.origin!r} may be used",
            param="model",
        )

    def first(self) -> Deployment | None:
        """The first deployment, when it can be tried at once (no Retry-After to wait
        out); None otherwise (then :meth:`next` waits). For a stream, opened where it is
        asked for, so that an error the request itself causes is raised there."""
        if self._left <= 0 or not self._queue:
            return None
        if self.registry.health.state(self._queue[0]).not_before > time.monotonic():
            return None
        deployment = self._next_in_group()
        if deployment is not None:
            self._tries[deployment.id] = 1
        return deployment

    def has_fallbacks(self, refusal: ContextOverflowError | ContentFilterError) -> bool:
        """Whether a fallback is configured for this kind of refusal (the pass-through
        relays the endpoint's own 400 otherwise)."""
        table = (
            self.settings.context_window_fallbacks
            if isinstance(refusal, ContextOverflowError)
            else self.settings.content_policy_fallbacks
        )
        return any(name not in self._visited for name in lookup(table, self.origin))

    def _next_in_group(self) -> Deployment | None:
        now = time.monotonic()
        while self._left > 0 and self._queue:
            deployment = self._queue[self._position % len(self._queue)]
            wait = self.registry.health.state(deployment).not_before - now
            if wait > self.settings.retry_after_max:
                self._queue.remove(deployment)  # it asked for longer than we wait
                self._waits.append(wait)
                note(f"{deployment.id} skipped: it asked to wait {wait:.1f} s")
                continue
            self._position += 1
            self._left -= 1
            return deployment
        return None

    async def _wait_for(self, deployment: Deployment) -> None:
        tries = self._tries.get(deployment.id, 0)
        self._tries[deployment.id] = tries + 1
        wait = self.registry.health.state(deployment).not_before - time.monotonic()
        if tries:
            backoff = min(self.settings.backoff * 2 ** (tries - 1), self.settings.backoff_max)
            wait = max(wait, backoff)
        if wait > 0:
            await asyncio.sleep(wait)

    # -- what the caller reports ------------------------------------------------------------
    def failed(self, deployment: Deployment, error: BaseException) -> None:
        """Count a failure that was the deployment's (not the request's) against it."""
        health = self.registry.health
        if not retryable(error):
            health.ended(deployment)
            return
        after = error.retry_after if isinstance(error, BackendError) else None
        if health.failed(deployment, str(error)[:200], retry_after=after):
            note(f"{deployment.id} cooled down after repeated failures")
        note(f"{deployment.id} failed: {type(error).__name__}")


def lookup(table: Mapping[str, tuple[str, ...]], name: str) -> tuple[str, ...]:
    """``table[name]``, the names compared normalised."""
    key = normalise(name)
    for candidate, targets in table.items():
        if normalise(candidate) == key:
            return targets
    return ()
