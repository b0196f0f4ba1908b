"""OpenAI's Responses API on top of the gateway's one chat path.

A ``/v1/responses`` request becomes a :class:`~ponder.gateway.call.ChatCall` and runs through
:class:`~ponder.gateway.Gateway` like any chat request (planned, admitted against budgets,
metered, recorded in the ledger); this module adds only what the Responses API has and chat
does not:

* **state**: a response made with ``store`` (the default) is kept in the tenancy database
  (:mod:`ponder.tenancy.responses`) under its caller's key and team; ``previous_response_id``
  rebuilds the conversation from the stored chain (every earlier input and output item,
  function calls and their outputs included; ``instructions`` are not carried over);
* **refusals before any token is spent**: fields Ponder cannot honour are a 400 while the
  request is prepared (:meth:`Responses.prepare`), never a silent difference;
* ``truncation: "auto"``: a conversation that does not fit the model's context loses its
  oldest turns, one at a time, until it fits (each try is its own metered request).

Who may read a stored response is decided as for traces (:meth:`Caller.sees`): its own key,
its team's admin key, and the admin; anyone else gets the 404 of a response that does not
exist.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import anyio

from ponder.errors import (
    ContextOverflowError,
    InvalidRequestError,
    ResponseNotFoundError,
)
from ponder.gateway.agent import AgentLoop, builtin_functions
from ponder.gateway.call import ChatCall, Plan
from ponder.gateway.identity import Caller
from ponder.gateway.reply import Reply, ReplyStream
from ponder.gateway.response_items import (
    new_id,
    normalize_input,
    output_items,
    status_of,
    to_messages,
    tool_call_limit,
    usage_of,
)
from ponder.gateway.response_request import (
    drop_oldest_turn,
    generation_request,
    refuse_unsupported,
)
from ponder.gateway.response_tools import RequestTools, echoed, open_tools
from ponder.gateway.service import Gateway
from ponder.metering import MAX_EVENTS
from ponder.protocol.responses import (
    InputItemList,
    OutputItem,
    ResponseObject,
    ResponsesRequest,
    ResponseStatus,
    TextConfig,
)
from ponder.tenancy.responses import StoredResponse
from ponder.types import Delta, FinishReason

T = TypeVar("T")

# The most turns truncation="auto" drops before it gives up (each drop is another try).
MAX_TRUNCATIONS = 32


@dataclass(frozen=True, slots=True)
class Turn:
    """One prepared request: its id, the chat call it runs as, its own input items, and the
    echo of its parameters every response object carries."""

    id: str
    request: ResponsesRequest
    call: ChatCall
    input_items: list[dict[str, Any]]
    context: list[dict[str, Any]]  # the earlier responses' items, oldest first
    created_at: float = field(default_factory=lambda: float(int(time.time())))
    # The server-side tools it named, for the agent loop (None: none named).
    tools: RequestTools | None = None

    @property
    def store(self) -> bool:
        return self.request.store is not False

    def response(self, status: ResponseStatus, **fields: Any) -> ResponseObject:
        """The response object with this turn's parameters echoed and ``fields`` set."""
        r = self.request
        tools = [echoed(t.model_dump(exclude_none=True)) for t in r.tools or ()]
        choice = r.tool_choice
        return ResponseObject.model_validate(
            {
                "id": self.id,
                "created_at": self.created_at,
                "status": status,
                "instructions": r.instructions,
                "max_output_tokens": r.max_output_tokens,
                "max_tool_calls": r.max_tool_calls,
                "model": r.model,
                "parallel_tool_calls": r.parallel_tool_calls is not False,
                "previous_response_id": r.previous_response_id,
                "reasoning": r.reasoning,
                "store": self.store,
                "temperature": r.temperature,
                "text": r.text or TextConfig.model_validate({"format": {"type": "text"}}),
                "tool_choice": choice.model_dump(exclude_none=True)
                if choice is not None and not isinstance(choice, str)
                else (choice or "auto"),
                "tools": tools,
                "top_p": r.top_p,
                "truncation": r.truncation or "disabled",
                "user": r.user,
                "metadata": r.metadata or {},
                **fields,
            }
        )

    def finished(
        self, reply: Reply, output: list[OutputItem], finish: FinishReason | None
    ) -> ResponseObject:
        status, incomplete = status_of(finish)
        return self.response(
            status,
            incomplete_details=incomplete,
            output=output,
            usage=usage_of(reply.usage),
            ponder=reply.info(),
        )


