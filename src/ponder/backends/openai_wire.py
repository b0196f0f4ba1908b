"""The OpenAI chat wire format as an endpoint speaks it: request bodies out; replies, stream
chunks and errors in. Pure conversions, no transport: :mod:`ponder.backends.remote` sends."""

from __future__ import annotations

import dataclasses
import email.utils
import math
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import openai

from ponder.backends.thinking import split_thinking
from ponder.errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ContentFilterError,
    ContextOverflowError,
    InvalidRequestError,
    ModelNotFoundError,
    PonderError,
)
from ponder.types import Choice, FinishReason, GenerationRequest, TokenLogprob, TopLogprob, Usage

FINISH_REASONS: Mapping[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def chat_params(
    request: GenerationRequest,
    n: int,
    *,
    model: str,
    extra_body: Mapping[str, Any],
    prefill: str | None,
    endpoint: str,
    count_tokens: bool,
) -> dict[str, Any]:
    """Keyword arguments for ``chat.completions.create``. Sampling fields the OpenAI schema
    lacks (top_k, min_p, repetition penalty, ignore_eos) go in ``extra_body``, as vLLM and
    llama-server read them; ``count_tokens`` asks for logprobs so each choice's tokens can be counted."""
    s = request.sampling
    messages: list[dict[str, Any]] = [m.as_dict() for m in request.messages]
    extra: dict[str, Any] = dict(extra_body)
    extra.update(request.extra)
    if request.prefill:
        if prefill is None:
            raise InvalidRequestError(
                f"the endpoint behind {endpoint!r} cannot continue a partial answer"
            )
        messages.append({"role": "assistant", "content": request.prefill})
        if prefill == "vllm":
            extra.update(continue_final_message=True, add_generation_prompt=False)
    params: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "temperature": s.temperature,
        "top_p": s.top_p,
    }
    if n != 1:
        params["n"] = n
    if s.max_tokens is not None:
        params["max_tokens"] = s.max_tokens
    if s.seed is not None:
        params["seed"] = s.seed
    if s.stop:
        params["stop"] = list(s.stop)
    if s.presence_penalty:
        params["presence_penalty"] = s.presence_penalty
    if s.frequency_penalty:
        params["frequency_penalty"] = s.frequency_penalty
    if s.top_k:
        extra["top_k"] = s.top_k
    if s.min_p:
        extra["min_p"] = s.min_p
    if s.repeat_penalty != 1.0:
        extra["repetition_penalty"] = s.repeat_penalty
    if s.ignore_eos:
        extra["ignore_eos"] = True
    if s.logprobs or s.top_logprobs or count_tokens:
        params["logprobs"] = True
        if s.top_logprobs:
            params["top_logprobs"] = s.top_logprobs
    if request.json_schema is not None:
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": dict(request.json_schema)},
        }
    elif request.json_object:
        params["response_format"] = {"type": "json_object"}
    if request.tools:
        params["tools"] = [dict(t) for t in request.tools]
        if request.tool_choice is not None:
            params["tool_choice"] = request.tool_choice
        if request.parallel_tool_calls is not None:
            params["parallel_tool_calls"] = request.parallel_tool_calls
    if extra:
        params["extra_body"] = extra
    return params


def parse_reply(
    response: Any, request: GenerationRequest, *, offset: int, counted: bool
) -> tuple[list[Choice], Usage]:
    """A non-streamed reply's choices and usage. With ``counted``, each choice's tokens are
    counted from its logprobs, and the sum replaces a smaller reported completion count."""
    choices: list[Choice] = []
    per_choice = 0
    for k, raw in enumerate(response.choices):
        message = raw.message
        content = message.content or ""
        reasoning = reasoning_field(message)
        if reasoning is None and "<think>" in content:
            split = split_thinking(content)
            content, reasoning = split.content, split.reasoning or None
        logprobs = token_logprobs(raw.logprobs)
        tokens = len(logprobs) if logprobs is not None else 0
        per_choice += tokens
        tool_calls = (
            tuple(tc.model_dump() for tc in message.tool_calls) if message.tool_calls else None
        )
        choices.append(
            Choice(
                index=offset + k,
                text=content,
                finish_reason=FINISH_REASONS.get(raw.finish_reason or "stop", "stop"),
                completion_tokens=tokens,
                reasoning=reasoning,
                logprobs=logprobs
                if (request.sampling.logprobs or request.sampling.top_logprobs)
                else None,
                tool_calls=tool_calls,
            )
        )
    usage = reply_usage(response.usage)
    if counted:
        usage = at_least_counted(usage, per_choice)
    if len(choices) == 1 and choices[0].completion_tokens == 0:
        choices[0] = dataclasses.replace(choices[0], completion_tokens=usage.completion_tokens)
    return choices, usage


