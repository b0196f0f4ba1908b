"""A streamed response: the deltas of a :class:`~ponder.gateway.reply.ReplyStream` as the
Responses API's typed events, numbered in order.

The reasoning item (the model's thinking, and what the strategy did) comes first. When a
strategy runs it is opened at once and closed last, because what the strategy decided is
known only at the end; otherwise it closes when the answer starts. The message and each
function call are items of their own, opened as their first delta arrives. The stream ends
with the whole response in ``response.completed``, ``response.incomplete`` (the model hit
``max_output_tokens``) or ``response.failed`` (a failure after the stream began), after the
response is stored, so that a client may retrieve or continue it as soon as it has read it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from ponder.errors import PonderError
from ponder.gateway.reply import Reply
from ponder.gateway.response_items import (
    new_id,
    status_of,
    summary_of,
    tool_call_limit,
    usage_of,
)
from ponder.gateway.responses import Opened, Responses
from ponder.protocol.response_events import (
    ArgumentsDelta,
    ArgumentsDone,
    ContentPartEvent,
    OutputItemEvent,
    ReasoningTextDelta,
    ReasoningTextDone,
    ResponseLifecycle,
    StreamEvent,
    SummaryPartEvent,
    SummaryTextDelta,
    SummaryTextDone,
    TextDelta,
    TextDone,
)
from ponder.protocol.responses import (
    ItemStatus,
    OutputFunctionCall,
    OutputItem,
    OutputMessage,
    OutputReasoning,
    OutputText,
    ReasoningText,
    ResponseError,
    SummaryText,
)
from ponder.types import Delta


async def response_events(responses: Responses, opened: Opened) -> AsyncIterator[StreamEvent]:
    """Every event of one streamed response, the last one after the response is stored."""
    turn, stream = opened.turn, opened.stream
    items = _Items(
        strategy=stream.plan.selection.spec is not None,
        keep_calls=tool_call_limit(turn.request.parallel_tool_calls, turn.request.max_tool_calls),
    )
    shell = turn.response("in_progress")
    yield items.stamp(ResponseLifecycle(type="response.created", response=shell))
    yield items.stamp(ResponseLifecycle(type="response.in_progress", response=shell))
    failure: PonderError | None = None
    try:
        for event in items.begin():
            yield event
        if opened.first is not None:
            for event in items.add(opened.first):
                yield event
        async for delta in opened.deltas:
            for event in items.add(delta):
                yield event
    except PonderError as exc:
        failure = exc
    finally:
        await stream.aclose()
    reply = stream.reply
    for event in items.close(reply, failed=failure is not None):
        yield event
    if failure is None:
        choice = reply.choices[0] if reply.choices else None
        response = turn.finished(reply, items.output(), choice.finish_reason if choice else None)
    else:
        response = turn.response(
            "failed",
            error=ResponseError(message=failure.message),
            output=items.output(),
            usage=usage_of(reply.usage),
        )
    await responses.save(turn, response)
    kind = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(
        response.status, "response.failed"
    )
    yield items.stamp(ResponseLifecycle(type=kind, response=response))  # type: ignore[arg-type]


class _Items:
    """The output items of one stream as they grow, and the events that say so."""

    def __init__(self, *, strategy: bool, keep_calls: int | None) -> None:
        self.strategy = strategy
        self.keep_calls = keep_calls
        self.sequence = 0
        self.items: list[OutputItem] = []
        self.open: set[int] = set()
        self.reasoning: int | None = None
        self.message: int | None = None
        self.thinking = ""
        self.text = ""
        self.calls: dict[Any, int] = {}  # a tool call's stream index -> its output index
        self.arguments: dict[int, str] = {}

    def stamp(self, event: StreamEvent) -> StreamEvent:
        event.sequence_number = self.sequence
        self.sequence += 1
        return event

    def output(self) -> list[OutputItem]:
        return list(self.items)

    def _added(self, item: OutputItem) -> Iterator[StreamEvent]:
        index = len(self.items)
        self.items.append(item)
        self.open.add(index)
        yield self.stamp(
            OutputItemEvent(type="response.output_item.added", output_index=index, item=item)
        )

    def _done(self, index: int, item: OutputItem) -> Iterator[StreamEvent]:
        self.items[index] = item
        self.open.discard(index)
        yield self.stamp(
            OutputItemEvent(type="response.output_item.done", output_index=index, item=item)
        )

    def begin(self) -> Iterator[StreamEvent]:
        if self.strategy:  # what it did is summarized in this item at the end
            yield from self._open_reasoning()

    def _open_reasoning(self) -> Iterator[StreamEvent]:
        self.reasoning = len(self.items)
        yield from self._added(OutputReasoning(id=new_id("rs"), summary=[], status="in_progress"))

    def add(self, delta: Delta) -> Iterator[StreamEvent]:
        if delta.index != 0:  # a Responses request asks for one choice
            return
        if delta.reasoning:
            if self.reasoning is None:
                yield from self._open_reasoning()
            if self.reasoning in self.open:
                self.thinking += delta.reasoning
                item_id = self.items[self.reasoning].id
                yield self.stamp(
                    ReasoningTextDelta(
                        item_id=item_id, output_index=self.reasoning, delta=delta.reasoning
                    )
                )
        if (delta.text or delta.tool_calls) and not self.strategy:
            yield from self._close_reasoning(None)
        if delta.text:
            yield from self._add_text(delta.text)
        for position, raw in enumerate(delta.tool_calls or ()):
            yield from self._add_call(raw.get("index", position), raw)

    def _add_text(self, text: str) -> Iterator[StreamEvent]:
        if self.message is None:
            self.message = len(self.items)
            message = OutputMessage(id=new_id("msg"), status="in_progress", content=[])
            yield from self._added(message)
            yield self.stamp(
                ContentPartEvent(
                    type="response.content_part.added",
                    item_id=message.id,
                    output_index=self.message,
                    part=OutputText(text=""),
                )
            )
        self.text += text
        item_id = self.items[self.message].id
        yield self.stamp(TextDelta(item_id=item_id, output_index=self.message, delta=text))

    def _add_call(self, key: Any, raw: Mapping[str, Any]) -> Iterator[StreamEvent]:
        fn = raw.get("function") or {}
        fragment = fn.get("arguments") or ""
        if not isinstance(fragment, str):
            fragment = json.dumps(fragment)
        index = self.calls.get(key)
        if index is None:
            if self.keep_calls is not None and len(self.calls) >= self.keep_calls:
                return  # past parallel_tool_calls=false or max_tool_calls: not kept
            index = self.calls[key] = len(self.items)
            call = OutputFunctionCall(
                id=new_id("fc"),
                call_id=str(raw.get("id") or new_id("call")),
                name=str(fn.get("name") or ""),
                arguments="",
                status="in_progress",
            )
            self.arguments[index] = ""
            yield from self._added(call)
        if fragment:
            self.arguments[index] += fragment
            yield self.stamp(
                ArgumentsDelta(item_id=self.items[index].id, output_index=index, delta=fragment)
            )

    def close(self, reply: Reply, *, failed: bool) -> Iterator[StreamEvent]:
        """Finish every item still open, in order; the reasoning item with the summary."""
        choice = reply.choices[0] if reply.choices else None
        status, _ = status_of(choice.finish_reason if choice else None)
        done: ItemStatus = "completed" if status == "completed" and not failed else "incomplete"
        if self.message is not None:
            yield from self._close_message(done)
        for index in sorted(self.arguments):
            call = self.items[index]
            assert isinstance(call, OutputFunctionCall)
            arguments = self.arguments[index]
            yield self.stamp(
                ArgumentsDone(
                    item_id=call.id, output_index=index, arguments=arguments, name=call.name
                )
            )
            finished = call.model_copy(update={"arguments": arguments, "status": done})
            yield from self._done(index, finished)
        yield from self._close_reasoning(reply if not failed else None)
        if not self.items and not failed:
            # Nothing was said: the response still has its (empty) message.
            yield from self._add_text("")
            yield from self._close_message(done)

    def _close_message(self, status: ItemStatus) -> Iterator[StreamEvent]:
        index = self.message
        assert index is not None
        item_id = self.items[index].id
        part = OutputText(text=self.text)
        yield self.stamp(TextDone(item_id=item_id, output_index=index, text=self.text))
        yield self.stamp(
            ContentPartEvent(
                type="response.content_part.done", item_id=item_id, output_index=index, part=part
            )
        )
        message = OutputMessage(id=item_id, status=status, content=[part])
        yield from self._done(index, message)

    def _close_reasoning(self, reply: Reply | None) -> Iterator[StreamEvent]:
        index = self.reasoning
        if index is None or index not in self.open:
            return
        item_id = self.items[index].id
        summary = summary_of(reply) if reply is not None else []
        for k, part in enumerate(summary):
            yield self.stamp(
                SummaryPartEvent(
                    type="response.reasoning_summary_part.added",
                    item_id=item_id,
                    output_index=index,
                    summary_index=k,
                    part=SummaryText(text=""),
                )
            )
            yield self.stamp(
                SummaryTextDelta(
                    item_id=item_id, output_index=index, summary_index=k, delta=part.text
                )
            )
            yield self.stamp(
                SummaryTextDone(
                    item_id=item_id, output_index=index, summary_index=k, text=part.text
                )
            )
            yield self.stamp(
                SummaryPartEvent(
                    type="response.reasoning_summary_part.done",
                    item_id=item_id,
                    output_index=index,
                    summary_index=k,
                    part=part,
                )
            )
        content = None
        if self.thinking:
            yield self.stamp(
                ReasoningTextDone(item_id=item_id, output_index=index, text=self.thinking)
            )
            content = [ReasoningText(text=self.thinking)]
        item = OutputReasoning(id=item_id, summary=summary, content=content)
        yield from self._done(index, item)