@dataclass(frozen=True, slots=True)
class Opened:
    """A started stream, its first delta already taken (so that a request that cannot run
    fails before the first byte)."""

    turn: Turn
    stream: ReplyStream
    deltas: AsyncIterator[Delta]
    first: Delta | None


class Responses:
    """The Responses API over one gateway; holds nothing of its own."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    # -- prepare ----------------------------------------------------------------------------
    async def prepare(
        self,
        request: ResponsesRequest,
        caller: Caller,
        *,
        local_only: bool = False,
        seconds: float | None = None,
    ) -> Turn:
        """Check what Ponder cannot honour (a 400), rebuild the conversation from
        ``previous_response_id`` (a 404 if it is not the caller's to continue), and build the
        chat call; nothing has run yet."""
        refuse_unsupported(request)
        context: list[dict[str, Any]] = []
        if request.previous_response_id is not None:
            context = await self._context(request.previous_response_id, caller)
        items = normalize_input(request.input)
        if not items and not context:
            raise InvalidRequestError("input is required", param="input")
        messages = to_messages([*context, *items], request.instructions)
        if not messages or all(m.role == "system" for m in messages):
            raise InvalidRequestError("input has no message for the model", param="input")
        tools = await open_tools(self.gateway, request, caller, local_only=local_only)
        call = ChatCall(
            model=request.model,
            request=generation_request(
                request, messages, builtin_functions(tools.toolbox) if tools is not None else ()
            ),
            ponder=request.ponder,
            reasoning_effort=request.reasoning.effort if request.reasoning else None,
            caller=caller,
            local_only=local_only,
            timeout=seconds,  # the whole response's: an agent loop's turns share it
        )
        return Turn(new_id("resp"), request, call, items, context, tools=tools)

    async def _context(self, response_id: str, caller: Caller) -> list[dict[str, Any]]:
        store = self.gateway.accounts.store
        chain = await store.responses.chain(response_id) if store is not None else None
        if chain is None or not chain.rows or not caller.sees(*_owner(chain.rows[-1])):
            raise ResponseNotFoundError(
                f"previous response {response_id!r} not found", param="previous_response_id"
            )
        if not chain.complete:
            raise ResponseNotFoundError(
                f"a response earlier in the conversation of {response_id!r} was deleted, so "
                "it cannot be continued",
                param="previous_response_id",
            )
        return [item for row in chain.rows for item in (*row.input_items, *row.output)]

    # -- run --------------------------------------------------------------------------------
    async def create(self, turn: Turn) -> tuple[ResponseObject, Reply]:
        """Run the request to its end, store it (unless ``store`` is false), and return the
        response object."""

        async def run(call: ChatCall) -> Reply:
            return await self.gateway.complete(call, await self.gateway.plan(call))

        if turn.tools is not None:
            return await self._agent(turn, turn.tools)
        reply = await self._fitting(turn, run)
        keep = tool_call_limit(turn.request.parallel_tool_calls, turn.request.max_tool_calls)
        output, finish = output_items(reply, keep_calls=keep)
        response = turn.finished(reply, output, finish)
        await self.save(turn, response)
        return response, reply

    async def _agent(self, turn: Turn, tools: RequestTools) -> tuple[ResponseObject, Reply]:
        """The agent loop (:mod:`ponder.gateway.agent`): each model turn one gateway request;
        the response starts with what each MCP server it named offered."""

        async def run_turn(call: ChatCall, notes: Sequence[str]) -> Reply:
            async def run(fitted: ChatCall) -> Reply:
                plan = await self.gateway.plan(fitted)
                # The tool runs before this turn, kept with its ledger row and trace.
                plan.log.events.extend(notes[: MAX_EVENTS - len(plan.log.events)])
                return await self.gateway.complete(fitted, plan)

            return await self._fitting(dataclasses.replace(turn, call=call), run)

        request = turn.request
        loop = AgentLoop(
            tools.toolbox,
            run_turn,
            max_turns=request.max_turns,
            max_tool_calls=request.max_tool_calls,
            parallel_tool_calls=request.parallel_tool_calls,
            client_functions=[
                t.name for t in request.tools or () if t.type == "function" and t.name
            ],
            notes=tools.notes,
        )
        try:
            outcome = await loop.run(turn.call)
        finally:
            await tools.toolbox.aclose()
        output = [*tools.listed, *outcome.output]
        response = turn.finished(outcome.reply, output, outcome.finish)
        await self.save(turn, response)
        return response, outcome.reply

    async def open(self, turn: Turn) -> Opened:
        """Plan, start the stream and take its first delta."""

        async def start(call: ChatCall) -> Opened:
            plan: Plan = await self.gateway.plan(call)
            stream = await self.gateway.stream(call, plan)
            deltas = aiter(stream)
            try:
                first: Delta | None = await anext(deltas)
            except StopAsyncIteration:
                first = None
            return Opened(dataclasses.replace(turn, call=call), stream, deltas, first)

        return await self._fitting(turn, start)

    async def _fitting(self, turn: Turn, run: Callable[[ChatCall], Awaitable[T]]) -> T:
        """``run`` the turn's call; with ``truncation: "auto"``, again without its oldest
        turn each time the conversation does not fit the model's context."""
        call = turn.call
        for _ in range(MAX_TRUNCATIONS):
            try:
                return await run(call)
            except ContextOverflowError:
                shorter = drop_oldest_turn(call.request.messages)
                if turn.request.truncation != "auto" or shorter is None:
                    raise
                call = dataclasses.replace(call, request=call.request.replace(messages=shorter))
        return await run(call)

    async def save(self, turn: Turn, response: ResponseObject) -> None:
        """Store the response (when asked to), whatever a disconnect does meanwhile."""
        store = self.gateway.accounts.store
        if not turn.store or store is None:
            return
        body = response.wire()
        row = StoredResponse(
            id=response.id,
            key_id=turn.call.caller.key_id,
            team=turn.call.caller.team_name,
            created_at=datetime.fromtimestamp(response.created_at, UTC),
            model=response.model,
            status=response.status,
            previous_response_id=response.previous_response_id,
            request={k: v for k, v in body.items() if k not in _ROW_FIELDS},
            input_items=turn.input_items,
            output=body["output"],
            usage=body["usage"],
        )
        with anyio.CancelScope(shield=True):
            await store.responses.put(row)

    # -- stored responses -------------------------------------------------------------------
    async def _row(self, response_id: str, caller: Caller) -> StoredResponse:
        store = self.gateway.accounts.store
        row = await store.responses.get(response_id) if store is not None else None
        if row is None or not caller.sees(*_owner(row)):
            raise ResponseNotFoundError(f"response {response_id!r} not found", param="response_id")
        return row

    async def retrieve(self, response_id: str, caller: Caller) -> ResponseObject:
        row = await self._row(response_id, caller)
        return ResponseObject.model_validate(
            {
                **row.request,
                "id": row.id,
                "created_at": row.created_at.timestamp(),
                "status": row.status,
                "model": row.model,
                "previous_response_id": row.previous_response_id,
                "output": row.output,
                "usage": row.usage,
            }
        )

    async def delete(self, response_id: str, caller: Caller) -> None:
        row = await self._row(response_id, caller)
        store = self.gateway.accounts.store
        assert store is not None  # _row found it there
        await store.responses.delete(row.id)

    async def input_items(
        self,
        response_id: str,
        caller: Caller,
        *,
        limit: int = 20,
        order: Literal["asc", "desc"] = "desc",
        after: str | None = None,
    ) -> InputItemList:
        """The items the response was made from (the earlier responses' items, then its own
        input), a page at a time: ``after`` an item id, in ``order``."""
        row = await self._row(response_id, caller)
        items = list(row.input_items)
        if row.previous_response_id is not None:
            store = self.gateway.accounts.store
            assert store is not None
            chain = await store.responses.chain(row.previous_response_id)
            items = [i for r in chain.rows for i in (*r.input_items, *r.output)] + items
        if order == "desc":
            items.reverse()
        if after is not None:
            ids = [i.get("id") for i in items]
            if after not in ids:
                raise InvalidRequestError(f"no item {after!r} in this response", param="after")
            items = items[ids.index(after) + 1 :]
        page = items[:limit]
        return InputItemList(
            data=page,
            first_id=page[0]["id"] if page else None,
            last_id=page[-1]["id"] if page else None,
            has_more=len(items) > len(page),
        )


# The response object's own fields, kept in their columns; the rest is the "request" JSON.
_ROW_FIELDS = frozenset(
    {"id", "object", "created_at", "status", "model", "previous_response_id", "output", "usage"}
)


def _owner(row: StoredResponse) -> tuple[str | None, str | None]:
    return row.key_id, row.team
