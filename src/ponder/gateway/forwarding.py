"""Pass-through requests: sent upstream as the client sent them, returned as the endpoint
answered, and recorded in the ledger with the usage the endpoint reported."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from ponder.gateway.call import ChatCall, Plan
from ponder.gateway.ledger import UsageLedger
from ponder.gateway.passthrough import Forwarded, PassThrough, RelayStream
from ponder.metering import CallLog
from ponder.types import Usage


class Forwarder:
    """The gateway's pass-through: one pooled upstream client and the ledger it records to."""

    def __init__(self, ledger: UsageLedger) -> None:
        self.ledger = ledger
        self.passthrough = PassThrough()

    async def aclose(self) -> None:
        await self.passthrough.aclose()

    async def forward(self, call: ChatCall, plan: Plan) -> Forwarded:
        """A pass-through request, sent upstream as the client sent it (model id aside) and
        returned as the endpoint answered; its usage is recorded as the endpoint reported it."""
        assert plan.upstream is not None and call.body is not None
        started = time.perf_counter()
        log = CallLog()
        charge = log.begin(plan.model)
        try:
            forwarded = await self.passthrough.forward(
                plan.upstream,
                plan.upstream.model,
                _upstream_body(call.body),
                headers=plan.upstream.headers,
            )
        except BaseException as exc:
            charge.end(Usage(), exc)
            self.ledger.record(
                plan.model, log.usage, ok=False, seconds=time.perf_counter() - started, tag=plan.tag
            )
            raise
        charge.end(forwarded.usage)
        self.ledger.record(
            plan.model,
            log.usage,
            ok=forwarded.ok,
            seconds=time.perf_counter() - started,
            tag=plan.tag,
        )
        return forwarded

    async def forward_stream(self, call: ChatCall, plan: Plan) -> ForwardedStream:
        """A pass-through stream: the endpoint's SSE bytes, relayed; recorded when it ends."""
        assert plan.upstream is not None and call.body is not None
        started = time.perf_counter()
        opened = await self.passthrough.open_stream(
            plan.upstream,
            plan.upstream.model,
            _upstream_body(call.body),
            headers=plan.upstream.headers,
        )
        if isinstance(opened, Forwarded):  # the endpoint refused: a 4xx to relay
            self.ledger.record(
                plan.model,
                opened.usage,
                ok=False,
                seconds=time.perf_counter() - started,
                tag=plan.tag,
            )
            return ForwardedStream(opened, None, self.ledger, plan, started)
        return ForwardedStream(None, opened, self.ledger, plan, started)


def _upstream_body(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The client's body less Ponder's own extension field, which no endpoint knows."""
    return {k: v for k, v in body.items() if k != "ponder"} if "ponder" in body else body


@dataclass(slots=True)
class ForwardedStream:
    """A pass-through stream to relay: either the endpoint's refusal (``refused``, a 4xx
    reply) or its SSE bytes, recorded in the ledger when iteration ends, however it ends."""

    refused: Forwarded | None
    relay: RelayStream | None
    ledger: UsageLedger
    plan: Plan
    started: float

    async def events(self) -> AsyncIterator[bytes]:
        assert self.relay is not None
        ok = False
        error: BaseException | None = None
        try:
            async with self.relay:
                async for data in self.relay:
                    yield data
                ok = self.relay.finished
        except BaseException as exc:
            error = exc
            raise
        finally:
            log = CallLog()
            log.begin(self.plan.model).end(self.relay.usage, error)
            self.ledger.record(
                self.plan.model,
                log.usage,
                ok=ok,
                seconds=time.perf_counter() - self.started,
                tag=self.plan.tag,
            )
