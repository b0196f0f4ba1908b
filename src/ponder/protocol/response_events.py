"""The events of a streamed response (``/v1/responses`` with ``stream: true``), as the openai
SDK's ``ResponseStreamEvent`` union names them. Each carries its ``type`` and a
``sequence_number`` that increases by one per event of a stream.

A stream is ``response.created``, ``response.in_progress``, then per output item
``response.output_item.added`` … ``response.output_item.done`` (with the content, text,
arguments and reasoning events of that item between), and one final ``response.completed``,
``response.incomplete`` or ``response.failed`` carrying the whole response.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ponder.protocol.responses import (
    OutputItem,
    OutputText,
    ReasoningText,
    ResponseObject,
    SummaryText,
)


class StreamEvent(BaseModel):
    type: str
    sequence_number: int = 0


class ResponseLifecycle(StreamEvent):
    type: Literal[
        "response.created",
        "response.in_progress",
        "response.completed",
        "response.incomplete",
        "response.failed",
    ]
    response: ResponseObject

    def wire(self) -> dict[str, Any]:
        return {**self.model_dump(exclude={"response"}), "response": self.response.wire()}


class OutputItemEvent(StreamEvent):
    type: Literal["response.output_item.added", "response.output_item.done"]
    output_index: int
    item: OutputItem


class ContentPartEvent(StreamEvent):
    type: Literal["response.content_part.added", "response.content_part.done"]
    item_id: str
    output_index: int
    content_index: int = 0
    part: OutputText


class TextDelta(StreamEvent):
    type: Literal["response.output_text.delta"] = "response.output_text.delta"
    item_id: str
    output_index: int
    content_index: int = 0
    delta: str
    logprobs: list[dict[str, Any]] = Field(default_factory=list)


class TextDone(StreamEvent):
    type: Literal["response.output_text.done"] = "response.output_text.done"
    item_id: str
    output_index: int
    content_index: int = 0
    text: str
    logprobs: list[dict[str, Any]] = Field(default_factory=list)


class ArgumentsDelta(StreamEvent):
    type: Literal["response.function_call_arguments.delta"] = (
        "response.function_call_arguments.delta"
    )
    item_id: str
    output_index: int
    delta: str


class ArgumentsDone(StreamEvent):
    type: Literal["response.function_call_arguments.done"] = "response.function_call_arguments.done"
    item_id: str
    output_index: int
    arguments: str
    name: str | None = None


class ReasoningTextDelta(StreamEvent):
    type: Literal["response.reasoning_text.delta"] = "response.reasoning_text.delta"
    item_id: str
    output_index: int
    content_index: int = 0
    delta: str


class ReasoningTextDone(StreamEvent):
    type: Literal["response.reasoning_text.done"] = "response.reasoning_text.done"
    item_id: str
    output_index: int
    content_index: int = 0
    text: str


class SummaryPartEvent(StreamEvent):
    type: Literal["response.reasoning_summary_part.added", "response.reasoning_summary_part.done"]
    item_id: str
    output_index: int
    summary_index: int
    part: SummaryText


class SummaryTextDelta(StreamEvent):
    type: Literal["response.reasoning_summary_text.delta"] = "response.reasoning_summary_text.delta"
    item_id: str
    output_index: int
    summary_index: int
    delta: str


class SummaryTextDone(StreamEvent):
    type: Literal["response.reasoning_summary_text.done"] = "response.reasoning_summary_text.done"
    item_id: str
    output_index: int
    summary_index: int
    text: str


__all__ = [
    "ArgumentsDelta",
    "ArgumentsDone",
    "ContentPartEvent",
    "OutputItemEvent",
    "ReasoningText",
    "ReasoningTextDelta",
    "ReasoningTextDone",
    "ResponseLifecycle",
    "StreamEvent",
    "SummaryPartEvent",
    "SummaryTextDelta",
    "SummaryTextDone",
    "TextDelta",
    "TextDone",
]
