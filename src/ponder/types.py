"""Internal, typed requests and results.

These are what backends and strategies see. They know nothing of HTTP or of the OpenAI wire
format: :mod:`ponder.server.convert` is the one place where wire models become these.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
# Why a model is called: the request's own, a strategy's escalation or proposer, a fallback.
Purpose = Literal["request", "escalation", "proposer", "fallback"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "cancelled"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str
    # Thinking that came with an assistant turn; never sent back to a model unless asked.
    reasoning: str | None = None
    name: str | None = None
    tool_calls: tuple[Mapping[str, Any], ...] | None = None
    tool_call_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name is not None:
            out["name"] = self.name
        if self.tool_calls:
            out["tool_calls"] = [dict(t) for t in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to sample. Defaults follow the OpenAI API (temperature 1, top_p 1)."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 disables top-k
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0  # 0..20 alternatives per token
    # Keep sampling past end-of-generation tokens (benchmarks that need fixed lengths).
    ignore_eos: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def replace(self, **changes: Any) -> SamplingParams:
        return dataclasses.replace(self, **changes)


# Tokens a chat template adds around each message (role markers, separators), at most.
TEMPLATE_TOKENS_PER_MESSAGE = 8


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One chat generation: ``n`` sequences sampled for the same messages."""

    messages: tuple[Message, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    n: int = 1
    model: str | None = None
    # Text the assistant turn already starts with; generation continues it. Used by
    # step-level search and thinking budgets, and sent to remote endpoints as a final
    # assistant message with continue_final_message.
    prefill: str = ""
    # A JSON schema that constrains the output (llama.cpp grammar where available).
    json_schema: Mapping[str, Any] | None = None
    json_object: bool = False
    tools: tuple[Mapping[str, Any], ...] | None = None
    tool_choice: str | Mapping[str, Any] | None = None
    # As the client sent it (None: not sent). False: at most one tool call per reply.
    parallel_tool_calls: bool | None = None
    # Opaque per-backend options that a backend may honour (e.g. extra body for a remote).
    extra: Mapping[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> GenerationRequest:
        return dataclasses.replace(self, **changes)

    def with_sampling(self, **changes: Any) -> GenerationRequest:
        return dataclasses.replace(self, sampling=self.sampling.replace(**changes))

    def prompt_token_bound(self, extra_text: str = "") -> int:
        """An upper bound on this request's prompt tokens (with ``extra_text`` added, such as
        a strategy's system prompt): a token is at least one byte, and a chat template adds a
        few tokens around each message."""
        text = sum(len(m.content.encode("utf-8", "replace")) for m in self.messages)
        text += len(self.prefill.encode("utf-8", "replace"))
        if extra_text:
            # Added as a message of its own, or joined to the system message by a blank line.
            text += len(extra_text.encode()) + 2 + TEMPLATE_TOKENS_PER_MESSAGE
        # What a chat template renders besides the text: tool definitions, earlier tool
        # calls, a response schema (their JSON is an upper bound on what they become).
        rendered: list[Any] = [m.tool_calls for m in self.messages if m.tool_calls]
        rendered += [m.name for m in self.messages if m.name]
        for extra in (self.tools, self.tool_choice, self.json_schema, rendered or None):
            if extra:
                text += len(json.dumps(extra, ensure_ascii=False, default=str).encode())
        return text + TEMPLATE_TOKENS_PER_MESSAGE * (len(self.messages) + 2)


@dataclass(frozen=True, slots=True)
class TopLogprob:
    token: str
    logprob: float
    bytes: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token: str
    logprob: float
    bytes: tuple[int, ...] | None = None
    top: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    """Exact token counts. ``reasoning_tokens`` is the part of completion tokens not shown
    as the final answer (thinking, discarded paths, critiques)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_prompt_tokens: int = 0
    calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cached_prompt_tokens=self.cached_prompt_tokens + other.cached_prompt_tokens,
            calls=self.calls + other.calls,
        )

    def as_hidden(self) -> Usage:
        """The same usage with every completion token counted as reasoning."""
        return dataclasses.replace(self, reasoning_tokens=self.completion_tokens)

    @staticmethod
    def sum(items: Sequence[Usage]) -> Usage:
        total = Usage()
        for item in items:
            total = total + item
        return total


@dataclass(frozen=True, slots=True)
class Choice:
    index: int
    text: str
    finish_reason: FinishReason
    completion_tokens: int
    reasoning: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    tool_calls: tuple[Mapping[str, Any], ...] | None = None
    # Completion tokens of the text shown as the answer, when a strategy produced it (the
    # rest of its tokens are reasoning); None: every completion token is shown.
    shown_tokens: int | None = None
    # What the strategy decided for this choice (rungs climbed, votes, why it stopped).
    details: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    choices: tuple[Choice, ...]
    usage: Usage
    model: str
    # Set when the backend was a strategy: the tree of calls behind this completion.
    trace: Any = None

    @property
    def text(self) -> str:
        return self.choices[0].text if self.choices else ""


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of one sequence's output, as it is produced.

    ``finish_reason`` is set on the last delta of a sequence; that delta also carries the
    sequence's exact ``completion_tokens``.
    """

    index: int
    text: str = ""
    reasoning: str = ""
    logprobs: tuple[TokenLogprob, ...] = ()
    finish_reason: FinishReason | None = None
    completion_tokens: int | None = None
    tool_calls: tuple[Mapping[str, Any], ...] | None = None
