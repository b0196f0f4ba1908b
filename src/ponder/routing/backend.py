"""The Backend a request's model name becomes: every call walks the name's deployments.

A :class:`RoutedBackend` is made per request (it carries the request's policy scope) and
is all a strategy ever sees of a model, so each of its calls, a proposer's, an escalation's,
each retry and each fallback, goes through :class:`~ponder.routing.attempts.Attempts`, which
checks the scope on the deployment it is about to use.

A stream falls back transparently while nothing has reached its reader: a deployment that
fails before its first delta is replaced by the next. Once a delta has gone out the stream
cannot change models mid-answer, so the error ends it (the server sends an error event) and
the usage spent is recorded as for any failure: every attempt's leaf backend records its own
spend in the request's log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from ponder.backends.base import Backend, Capabilities, GenerationStream
from ponder.errors import ContentFilterError, ContextOverflowError
from ponder.metering import current_log, recording
from ponder.routing.attempts import Attempts, retryable
from ponder.routing.catalog import Deployment, Group
from ponder.routing.policy import Scope
from ponder.types import Completion, Delta, GenerationRequest, Purpose, Usage

if TYPE_CHECKING:
    from ponder.routing.registry import BackendRegistry


class RoutedBackend:
    def __init__(
        self,
        registry: BackendRegistry,
        group: Group,
        scope: Scope,
        purpose: Purpose,
        capabilities: Capabilities,
        wrap: Callable[[Backend], Backend] | None = None,
    ) -> None:
        self.registry = registry
        self.group = group
        self.scope = scope
        self.purpose = purpose
        self.name = group.name
        self.capabilities = capabilities
        # Put around each attempt's backend: a request's spending cap, so that a retry or a
        # fallback is admitted against what is left like any other call.
        self.wrap = wrap

    def wrapped(self, wrap: Callable[[Backend], Backend]) -> RoutedBackend:
        """This routed model with ``wrap`` around every attempt."""
        return RoutedBackend(
            self.registry, self.group, self.scope, self.purpose, self.capabilities, wrap
        )

    async def leaf(self, deployment: Deployment) -> Backend:
        """The backend an attempt on ``deployment`` calls."""
        return self._wrapped(await self.registry.backend_for(deployment, self.scope))

    def _wrapped(self, backend: Backend) -> Backend:
        return self.wrap(backend) if self.wrap is not None else backend

    def attempts(self) -> Attempts:
        return Attempts(self.registry, self.group, self.scope, self.purpose)

    async def generate(self, request: GenerationRequest) -> Completion:
        attempts = self.attempts()
        error: BaseException | None = None
        while True:
            deployment = await attempts.next(error)
            started = self.registry.health.begin(deployment)
            try:
                backend = await self.leaf(deployment)
                completion = await backend.generate(request)
            except BaseException as exc:
                attempts.failed(deployment, exc)
                error = exc
                continue
            self.registry.health.succeeded(deployment, started, completion.usage.total_tokens)
            return completion

    def stream(self, request: GenerationRequest) -> GenerationStream:
        """A routed stream. Its first deployment is opened here, where the caller asks, so
        that an error the request itself causes (a prompt too long for the context) is
        raised to it at once; a deployment that fails is replaced while the stream is read,
        until its first delta."""
        attempts = self.attempts()
        health = self.registry.health
        first = attempts.first()
        leaf = self.registry.built(first, self.scope) if first is not None else None
        if first is None or leaf is None:
            return RoutedStream(self, request, attempts)
        leaf = self._wrapped(leaf)
        started = health.begin(first)
        try:
            opened = leaf.stream(request)
        except BaseException as exc:
            attempts.failed(first, exc)
            if not _recoverable(attempts, exc):
                raise
            return RoutedStream(self, request, attempts, error=exc)
        return RoutedStream(self, request, attempts, opened=(first, opened, started))

    async def aclose(self) -> None:
        """The deployments' backends belong to the registry."""


class RoutedStream:
    """A stream that moves to the next deployment while nothing has been read from it."""

    def __init__(
        self,
        routed: RoutedBackend,
        request: GenerationRequest,
        attempts: Attempts,
        *,
        opened: tuple[Deployment, GenerationStream, float] | None = None,
        error: BaseException | None = None,
    ) -> None:
        self._routed = routed
        self._request = request
        self._attempts = attempts
        self._opened = opened
        self._error = error
        self._inner: GenerationStream | None = opened[1] if opened is not None else None
        self._spent = Usage()  # what earlier, failed attempts spent
        self._closed = False
        # Later attempts start while the stream is read, outside the request's context:
        # they record into the request's log all the same.
        self._log = current_log()

    def __aiter__(self) -> AsyncIterator[Delta]:
        return self._run()

    async def _run(self) -> AsyncIterator[Delta]:
        routed = self._routed
        registry = routed.registry
        attempts = self._attempts
        error = self._error
        while not self._closed:
            if self._opened is not None:
                deployment, inner, started = self._opened
                self._opened = None
            else:
                with recording(self._log):
                    deployment = await attempts.next(error)
                    started = registry.health.begin(deployment)
                    try:
                        backend = await routed.leaf(deployment)
                        inner = self._inner = backend.stream(self._request)
                    except BaseException as exc:
                        attempts.failed(deployment, exc)
                        error = exc
                        continue
            sent = False
            try:
                async for delta in inner:
                    sent = True
                    yield delta
            except BaseException as exc:
                attempts.failed(deployment, exc)
                if sent:
                    raise
                self._spent = Usage.sum([self._spent, inner.usage])
                self._inner = None
                await inner.aclose()
                error = exc
                continue
            registry.health.succeeded(deployment, started, inner.usage.total_tokens)
            return

    def cancel(self, index: int) -> None:
        if self._inner is not None:
            self._inner.cancel(index)

    async def aclose(self) -> None:
        self._closed = True
        if self._opened is not None:  # opened, never read: its call ends here
            deployment, _, _ = self._opened
            self._opened = None
            self._routed.registry.health.ended(deployment)
        if self._inner is not None:
            await self._inner.aclose()

    @property
    def usage(self) -> Usage:
        current = self._inner.usage if self._inner is not None else Usage()
        return Usage.sum([self._spent, current]) if self._spent.calls else current


def _recoverable(attempts: Attempts, error: BaseException) -> bool:
    """Whether a stream that failed to open may move on to another deployment."""
    if isinstance(error, ContextOverflowError | ContentFilterError):
        return attempts.has_fallbacks(error)
    return retryable(error)
