"""The server-side agent loop of ``/v1/responses``: model turns, with the tools Ponder runs
(its built-in tools, :mod:`ponder.tools.builtin`, and configured MCP servers' tools,
:mod:`ponder.tools.mcp`) run between them, until the model answers.

One response is a loop of *turns*. Each model turn is one gateway request through the one
path (plan, then complete: policy-checked, admitted against the budget, metered, one ledger
row with its tokens and time), so a strategy (``ponder/<strategy>/<model>``) or
``reasoning.effort`` applies to every turn, and the budget can stop the loop at any turn
(that turn's 402/429 is the response's error; the turns before it stay recorded). The
response's ``usage`` is the exact sum of its turns' usage.

After a turn whose reply calls tools:

* the built-in tools it called run, concurrently (an :class:`asyncio.TaskGroup`), and the
  assistant message with its ``tool_calls`` and one ``tool`` message per call are appended
  to the conversation; a failure the model should see (bad arguments, a crashed program, an
  unknown tool, ``max_tool_calls`` used up) is its tool message, never the request's error;
* if it also called a *client* function tool, the loop stops there and the call goes back
  to the client as a ``function_call`` item, as without built-in tools.

The loop ends when a reply calls no tool. ``max_turns`` (a Ponder extension field, default
:data:`DEFAULT_MAX_TURNS`) bounds the turns and ``max_tool_calls`` the built-in tool runs;
when either is reached, the next turn is the last and is asked *without* tools, so that
the model answers with what it has (OpenAI: further calls are ignored). ``tool_choice``
applies to the first turn only; later turns are ``auto`` (forcing a call on every turn would
never end).

A python run is a ``code_interpreter_call`` output item (OpenAI's shape, container
``ponder-sandbox``); an MCP tool's run is an ``mcp_call`` item (OpenAI's shape: the server's
label and its own name for the tool, the output or the error); any other built-in tool run
is a ``function_call`` item followed by its ``function_call_output``. Each run is also noted
(name, seconds, error or not) in the next turn's routing events, which its ledger row and
trace keep.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ponder.errors import PonderError, RequestTimeoutError, first_error
from ponder.gateway.call import ChatCall
from ponder.gateway.reply import Reply
from ponder.gateway.response_items import new_id, output_items, tool_call_limit
from ponder.protocol.response_tools import (
    CodeLogs,
    OutputCodeInterpreterCall,
    OutputFunctionCallOutput,
    OutputMcpCall,
)
from ponder.protocol.responses import OutputFunctionCall, OutputItem, OutputMessage
from ponder.tools.base import Tool, ToolResult, as_function_tool
from ponder.tools.builtin import RequestToolbox
from ponder.tools.mcp import McpTool
from ponder.tools.python import PythonTool
from ponder.types import FinishReason, Message, Usage

log = logging.getLogger(__name__)

DEFAULT_MAX_TURNS = 8
# Built-in tool calls one model turn may run (the rest are answered with an error).
MAX_CALLS_PER_TURN = 8
CONTAINER = "ponder-sandbox"  # the container_id of a code_interpreter_call

# One model turn: the call to run, and notes for its ledger row (the tool runs before it).
RunTurn = Callable[[ChatCall, Sequence[str]], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Ran:
    """One tool call of a turn and what came of it."""

    call: Mapping[str, Any]  # the chat tool call, with its id
    tool: Tool | None  # None: no built-in tool of that name
    result: ToolResult
    seconds: float

    @property
    def note(self) -> str:
        name = self.tool.name if self.tool is not None else _name(self.call)
        outcome = "error" if self.result.is_error else "ok"
        return f"tool {name}: {outcome} in {self.seconds:.3f}s"


@dataclass(frozen=True, slots=True)
class AgentOutcome:
    """The loop's end: the last turn's reply with usage, records and time summed over every
    turn, the response's output items, and why the last turn finished."""

    reply: Reply
    output: list[OutputItem]
    finish: FinishReason
    turns: int


def _name(call: Mapping[str, Any]) -> str:
    return str((call.get("function") or {}).get("name", ""))


def _arguments(call: Mapping[str, Any]) -> str:
    arguments = (call.get("function") or {}).get("arguments", "")
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


