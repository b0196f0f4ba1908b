"""Pass-through requests: sent upstream as the client sent them, returned as the endpoint
answered, and recorded in the ledger with the usage the endpoint reported."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from ponder.backends.openai_wire import refusal_error
from ponder.errors import BackendError, ContentFilterError, ContextOverflowError, PonderError
from ponder.gateway.call import ChatCall, Plan
from ponder.gateway.deadline import bounded, within
from ponder.gateway.passthrough import Forwarded, PassThrough, RelayStream
from ponder.metering import Charge
from ponder.types import GenerationRequest, Usage

T = TypeVar("T")


class Forwarder:
    """The gateway's pass-through: one pooled upstream client, and the gateway's own way of
    ending a request (``end``: the ledger, the reservation) called however it ends."""

    def __init__(self, end: Callable[[Plan, BaseException | None, bool], Awaitable[None]]) -> None:
        self.end = end
        self.passthrough = PassThrough()

    async def aclose(self) -> None:
        await self.passthrough.aclose()

    async def _send(
        self, call: ChatCall, plan: Plan, send: Callable[..., Awaitable[T]]
    ) -> tuple[T, Charge]:
        """Send the client's body upstream with ``send`` (the pass-through's ``forward`` or
        ``open_stream``), walking the model's deployments as any routed call does (retries,
        cooldowns, fallbacks, policy at each hop) while nothing has reached the client. An
        endpoint's refusal of an overlong prompt or by its content filter moves on to that
        kind of fallback where one is configured, and is relayed as it came otherwise. A
        request that fails on the way is ended (recorded) here."""
        assert plan.upstream is not None and call.body is not None
        body = _upstream_body(call.body)
        health = plan.upstream.registry.health
        attempts = plan.upstream.attempts()
        error: BaseException | None = None
        while True:
            try:
                deployment = await attempts.next(error)
            except BaseException as exc:
                await self.end(plan, exc, False)
                raise
            endpoint = deployment.endpoint
            charge = plan.log.begin(deployment.id)
            started = health.begin(deployment)
            try:
                if endpoint is None:  # the gateway passes through only to remote ones
                    raise BackendError(f"{deployment.id} is not an endpoint to forward to")
                sent = await send(endpoint, endpoint.model, body, headers=endpoint.headers)
            except BaseException as exc:
                charge.end(Usage(calls=1), exc)
                attempts.failed(deployment, exc)
                error = exc
                continue
            refusal = _refusal(sent, deployment.id)
            if refusal is not None and attempts.has_fallbacks(refusal):
                charge.end(Usage(), refusal)
                attempts.failed(deployment, refusal)
                error = refusal
                continue
            health.succeeded(deployment, started, 0)
            return sent, charge

    async def forward(self, call: ChatCall, plan: Plan) -> Forwarded:
        """A pass-through request, sent upstream as the client sent it (model id aside) and
        returned as the endpoint answered; its usage is recorded as the endpoint reported it."""
        forwarded, charge = await within(
            plan.deadline, self._send(call, plan, self.passthrough.forward)
        )
        charge.end(forwarded.usage)
        await self.end(plan, None, forwarded.ok)
        return forwarded

    async def forward_stream(self, call: ChatCall, plan: Plan) -> ForwardedStream:
        """A pass-through stream: the endpoint's SSE bytes, relayed; recorded when it ends."""
        opened, charge = await within(
            plan.deadline, self._send(call, plan, self.passthrough.open_stream)
        )
        if isinstance(opened, Forwarded):  # the endpoint refused: a 4xx to relay
            charge.end(opened.usage)
            await self.end(plan, None, False)
            return ForwardedStream(opened, None, self, plan, charge)
        return ForwardedStream(None, opened, self, plan, charge, request=call.request)


def _refusal(sent: object, where: str) -> ContextOverflowError | ContentFilterError | None:
    """The typed error of an endpoint's 400 that routing may fall back on (an overlong
    prompt, a content filter's refusal); None for anything else."""
    if not isinstance(sent, Forwarded) or sent.status_code != 400:
        return None
    detail = sent.body.get("error") if isinstance(sent.body, Mapping) else None
    if not isinstance(detail, Mapping):
        return None
    error = refusal_error(detail.get("code"), str(detail.get("message", "")), where)
    return error if isinstance(error, ContextOverflowError | ContentFilterError) else None


def _upstream_body(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The client's body less Ponder's own extension field, which no endpoint knows."""
    return {k: v for k, v in body.items() if k != "ponder"} if "ponder" in body else body


@dataclass(slots=True)
class ForwardedStream:
    """A pass-through stream to relay: either the endpoint's refusal (``refused``, a 4xx
    reply) or its SSE bytes, recorded when iteration ends, however it ends."""

    refused: Forwarded | None
    relay: RelayStream | None
    forwarder: Forwarder
    plan: Plan
    charge: Charge
    # The request as the gateway read it: its prompt's upper bound is charged when the
    # endpoint never reports usage (worked out only then: most streams report).
    request: GenerationRequest | None = None

    async def events(self) -> AsyncIterator[bytes]:
        """The endpoint's events; when the endpoint fails after the stream began (cut off,
        timed out), an OpenAI-shaped error event and ``[DONE]`` end it, as they end a
        strategy's stream, rather than a dropped connection. The ledger is written first."""
        assert self.relay is not None
        ok = False
        error: BaseException | None = None
        try:
            async with self.relay:
                reported = None
                async for data in bounded(aiter(self.relay), self.plan.deadline):
                    if self.relay.reported is not reported:
                        # Usage on every chunk (vLLM's continuous_usage_stats): kept in the
                        # journal as it comes, so a killed process still knows it.
                        reported = self.relay.reported
                        self.charge.progress(self.relay.usage)
                    yield data
                ok = self.relay.finished
        except PonderError as exc:
            error = exc  # the status line has gone: the failure is told in the stream
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.charge.end(self._spent(), error)
            with anyio.CancelScope(shield=True):
                await self.forwarder.end(self.plan, error, ok)
        if isinstance(error, PonderError):
            yield error_event(error)
            yield b"data: [DONE]\n\n"

    def _spent(self) -> Usage:
        """What the stream spent: the endpoint's last report, or, where it sent none (a
        stream cut before its usage chunk, an endpoint that ignores include_usage), an
        estimate that errs high: the prompt's upper bound and one token per delta of
        generated text. A stream the endpoint never answered charges nothing. Noted in the
        request's ledger row, so an estimate is never mistaken for a count."""
        relay = self.relay
        assert relay is not None
        if relay.reported is not None or not relay.received:
            return relay.usage
        bound = self.request.prompt_token_bound() if self.request is not None else 0
        estimate = Usage(prompt_tokens=bound, completion_tokens=relay.generated, calls=1)
        self.plan.log.events.append(
            f"usage estimated: the endpoint reported none; prompt {bound} "
            f"(its upper bound), completion {relay.generated} (deltas received)"
        )
        return estimate


def error_event(error: PonderError) -> bytes:
    """The SSE event for an error after a stream began (the body of an error reply)."""
    detail = {
        "message": error.message,
        "type": error.error_type,
        "param": error.param,
        "code": error.code,
    }
    return b"data: " + json.dumps({"error": detail}, separators=(",", ":")).encode() + b"\n\n"
