"""Pydantic models of OpenAI's Responses API (``/v1/responses``): the request, the items of a
conversation, and the response object. The streamed events are in
:mod:`ponder.protocol.response_events`.

The shapes follow the openai SDK's ``openai.types.responses`` (the ground truth for what a
client parses). Input items are read leniently (an item without ``type`` is a message, as the
SDK's ``EasyInputMessage`` sends it); an item type Ponder cannot turn into a chat message fails
validation with the type named. Request fields Ponder does not know are kept
(``extra="allow"``) so that the gateway can refuse them by name instead of ignoring them.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from ponder.protocol.chat import PonderInfo
from ponder.protocol.response_tools import (
    CodeInterpreterCallItem,
    McpCallItem,
    McpListToolsItem,
    OutputCodeInterpreterCall,
    OutputFunctionCallOutput,
    OutputMcpCall,
    OutputMcpListTools,
)
from ponder.protocol.response_tools import (
    ItemStatus as ItemStatus,  # shared by both modules' items, exported from here too
)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


# -- content parts ---------------------------------------------------------------------------
class ContentPart(_Lenient):
    """A part of a message's content. Only text parts (``input_text``, ``output_text``,
    ``refusal``) become chat text; the gateway refuses the others (images, files, audio)."""

    type: str
    text: str | None = None
    refusal: str | None = None


class InputText(BaseModel):
    type: Literal["input_text"] = "input_text"
    text: str


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[dict[str, Any]] = Field(default_factory=list)
    logprobs: list[dict[str, Any]] = Field(default_factory=list)


# -- items: what a conversation is made of ---------------------------------------------------
class MessageItem(_Lenient):
    """A message, as input (``role`` user, system or developer, or an earlier assistant turn
    sent back) or as listed back (with its ``id`` and ``status``)."""

    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[ContentPart]
    id: str | None = None
    status: ItemStatus | None = None


class FunctionCallItem(_Lenient):
    """A call the model made to one of the request's function tools."""

    type: Literal["function_call"] = "function_call"
    call_id: str
    name: str
    arguments: str  # JSON, as the model wrote it
    id: str | None = None
    status: ItemStatus | None = None


class FunctionCallOutputItem(_Lenient):
    """What the client's function returned for ``call_id``."""

    type: Literal["function_call_output"] = "function_call_output"
    call_id: str
    output: str | list[ContentPart]
    id: str | None = None
    status: ItemStatus | None = None


class SummaryText(BaseModel):
    type: Literal["summary_text"] = "summary_text"
    text: str


class ReasoningText(BaseModel):
    type: Literal["reasoning_text"] = "reasoning_text"
    text: str


class ReasoningItem(_Lenient):
    """What happened before the answer: the model's thinking (``content``) and, when a
    strategy ran, what it did (``summary``). Sent back as input, it is not shown to a model."""

    type: Literal["reasoning"] = "reasoning"
    id: str | None = None
    summary: list[SummaryText] = Field(default_factory=list)
    content: list[ReasoningText] | None = None
    encrypted_content: str | None = None
    status: ItemStatus | None = None


def _item_kind(value: Any) -> str:
    # The SDK's EasyInputMessage ({"role", "content"}) has no type: it is a message.
    if isinstance(value, dict):
        return str(value.get("type", "message"))
    return str(getattr(value, "type", "message"))


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[CodeInterpreterCallItem, Tag("code_interpreter_call")]
    | Annotated[McpCallItem, Tag("mcp_call")]
    | Annotated[McpListToolsItem, Tag("mcp_list_tools")],
    Discriminator(_item_kind),
]
ITEM_TYPES = frozenset(
    {
        "message",
        "function_call",
        "function_call_output",
        "reasoning",
        "code_interpreter_call",
        "mcp_call",
        "mcp_list_tools",
    }
)


# -- output items, as a response carries them ------------------------------------------------
class OutputMessage(BaseModel):
    type: Literal["message"] = "message"
    id: str
    role: Literal["assistant"] = "assistant"
    status: ItemStatus = "completed"
    content: list[OutputText]


class OutputFunctionCall(BaseModel):
    type: Literal["function_call"] = "function_call"
    id: str
    call_id: str
    name: str
    arguments: str
    status: ItemStatus = "completed"


