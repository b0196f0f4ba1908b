"""A chat request as the gateway sees it (no HTTP), and what it resolved to."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast, get_args

from ponder.backends.base import Backend
from ponder.errors import InvalidRequestError
from ponder.gateway.deadline import Deadline
from ponder.gateway.identity import Caller
from ponder.metering import CallLog
from ponder.reasoning.runner import StrategySpec
from ponder.reasoning.selection import Selection
from ponder.routing.backend import RoutedBackend
from ponder.tenancy.models import Reservation
from ponder.types import GenerationRequest, Message, Role

ROLES = frozenset(get_args(Role))


@dataclass(frozen=True, slots=True)
class ChatCall:
    """One chat request, as the gateway sees it: no HTTP."""

    model: str  # as the caller named it: "m", "ponder/<strategy>/m", "m#tag"
    request: GenerationRequest
    ponder: Mapping[str, Any] | None = None  # the strategy choice, if the caller made one
    reasoning_effort: str | None = None
    # The client's JSON body as sent: a request no strategy applies to, for a remote model,
    # goes upstream as this (see ponder.gateway.passthrough).
    body: Mapping[str, Any] | None = None
    caller: Caller = field(default_factory=Caller.local)
    # Keep every hop of this request on deployments with ``local = true``.
    local_only: bool = False
    # Seconds the request may run (see ponder.gateway.deadline); None: no bound.
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    """What a request was let in with: its reservation (None when nothing is reserved: the
    admin, the single local user, or a key with no budget) and the tokens every call it
    makes must fit in (None: no cap)."""

    reservation: Reservation | None = None
    cap_tokens: int | None = None


@dataclass(slots=True)
class Plan:
    """What a call resolved to: the strategy (if any), the model and its backends, what it
    was admitted with, and the log its calls record into."""

    selection: Selection
    model: str  # canonical
    tag: str
    backend: Backend  # the request's model, or the strategy running over it
    # The request's model, routed (before a strategy or a spending cap wraps it).
    routed: RoutedBackend | None = None
    named: dict[str, RoutedBackend] = field(default_factory=dict)
    # Set when the request is forwarded as the client sent it: the routed model, whose
    # deployments (all remote) the pass-through walks.
    upstream: RoutedBackend | None = None
    caller: Caller = field(default_factory=Caller.local)
    admission: Admission = field(default_factory=Admission)
    log: CallLog = field(default_factory=CallLog)
    started: float = field(default_factory=time.perf_counter)
    # When its work is cancelled for running past its timeout (None: never).
    deadline: Deadline | None = None
    # The request's id: its ledger row's and its log record's.
    request_id: str = field(default_factory=lambda: f"req-{uuid.uuid4().hex}")

    @property
    def spec(self) -> StrategySpec | None:
        return self.selection.spec


def as_messages(messages: str | Sequence[Mapping[str, str] | Message]) -> tuple[Message, ...]:
    if isinstance(messages, str):
        return (Message("user", messages),)
    out: list[Message] = []
    for m in messages:
        if isinstance(m, Message):
            out.append(m)
            continue
        role = m.get("role")
        if role not in ROLES:
            raise InvalidRequestError(f"unknown message role {role!r}", param="messages")
        out.append(Message(cast(Role, role), str(m.get("content", ""))))
    return tuple(out)


def unhonoured(request: GenerationRequest) -> list[str]:
    """Fields a strategy cannot honour: it returns its own text, one answer per choice,
    without logprobs, tool calls or a forced format."""
    return [
        what
        for what, asked in (
            ("tools", bool(request.tools)),
            ("tool_choice", request.tool_choice not in (None, "none", "auto")),
            ("logprobs", request.sampling.logprobs),
            ("response_format", request.json_schema is not None or request.json_object),
        )
        if asked
    ]


# Body fields with which an endpoint (an aggregator: OpenRouter, a LiteLLM proxy) picks a
# model itself: forwarded, they would reach models the policy never saw.
UPSTREAM_ROUTING = frozenset({"models", "route", "fallbacks"})


def refuse_upstream_routing(call: ChatCall) -> None:
    """A 400 for a body that would let the endpoint choose the model."""
    if call.body is not None and (chosen := UPSTREAM_ROUTING.intersection(call.body)):
        field = sorted(chosen)[0]
        raise InvalidRequestError(
            f"{field!r} would let the endpoint choose another model, which Ponder's "
            "policy could not check; name the model in 'model' (fallbacks are Ponder's)",
            param=field,
        )
