"""A backend for any OpenAI-compatible endpoint, built on the official ``openai`` SDK.

It smooths over how endpoints differ:

* ``n``: sent natively where the endpoint honours it; where it returns fewer choices than
  asked (Ollama, many gateways), the missing ones are fanned out as parallel ``n=1`` calls,
  and the endpoint is remembered as one without native ``n``.
* thinking: read from ``reasoning_content`` (vLLM, DeepSeek), ``reasoning`` (OpenRouter,
  Ollama), or ``<think>…</think>`` in the content.
* usage: for native ``n>1`` the SDK is asked for logprobs so that each choice's tokens can be
  counted exactly; llama-server, for one, reports only one choice's completion tokens.
* timeouts and retries with exponential backoff come from the SDK (``max_retries``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import openai

from ponder.backends.base import Capabilities, ChoiceBuilder, QueueStream
from ponder.backends.endpoint import EndpointConfig
from ponder.backends.thinking import ThinkSplitter, split_thinking
from ponder.errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    InvalidRequestError,
    ModelNotFoundError,
    PonderError,
    first_error,
)
from ponder.metering import begin_charge
from ponder.types import (
    Choice,
    Completion,
    Delta,
    FinishReason,
    GenerationRequest,
    TokenLogprob,
    TopLogprob,
    Usage,
)

_FINISH: Mapping[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteConfig(EndpointConfig):
    """One model on an endpoint."""

    model: str
    max_fanout: int = 16
    headers: Mapping[str, str] = field(default_factory=dict)


class RemoteBackend:
    def __init__(self, config: RemoteConfig, *, name: str | None = None) -> None:
        self.config = config
        self.name = name or config.model
        self.capabilities = Capabilities(
            logprobs=config.supports_logprobs,
            prefill=config.prefill is not None,
            json_schema=True,
            tools=True,
            cancel_frees_compute=False,
        )
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key or "not-needed",
            timeout=config.timeout,
            max_retries=config.max_retries,
            default_headers=dict(config.headers) or None,
        )
        # Learned on first use when native_n is None; an endpoint's behaviour, not request state.
        self._native_n = config.native_n
        self._fanout = asyncio.Semaphore(config.max_fanout)

    async def aclose(self) -> None:
        await self._client.close()

    # -- request building ----------------------------------------------------------------
    def _params(self, request: GenerationRequest, n: int, *, count_tokens: bool) -> dict[str, Any]:
        s = request.sampling
        messages: list[dict[str, Any]] = [m.as_dict() for m in request.messages]
        extra: dict[str, Any] = dict(self.config.extra_body)
        extra.update(request.extra)
        if request.prefill:
            if self.config.prefill is None:
                raise InvalidRequestError(
                    f"the endpoint behind {self.name!r} cannot continue a partial answer"
                )
            messages.append({"role": "assistant", "content": request.prefill})
            if self.config.prefill == "vllm":
                extra.update(continue_final_message=True, add_generation_prompt=False)
        params: dict[str, Any] = {
            "model": self.config.model,
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
        if extra:
            params["extra_body"] = extra
        return params

    def _count_tokens(self, n: int) -> bool:
        return n > 1 and self.config.usage == "auto" and self.config.supports_logprobs

    # -- non-streaming -------------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> Completion:
        n = request.n
        choices: list[Choice] = []
        usage = Usage()
        charge = begin_charge()
        try:
            if n > 1 and self._native_n is not False:
                response = await self._call(
                    self._params(request, n, count_tokens=self._count_tokens(n))
                )
                got, call_usage = self._parse(
                    response, request, offset=0, counted=self._count_tokens(n)
                )
                choices.extend(got[:n])
                usage = usage + call_usage
                if self._native_n is None:
                    self._native_n = len(got) >= n
            remaining = n - len(choices)
            if remaining > 0:
                results = await self._fan_out(request, remaining, offset=len(choices))
                for got, call_usage in results:
                    choices.extend(got)
                    usage = usage + call_usage
        finally:
            # A call cut off before its reply charges nothing: the endpoint never said.
            charge.end(usage)
        return Completion(choices=tuple(choices), usage=usage, model=self.name)

    async def _fan_out(
        self, request: GenerationRequest, count: int, offset: int
    ) -> list[tuple[list[Choice], Usage]]:
        async def one(i: int) -> tuple[list[Choice], Usage]:
            single = (
                request
                if request.sampling.seed is None
                else request.with_sampling(seed=request.sampling.seed + i)
            )
            async with self._fanout:
                response = await self._call(self._params(single, 1, count_tokens=False))
            return self._parse(response, request, offset=i, counted=False)

        if count == 1:
            return [await one(offset)]
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(offset + i)) for i in range(count)]
        except BaseExceptionGroup as group_error:
            raise first_error(group_error) from None
        return [t.result() for t in tasks]

    async def _call(self, params: dict[str, Any]) -> Any:
        try:
            return await self._client.chat.completions.create(**params)
        except openai.OpenAIError as exc:
            raise map_openai_error(exc, self.name) from exc

    def _parse(
        self, response: Any, request: GenerationRequest, *, offset: int, counted: bool
    ) -> tuple[list[Choice], Usage]:
        choices: list[Choice] = []
        per_choice = 0
        for k, raw in enumerate(response.choices):
            message = raw.message
            content = message.content or ""
            reasoning = _reasoning_field(message)
            if reasoning is None and "<think>" in content:
                split = split_thinking(content)
                content, reasoning = split.content, split.reasoning or None
            logprobs = _logprobs(raw.logprobs)
            tokens = len(logprobs) if logprobs is not None else 0
            per_choice += tokens
            tool_calls = (
                tuple(tc.model_dump() for tc in message.tool_calls) if message.tool_calls else None
            )
            choices.append(
                Choice(
                    index=offset + k,
                    text=content,
                    finish_reason=_FINISH.get(raw.finish_reason or "stop", "stop"),
                    completion_tokens=tokens,
                    reasoning=reasoning,
                    logprobs=logprobs
                    if (request.sampling.logprobs or request.sampling.top_logprobs)
                    else None,
                    tool_calls=tool_calls,
                )
            )
        usage = _usage(response.usage)
        if counted and per_choice > usage.completion_tokens:
            # The endpoint under-reported (llama-server counts one choice for n>1).
            usage = Usage(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=per_choice,
                reasoning_tokens=usage.reasoning_tokens,
                cached_prompt_tokens=usage.cached_prompt_tokens,
                calls=usage.calls,
            )
        if len(choices) == 1 and choices[0].completion_tokens == 0:
            choices[0] = _with_tokens(choices[0], usage.completion_tokens)
        return choices, usage

    # -- streaming -----------------------------------------------------------------------
    def stream(self, request: GenerationRequest) -> QueueStream:
        loop = asyncio.get_running_loop()
        cancelled: set[int] = set()
        tasks: dict[int, asyncio.Task[None]] = {}
        builder = ChoiceBuilder(request.n)
        totals = _Totals()

        def cancel(index: int) -> None:
            cancelled.add(index)
            task = tasks.get(index)
            if task is not None:
                task.cancel()

        def close() -> None:
            runner.cancel()

        stream = QueueStream(loop=loop, on_cancel=cancel, on_close=close)

        async def run_stream(params: dict[str, Any], offset: int, width: int) -> None:
            splitters = [ThinkSplitter() for _ in range(width)]
            counts = [0] * width
            finished = [False] * width
            try:
                events = await self._call(
                    {**params, "stream": True, "stream_options": {"include_usage": True}}
                )
                async for chunk in _chunks(events, self.name):
                    if chunk.usage is not None:
                        call_usage = _usage(chunk.usage)
                        if width > 1 and sum(counts) > call_usage.completion_tokens:
                            call_usage = Usage(
                                call_usage.prompt_tokens,
                                sum(counts),
                                call_usage.reasoning_tokens,
                                call_usage.cached_prompt_tokens,
                                call_usage.calls,
                            )
                        totals.usage = totals.usage + call_usage
                        stream.set_usage(totals.usage)
                    for raw in chunk.choices:
                        k = raw.index if width > 1 else 0
                        if k >= width or finished[k]:
                            continue
                        index = offset + k
                        logprobs: tuple[TokenLogprob, ...] = _logprobs(raw.logprobs) or ()
                        counts[k] += len(logprobs)
                        if index in cancelled:
                            finished[k] = True
                            builder.finish[index] = "cancelled"
                            stream.push(
                                Delta(
                                    index=index,
                                    finish_reason="cancelled",
                                    completion_tokens=counts[k],
                                )
                            )
                            continue
                        delta = raw.delta
                        text = delta.content or ""
                        reasoning = _reasoning_field(delta) or ""
                        part = splitters[k].feed(text)
                        reason = (
                            _FINISH.get(raw.finish_reason, "stop") if raw.finish_reason else None
                        )
                        if reason is not None:
                            tail = splitters[k].flush()
                            part.content += tail.content
                            part.reasoning += tail.reasoning
                            finished[k] = True
                        tool_calls = (
                            tuple(tc.model_dump() for tc in delta.tool_calls)
                            if delta.tool_calls
                            else None
                        )
                        out = Delta(
                            index=index,
                            text=part.content,
                            reasoning=reasoning + part.reasoning,
                            logprobs=tuple(logprobs)
                            if (request.sampling.logprobs or request.sampling.top_logprobs)
                            else (),
                            finish_reason=reason,
                            completion_tokens=counts[k] if reason else None,
                            tool_calls=tool_calls,
                        )
                        builder.add(out)
                        stream.push(out)
            except asyncio.CancelledError:
                for k in range(width):
                    if not finished[k]:
                        stream.push(
                            Delta(
                                index=offset + k,
                                finish_reason="cancelled",
                                completion_tokens=counts[k],
                            )
                        )
                        finished[k] = True
                raise

        charge = begin_charge()

        async def run_all() -> None:
            n = request.n
            try:
                if n > 1 and self._native_n is True:
                    await run_stream(
                        self._params(request, n, count_tokens=self._count_tokens(n)), 0, n
                    )
                else:
                    async with asyncio.TaskGroup() as group:
                        for i in range(n):
                            single = (
                                request
                                if request.sampling.seed is None
                                else request.with_sampling(seed=request.sampling.seed + i)
                            )
                            # Logprobs let a path cancelled mid-stream still count its tokens.
                            params = self._params(single, 1, count_tokens=self._count_tokens(2))
                            tasks[i] = group.create_task(_guard(run_stream(params, i, 1)))
                stream.finish(totals.usage)
            except* PonderError as group_error:
                error = group_error.exceptions[0]
                if isinstance(error, PonderError):
                    error.usage = totals.usage
                stream.fail(error)
            except* Exception as group_error:
                stream.fail(BackendError(f"{self.name}: {group_error.exceptions[0]}"))
            finally:
                charge.end(totals.usage)

        runner = loop.create_task(run_all())
        stream.producer = runner
        return stream


@dataclass(slots=True)
class _Totals:
    usage: Usage = field(default_factory=Usage)


async def _guard(coro: Any) -> None:
    """A cancelled fan-out path ends quietly; the others go on."""
    try:
        await coro
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            task.uncancel()


async def _chunks(events: Any, name: str) -> AsyncIterator[Any]:
    try:
        async for chunk in events:
            yield chunk
    except openai.OpenAIError as exc:
        raise map_openai_error(exc, name) from exc


def _reasoning_field(obj: Any) -> str | None:
    for key in ("reasoning_content", "reasoning"):
        value = getattr(obj, key, None)
        if value is None and getattr(obj, "model_extra", None):
            value = obj.model_extra.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _logprobs(raw: Any) -> tuple[TokenLogprob, ...] | None:
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


def _usage(raw: Any) -> Usage:
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


def _with_tokens(choice: Choice, tokens: int) -> Choice:
    return Choice(
        index=choice.index,
        text=choice.text,
        finish_reason=choice.finish_reason,
        completion_tokens=tokens,
        reasoning=choice.reasoning,
        logprobs=choice.logprobs,
        tool_calls=choice.tool_calls,
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
        return InvalidRequestError(f"{name}: {exc.message}")
    if isinstance(exc, openai.RateLimitError | openai.InternalServerError):
        return BackendUnavailableError(f"{name}: {exc.message}")
    return BackendError(f"{name}: {exc}")