def at_least_counted(usage: Usage, counted: int) -> Usage:
    """A reply's usage with its completion tokens raised to the tokens counted per choice,
    where the endpoint under-reported (llama-server counts one choice for n>1)."""
    if counted > usage.completion_tokens:
        return dataclasses.replace(usage, completion_tokens=counted)
    return usage


async def reply_chunks(events: Any, name: str) -> AsyncIterator[Any]:
    try:
        async for chunk in events:
            yield chunk
    except openai.OpenAIError as exc:
        raise map_openai_error(exc, name) from exc


def reasoning_field(obj: Any) -> str | None:
    for key in ("reasoning_content", "reasoning"):
        value = getattr(obj, key, None)
        if value is None and getattr(obj, "model_extra", None):
            value = obj.model_extra.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def token_logprobs(raw: Any) -> tuple[TokenLogprob, ...] | None:
    if raw is None or raw.content is None:
        return None
    return tuple(
        TokenLogprob(
            token=item.token,
            logprob=float(item.logprob),
            bytes=tuple(item.bytes) if item.bytes is not None else None,
            top=tuple(
                TopLogprob(
                    token=t.token,
                    logprob=float(t.logprob),
                    bytes=tuple(t.bytes) if t.bytes else None,
                )
                for t in (item.top_logprobs or ())
            ),
        )
        for item in raw.content
    )


def reply_usage(raw: Any) -> Usage:
    if raw is None:
        return Usage(calls=1)
    details = getattr(raw, "completion_tokens_details", None)
    prompt_details = getattr(raw, "prompt_tokens_details", None)
    return Usage(
        prompt_tokens=int(raw.prompt_tokens or 0),
        completion_tokens=int(raw.completion_tokens or 0),
        reasoning_tokens=int(getattr(details, "reasoning_tokens", 0) or 0),
        cached_prompt_tokens=int(getattr(prompt_details, "cached_tokens", 0) or 0),
        calls=1,
    )


def map_openai_error(exc: openai.OpenAIError, name: str) -> PonderError:
    """The typed Ponder error for an OpenAI SDK error raised while talking to ``name``."""
    if isinstance(exc, openai.APITimeoutError):
        return BackendTimeoutError(f"{name}: the endpoint did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return BackendUnavailableError(f"{name}: cannot reach the endpoint ({exc})")
    if isinstance(exc, openai.NotFoundError):
        return ModelNotFoundError(f"{name}: {exc.message}")
    if isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError):
        return refusal_error(exc.code, exc.message, name)
    error = (
        BackendUnavailableError(f"{name}: {exc.message}")
        if isinstance(exc, openai.RateLimitError | openai.InternalServerError)
        else BackendError(f"{name}: {exc}")
    )
    if isinstance(exc, openai.APIStatusError):
        error.retry_after = retry_after(exc.response.headers.get("retry-after"))
    return error


def refusal_error(code: object, message: str, name: str) -> InvalidRequestError:
    """The typed error for an endpoint's 400: an overlong prompt and a content filter's
    refusal are told apart (routing falls back on them), anything else is the request's."""
    text = f"{name}: {message}"
    lowered = message.lower()
    if code == "context_length_exceeded" or "context length" in lowered:
        return ContextOverflowError(text)
    if code in ("content_policy_violation", "content_filter") or "content polic" in lowered:
        return ContentFilterError(text)
    return InvalidRequestError(text)


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number of seconds, or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(when.tzinfo)).total_seconds(), 0.0)
