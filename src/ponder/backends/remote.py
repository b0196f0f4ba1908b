"""A backend for any OpenAI-compatible endpoint, built on the official ``openai`` SDK.

It smooths over how endpoints differ:

* ``n``: sent natively where the endpoint honours it; where it returns fewer choices than
  asked (Ollama, many gateways), the missing ones are fanned out as parallel ``n=1`` calls,
  and the endpoint is remembered as one without native ``n``.
* thinking: read from ``reasoning_content`` (vLLM, DeepSeek), ``reasoning`` (OpenRouter,
  Ollama), or ``<think>…</think>`` in the content.
* usage: for native ``n>1`` the SDK is asked for logprobs so that each choice's tokens can be
  counted exactly; llama-server, for one, reports only one choice's completion tokens. A
  stream's usage is the endpoint's last report: with vLLM's ``continuous_usage_stats`` (the
  provider's ``extra_body.stream_options``, sent with streams only) every chunk carries the
  usage so far, so a stream cut short is still metered exactly; one cut before any report
  records the completion tokens received, counted from their logprobs where it asked for them.
* timeouts and retries with exponential backoff come from the SDK (``max_retries``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import openai

from ponder.backends.base import Capabilities, ChoiceBuilder, QueueStream
from ponder.backends.endpoint import EndpointConfig
from ponder.backends.openai_wire import (
    FINISH_REASONS,
    at_least_counted,
    chat_params,
    map_openai_error,
    parse_reply,
    reasoning_field,
    reply_chunks,
    reply_usage,
    token_logprobs,
)
from ponder.backends.thinking import ThinkSplitter
from ponder.errors import (
    BackendError,
    PonderError,
    first_error,
)
from ponder.metering import begin_charge
from ponder.types import (
    Choice,
    Completion,
    Delta,
    GenerationRequest,
    TokenLogprob,
    Usage,
)


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
        # What a stream asks for: usage at its end, plus the provider's own stream_options
        # (vLLM's continuous_usage_stats puts the usage so far on every chunk, so a stream cut
        # short is still metered). Only a stream sends them: vLLM refuses them otherwise.
        options = config.extra_body.get("stream_options")
        self._stream_options = {**(options if isinstance(options, Mapping) else {})}
        self._stream_options["include_usage"] = True
        # Learned on first use when native_n is None; an endpoint's behaviour, not request state.
        self._native_n = config.native_n
        self._fanout = asyncio.Semaphore(config.max_fanout)

    async def aclose(self) -> None:
        await self._client.close()

    # -- request building ----------------------------------------------------------------
    def _params(self, request: GenerationRequest, n: int, *, count_tokens: bool) -> dict[str, Any]:
        params = chat_params(
            request,
            n,
            model=self.config.model,
            extra_body=self.config.extra_body,
            prefill=self.config.prefill,
            endpoint=self.name,
            count_tokens=count_tokens,
        )
        extra = params.get("extra_body")
        if extra and "stream_options" in extra:  # a stream sends them (_stream_options)
            rest = {k: v for k, v in extra.items() if k != "stream_options"}
            if rest:
                params["extra_body"] = rest
            else:
                del params["extra_body"]
        return params

    def _count_tokens(self, n: int) -> bool:
        return n > 1 and self.config.usage == "auto" and self.config.supports_logprobs

    # -- non-streaming -------------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> Completion:
        n = request.n
        choices: list[Choice] = []
        usage = Usage()
        charge = begin_charge(self.name)
        error: BaseException | None = None
        try:
            if n > 1 and self._native_n is not False:
                response = await self._call(
                    self._params(request, n, count_tokens=self._count_tokens(n))
                )
                got, call_usage = parse_reply(
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
        except BaseException as exc:
            error = exc
            raise
        finally:
            # A call cut off before its reply charges nothing: the endpoint never said.
            charge.end(usage, error)
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
            return parse_reply(response, request, offset=i, counted=False)

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
                    {**params, "stream": True, "stream_options": self._stream_options}
                )
                async for chunk in reply_chunks(events, self.name):
                    if chunk.usage is not None:
                        call_usage = reply_usage(chunk.usage)
                        if width > 1:
                            call_usage = at_least_counted(call_usage, sum(counts))
                        # Usage on content chunks is cumulative: this call's last report wins.
                        totals.reports[offset] = call_usage
                        stream.set_usage(totals.usage)
                        charge.progress(totals.usage)  # journaled: a killed process knows it
                    for raw in chunk.choices:
                        k = raw.index if width > 1 else 0
                        if k >= width or finished[k]:
                            continue
                        index = offset + k
                        logprobs: tuple[TokenLogprob, ...] = token_logprobs(raw.logprobs) or ()
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
                        reasoning = reasoning_field(delta) or ""
                        part = splitters[k].feed(text)
                        reason = (
                            FINISH_REASONS.get(raw.finish_reason, "stop")
                            if raw.finish_reason
                            else None
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
            finally:
                if offset not in totals.reports and any(counts):
                    # Cut off (or never told) before any usage report: the completion tokens
                    # received, each counted from its logprob; the prompt's stay unknown.
                    totals.reports[offset] = Usage(completion_tokens=sum(counts), calls=1)

        charge = begin_charge(self.name)

        async def run_all() -> None:
            n = request.n
            failure: BaseException | None = None
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
                failure = group_error.exceptions[0]
                stream.fail(failure)
            except* Exception as group_error:
                failure = BackendError(f"{self.name}: {group_error.exceptions[0]}")
                stream.fail(failure)
            except* BaseException as group_error:  # cancelled: the caller went away
                failure = group_error.exceptions[0]
                raise
            finally:
                charge.end(totals.usage, failure)

        runner = loop.create_task(run_all())
        stream.producer = runner
        return stream


@dataclass(slots=True)
class _Totals:
    """Each upstream call's latest usage report, by the index of its first choice."""

    reports: dict[int, Usage] = field(default_factory=dict)

    @property
    def usage(self) -> Usage:
        return Usage.sum(list(self.reports.values()))


async def _guard(coro: Any) -> None:
    """A cancelled fan-out path ends quietly; the others go on."""
    try:
        await coro
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            task.uncancel()