async def run_tool(tool: Tool | None, call: Mapping[str, Any]) -> Ran:
    """Run one call; what the model did wrong is an error result it reads."""
    started = time.perf_counter()
    if tool is None:
        result = ToolResult(f"error: there is no tool named {_name(call)!r}", is_error=True)
        return Ran(call, None, result, 0.0)
    try:
        arguments = json.loads(_arguments(call) or "{}")
    except json.JSONDecodeError as exc:
        arguments = exc
    if not isinstance(arguments, dict):
        result = ToolResult("error: the arguments are not a JSON object", is_error=True)
        return Ran(call, tool, result, 0.0)
    try:
        result = await tool.call(arguments)
    except PonderError:
        raise  # Ponder's own failure (a sandbox that cannot start): the request's error
    except Exception as exc:
        # A tool's bug must not end the response; it is logged for the operator.
        log.exception("built-in tool %s failed", tool.name)
        result = ToolResult(f"error: the tool failed ({type(exc).__name__})", is_error=True)
    return Ran(call, tool, result, time.perf_counter() - started)


def tool_items(ran: Ran) -> list[OutputItem]:
    """A tool run as output items."""
    if isinstance(ran.tool, PythonTool):
        code = ran.result.details.get("code")
        return [
            OutputCodeInterpreterCall(
                id=new_id("ci"),
                code=code if isinstance(code, str) else _arguments(ran.call),
                container_id=CONTAINER,
                outputs=[CodeLogs(logs=ran.result.output)],
                status="failed" if ran.result.is_error else "completed",
            )
        ]
    if isinstance(ran.tool, McpTool):
        failed = ran.result.is_error
        return [
            OutputMcpCall(
                id=new_id("mcp"),
                server_label=ran.tool.server.name,
                name=ran.tool.remote_name,
                arguments=_arguments(ran.call),
                output=None if failed else ran.result.output,
                # OpenAI's error shape, holding the very text the model read.
                error={
                    "type": "mcp_tool_execution_error",
                    "content": [{"type": "text", "text": ran.result.output}],
                }
                if failed
                else None,
                status="failed" if failed else "completed",
            )
        ]
    call_id = str(ran.call["id"])
    return [
        OutputFunctionCall(
            id=new_id("fc"), call_id=call_id, name=_name(ran.call), arguments=_arguments(ran.call)
        ),
        OutputFunctionCallOutput(id=new_id("fco"), call_id=call_id, output=ran.result.output),
    ]