class OutputReasoning(BaseModel):
    type: Literal["reasoning"] = "reasoning"
    id: str
    summary: list[SummaryText]
    content: list[ReasoningText] | None = None
    status: ItemStatus = "completed"


OutputItem = Annotated[
    OutputMessage
    | OutputFunctionCall
    | OutputReasoning
    | OutputCodeInterpreterCall
    | OutputFunctionCallOutput
    | OutputMcpCall
    | OutputMcpListTools,
    Field(discriminator="type"),
]


# -- the request -----------------------------------------------------------------------------
class FunctionToolSpec(_Lenient):
    """A tool definition: a ``function`` the client runs, one of Ponder's built-in tools
    the server runs (``python``, ``code_interpreter``, ``calculator``; their options are
    extra fields, see :mod:`ponder.tools.builtin`), or ``mcp`` with the ``server_label`` of
    a configured MCP server. The gateway refuses other hosted tools (web search, file
    search, ...) by type."""

    type: str
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamedToolChoice(_Lenient):
    type: str
    name: str | None = None


class ReasoningConfig(_Lenient):
    effort: Effort | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class TextFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(_Lenient):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ResponsesRequest(_Lenient):
    model: str
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool | None = True
    stream: bool | None = False
    max_output_tokens: int | None = Field(default=None, ge=1)
    max_tool_calls: int | None = Field(default=None, ge=1)
    tools: list[FunctionToolSpec] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    reasoning: ReasoningConfig | None = None
    metadata: dict[str, str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    text: TextConfig | None = None
    # Read and echoed; they do not change what the model is asked.
    include: list[str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    service_tier: str | None = None
    stream_options: dict[str, Any] | None = None
    # Known, and refused when set: Ponder cannot do what they ask.
    background: bool | None = None
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    context_management: list[dict[str, Any]] | None = None

    # --- Ponder extensions (not in the OpenAI schema) ---------------------------------
    # Strategy selection and its parameters, as on /v1/chat/completions.
    ponder: dict[str, Any] | None = None
    # The most model turns a response with built-in tools may take (default 8); the last
    # one is asked without tools, so that it answers with what it has.
    max_turns: int | None = Field(default=None, ge=1, le=64)
    # --- end of Ponder extensions -------------------------------------------------------

    @field_validator("input", mode="before")
    @classmethod
    def _known_items(cls, value: Any) -> Any:
        # Said here, by name: a union's own error would be about the string alternative.
        if isinstance(value, list):
            for k, item in enumerate(value):
                kind = _item_kind(item)
                if kind not in ITEM_TYPES:
                    raise ValueError(f"input[{k}]: items of type {kind!r} are not supported")
        return value


# -- the response ----------------------------------------------------------------------------
class InputTokensDetails(BaseModel):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens", "content_filter"] | None = None


class ResponseError(BaseModel):
    # The SDK's codes are a closed list; "server_error" is the one that fits any failure.
    code: str = "server_error"
    message: str


ResponseStatus = Literal["completed", "failed", "in_progress", "cancelled", "queued", "incomplete"]


class ResponseObject(BaseModel):
    id: str
    object: Literal["response"] = "response"
    created_at: float = Field(default_factory=lambda: float(int(time.time())))
    status: ResponseStatus
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    model: str
    output: list[OutputItem] = Field(default_factory=list)
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: ReasoningConfig | None = None
    store: bool = True
    temperature: float | None = None
    text: TextConfig | None = None
    tool_choice: str | dict[str, Any] = "auto"
    tools: list[dict[str, Any]] = Field(default_factory=list)
    top_p: float | None = None
    truncation: Literal["auto", "disabled"] = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    background: bool = False
    # --- Ponder extensions ---
    ponder: PonderInfo | None = None

    def wire(self) -> dict[str, Any]:
        """The JSON body: nulls kept (OpenAI sends them), the extension only when set."""
        body = self.model_dump(mode="json", by_alias=True, exclude={"ponder"})
        if self.ponder is not None:
            body["ponder"] = self.ponder.model_dump(exclude_none=True)
        return body


class DeletedResponse(BaseModel):
    id: str
    object: Literal["response"] = "response"
    deleted: bool = True


class InputItemList(BaseModel):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    first_id: str | None
    last_id: str | None
    has_more: bool