class AgentLoop:
    """One response's turns; built per request."""

    def __init__(
        self,
        toolbox: RequestToolbox,
        run_turn: RunTurn,
        *,
        max_turns: int | None,
        max_tool_calls: int | None,
        parallel_tool_calls: bool | None,
        client_functions: Iterable[str] = (),
        notes: Sequence[str] = (),
    ) -> None:
        self.toolbox = toolbox
        self.client = frozenset(client_functions)  # function tools the client runs
        self.run_turn = run_turn
        self.max_turns = max_turns or DEFAULT_MAX_TURNS
        self.calls_left = max_tool_calls  # None: no limit
        self.per_turn = tool_call_limit(parallel_tool_calls, None)
        self.notes = list(notes)  # for the first turn's ledger row (a server that was down)

    async def run(self, call: ChatCall) -> AgentOutcome:
        request = call.request
        messages = list(request.messages)
        output: list[OutputItem] = []
        replies: list[Reply] = []
        notes = self.notes
        started = time.perf_counter()
        for turn in range(1, self.max_turns + 1):
            left = self._time_left(call, started)
            last = turn == self.max_turns or self.calls_left == 0
            asked = request.replace(
                messages=tuple(messages),
                tools=None if last else request.tools,
                tool_choice=None if last else (request.tool_choice if turn == 1 else "auto"),
            )
            reply = await self.run_turn(
                dataclasses.replace(call, request=asked, timeout=left), notes
            )
            replies.append(reply)
            choice = reply.choices[0] if reply.choices else None
            calls = [] if last or choice is None else list(choice.tool_calls or ())
            if self.per_turn is not None:
                calls = calls[: self.per_turn]
            if not calls:
                items, finish = output_items(reply, keep_calls=0)
                return self._outcome(replies, [*output, *items], finish, started)
            calls = [{**c, "id": str(c.get("id") or new_id("call"))} for c in calls]
            items, _ = output_items(reply, keep_calls=len(calls))
            # The turn's reasoning and words; its calls are re-made below, in call order.
            output.extend(i for i in items if not isinstance(i, OutputFunctionCall) and _said(i))
            try:
                async with asyncio.timeout(self._time_left(call, started)):
                    ran, client = await self._run_calls(calls)
            except TimeoutError:
                raise _past_timeout(call) from None
            notes = [r.note for r in ran]
            for r in ran:
                output.extend(tool_items(r))
            if client:
                output.extend(_client_call(c) for c in client)
                assert choice is not None
                return self._outcome(replies, output, choice.finish_reason, started)
            messages.append(
                Message("assistant", choice.text if choice else "", tool_calls=tuple(calls))
            )
            messages.extend(
                Message("tool", r.result.output, tool_call_id=str(r.call["id"])) for r in ran
            )
        raise AssertionError("the last turn is asked without tools")  # pragma: no cover

    async def _run_calls(
        self, calls: list[Mapping[str, Any]]
    ) -> tuple[list[Ran], list[Mapping[str, Any]]]:
        """Run the turn's built-in calls concurrently; return them and the client's calls."""
        builtin = {t.name for t in self.toolbox.tools}
        client = [c for c in calls if _name(c) not in builtin and _name(c) in self.client]
        # Built-in calls, and calls of no tool at all (answered with an error to the model).
        mine = [c for c in calls if c not in client]
        planned: list[tuple[Mapping[str, Any], Tool | None, ToolResult | None]] = []
        for k, c in enumerate(mine):
            tool = self.toolbox.get(_name(c))
            if k >= MAX_CALLS_PER_TURN:
                # A model told to (or tricked into) calling a tool a hundred times at once
                # does not get a hundred programs: the rest are answered with an error.
                over = f"error: not run: at most {MAX_CALLS_PER_TURN} tool calls per turn"
                planned.append((c, tool, ToolResult(over, is_error=True)))
                continue
            if tool is not None and self.calls_left is not None:
                if self.calls_left <= 0:
                    limit = ToolResult("error: not run: max_tool_calls is used up", is_error=True)
                    planned.append((c, tool, limit))
                    continue
                self.calls_left -= 1
            planned.append((c, tool, None))
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(run_tool(tool, c)) if done is None else None
                    for c, tool, done in planned
                ]
        except* PonderError as failed:  # Ponder's own failure (no sandbox): its own status
            raise first_error(failed) from None
        ran = [
            task.result() if task is not None else Ran(c, tool, done or ToolResult(""), 0.0)
            for (c, tool, done), task in zip(planned, tasks, strict=True)
        ]
        return ran, client

    @staticmethod
    def _time_left(call: ChatCall, started: float) -> float | None:
        """What is left of the response's timeout (its turns and tool runs share it)."""
        if call.timeout is None:
            return None
        left = call.timeout - (time.perf_counter() - started)
        if left <= 0:
            raise _past_timeout(call)
        return left

    def _outcome(
        self, replies: list[Reply], output: list[OutputItem], finish: FinishReason, started: float
    ) -> AgentOutcome:
        last = replies[-1]
        total = dataclasses.replace(
            last,
            usage=Usage.sum([r.usage for r in replies]),
            records=tuple(rec for r in replies for rec in r.records),
            seconds=time.perf_counter() - started,
        )
        return AgentOutcome(total, output, finish, len(replies))


def _said(item: OutputItem) -> bool:
    """Whether an item of a tool-calling turn is worth showing (not an empty message)."""
    return not isinstance(item, OutputMessage) or any(p.text for p in item.content)


def _client_call(call: Mapping[str, Any]) -> OutputFunctionCall:
    return OutputFunctionCall(
        id=new_id("fc"), call_id=str(call["id"]), name=_name(call), arguments=_arguments(call)
    )


def builtin_functions(toolbox: RequestToolbox) -> tuple[dict[str, Any], ...]:
    """The tools Ponder runs as the model sees them (chat function tools)."""
    return tuple(as_function_tool(t) for t in toolbox.tools)


def _past_timeout(call: ChatCall) -> RequestTimeoutError:
    return RequestTimeoutError(
        f"the response ran past its timeout of {call.timeout:g} s and was stopped (each "
        "model turn it finished is in the ledger)"
    )
