"""The embedded backend: a local GGUF model served by the batched llama.cpp engine.

Tool calls: the model's chat template renders ``tools``; its ``<tool_call>`` markup is parsed
as it streams (:mod:`ponder.backends.toolcalls`). With ``tool_choice`` ``required`` or a
named function, a grammar holds the whole reply to calls of the allowed tools, each call's
arguments to its tool's schema; with ``auto``, the same grammar is lazy, applying from the
model's ``<tool_call>`` token on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from ponder.backends.base import Capabilities, QueueStream, collect
from ponder.backends.thinking import ThinkSplitter
from ponder.backends.toolcalls import (
    CLOSE_LAYOUT,
    OPEN_LAYOUT,
    OPEN_TAG,
    SEPARATOR,
    HermesStream,
    ToolPlan,
    merge_fragments,
    parser_for_template,
    plan_tools,
    template_messages,
)
from ponder.config import ContextConfig
from ponder.engine.batched import BatchedEngine
from ponder.engine.grammar import lazy_grammar, schema_grammar, tool_call_grammar
from ponder.engine.llama_model import LlamaModel
from ponder.errors import InvalidRequestError
from ponder.metering import Charge, begin_charge
from ponder.types import Completion, Delta, GenerationRequest, Usage

# Any JSON value; used for response_format={"type": "json_object"}.
_JSON_OBJECT_SCHEMA = {"type": "object"}


class EmbeddedBackend:
    """Generates with a local model. Requests are tokenized on the caller's loop and run on
    the engine's worker thread; concurrent requests share decode steps."""

    def __init__(self, model: LlamaModel, *, name: str | None = None) -> None:
        self.model = model
        self.engine = BatchedEngine(model)
        self.name = name or model.name
        self.capabilities = Capabilities(
            logprobs=True,
            max_top_logprobs=20,
            prefill=True,
            json_schema=True,
            tools=model.chat_template is not None,
            cancel_frees_compute=True,
        )
        self._tool_parser = parser_for_template(model.chat_template)
        self._thinking = bool(model.chat_template and "<think>" in model.chat_template)
        # A lazy grammar needs the call's opening tag to be one token of the vocabulary.
        opening = model.tokenize(OPEN_TAG, parse_special=True) if self._tool_parser else []
        self._tool_trigger = opening[0] if len(opening) == 1 else None

    @classmethod
    def from_path(
        cls, path: Path, config: ContextConfig | None = None, name: str | None = None
    ) -> EmbeddedBackend:
        return cls(LlamaModel(path, config or ContextConfig(), name=name), name=name)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.engine.close)
        self.model.close()

    async def generate(self, request: GenerationRequest) -> Completion:
        return await collect(self._stream(request, whole_calls=True), request, self.name)

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        return len(self._prompt(request, self._tools(request)))

    def _tools(self, request: GenerationRequest) -> ToolPlan:
        return plan_tools(
            request.tools, request.tool_choice, request.parallel_tool_calls is not False
        )

    def _prompt(self, request: GenerationRequest, tools: ToolPlan) -> list[int]:
        return self.model.chat_tokens(
            template_messages(request.messages),
            prefill=request.prefill,
            tools=request.tools if tools.mode != "none" else None,
            tool_choice=request.tool_choice,
        )

    def _grammar(self, request: GenerationRequest, tools: ToolPlan) -> str | None:
        """The grammar the reply is held to: forced calls, else the response format, else
        (tools on ``auto``) calls from the moment the model opens one."""
        schema = request.json_schema or (_JSON_OBJECT_SCHEMA if request.json_object else None)
        if tools.mode == "required":
            return self._calls_grammar(tools)
        if schema is not None:
            try:
                return schema_grammar(schema)
            except Exception as exc:
                raise InvalidRequestError(
                    f"unsupported JSON schema: {exc}", param="response_format"
                ) from exc
        if tools.mode == "auto" and self._tool_trigger is not None:
            return lazy_grammar(self._calls_grammar(tools), [self._tool_trigger])
        return None

    @staticmethod
    def _calls_grammar(tools: ToolPlan) -> str:
        try:
            return tool_call_grammar(
                tools.allowed,
                open_tag=OPEN_LAYOUT,
                close_tag=CLOSE_LAYOUT,
                separator=SEPARATOR,
                parallel=tools.parallel,
            )
        except Exception as exc:
            raise InvalidRequestError(
                f"unsupported tool parameter schema: {exc}", param="tools"
            ) from exc

    def stream(self, request: GenerationRequest) -> QueueStream:
        return self._stream(request, whole_calls=False)

    def _stream(self, request: GenerationRequest, *, whole_calls: bool) -> QueueStream:
        """Tool calls come as OpenAI fragments when streamed; ``whole_calls``: each
        sequence's calls whole on its last delta (what :func:`collect` keeps)."""
        tools = self._tools(request)
        prompt = self._prompt(request, tools)
        grammar = self._grammar(request, tools)
        max_tokens, width = self.engine.plan(len(prompt), request.n, request.sampling.max_tokens)
        sampling = request.sampling.replace(max_tokens=max_tokens)
        loop = asyncio.get_running_loop()
        # Requests wider than one job can hold (live sequences, KV cells) run as several
        # jobs; each evaluates the prompt again, and usage counts it again.
        chunks = [(start, min(width, request.n - start)) for start in range(0, request.n, width)]
        job_ids: list[int] = []
        state = _StreamState(len(chunks), begin_charge(self.name))

        def cancel(index: int) -> None:
            for job_id, (start, size) in zip(job_ids, chunks, strict=False):
                if start <= index < start + size:
                    self.engine.cancel(job_id, index - start)

        def close() -> None:
            for job_id in job_ids:
                self.engine.cancel(job_id, None)

        stream = QueueStream(loop=loop, on_cancel=cancel, on_close=close)
        # A forced call is parsed whatever the template: the grammar wrote Hermes markup.
        parses = tools.mode == "required" or (tools.mode == "auto" and bool(self._tool_parser))
        # On auto, a reply that is one call written as bare JSON (not in the template's tags)
        # is that call.
        bare = tuple(name for name, _ in tools.allowed) if tools.mode == "auto" else ()
        post = _PostProcessor(
            request.n, tools.parallel if parses else None, self._thinking, whole_calls, bare
        )

        try:
            for start, size in chunks:

                def on_deltas(deltas: list[Delta], start: int = start) -> None:
                    shifted = [_shift(d, start) for d in deltas]
                    _deliver(loop, _push_all, stream, post, shifted)

                def on_finish(usage: Usage, error: BaseException | None) -> None:
                    _deliver(loop, state.finish_one, stream, usage, error)

                job_id = self.engine.submit(prompt, size, sampling, on_deltas, on_finish, grammar)
                job_ids.append(job_id)
        except BaseException as exc:
            # Refused part-way (the engine's queue is full): the jobs already queued are
            # cancelled (they report what they decoded), and the call's charge ends with them.
            close()
            state.unsubmitted(len(chunks) - len(job_ids), exc)
            raise
        return stream


class _StreamState:
    """Sums usage over a request's jobs and ends the stream after the last one."""

    def __init__(self, jobs: int, charge: Charge) -> None:
        self.remaining = jobs
        self.charge = charge
        self.usage = Usage()
        self.error: BaseException | None = None

    def unsubmitted(self, jobs: int, error: BaseException) -> None:
        """``jobs`` never reached the engine: they count as ended, with nothing spent."""
        self.remaining -= jobs
        self.error = self.error or error
        if self.remaining == 0:
            self.charge.end(self.usage, self.error)

    def finish_one(self, stream: QueueStream, usage: Usage, error: BaseException | None) -> None:
        self.usage = self.usage + usage
        self.error = self.error or error
        self.remaining -= 1
        stream.set_usage(self.usage)
        if self.remaining == 0:
            # Also reached after a cancel, with the exact count of what was decoded.
            self.charge.end(self.usage, self.error)
            if self.error is not None:
                stream.fail(self.error)
            else:
                stream.finish(self.usage)


class _PostProcessor:
    """Per-sequence thinking split and tool-call parsing on the way out of the engine."""

    def __init__(
        self,
        n: int,
        parallel: bool | None,
        thinking: bool,
        whole_calls: bool,
        bare_names: tuple[str, ...] = (),
    ) -> None:
        """``parallel``: None when the reply is not parsed for tool calls; ``bare_names``:
        the tools a reply may call as bare JSON at its start."""
        self._splitters = [ThinkSplitter() for _ in range(n)] if thinking else None
        self._calls = (
            [HermesStream(parallel=parallel, bare_names=bare_names) for _ in range(n)]
            if parallel is not None
            else None
        )
        self._whole = whole_calls
        self._held: list[list[dict[str, object]]] = [[] for _ in range(n)]

    def __call__(self, delta: Delta) -> Delta | None:
        text, reasoning = delta.text, ""
        finished = delta.finish_reason is not None
        if self._splitters is not None:
            splitter = self._splitters[delta.index]
            part = splitter.feed(text)
            if finished:
                tail = splitter.flush()
                part.content += tail.content
                part.reasoning += tail.reasoning
            text, reasoning = part.content, part.reasoning
        reason = delta.finish_reason
        calls: tuple[dict[str, object], ...] | None = None
        if self._calls is not None:
            parser = self._calls[delta.index]
            text, fragments = parser.feed(text)
            if finished:
                rest, more = parser.finish()
                text, fragments = text + rest, fragments + more
            if self._whole:
                # Held, and merged on the last delta: collect() keeps the last calls it sees.
                self._held[delta.index] += fragments
                if finished and self._held[delta.index]:
                    calls = tuple(merge_fragments(self._held[delta.index]))
            elif fragments:
                calls = tuple(fragments)
            if finished and parser.calls and reason == "stop":
                reason = "tool_calls"
        if not (text or reasoning or delta.logprobs or calls or finished):
            return None  # all of it held back (a tag being read): no empty chunk
        return Delta(
            index=delta.index,
            text=text,
            reasoning=reasoning,
            logprobs=delta.logprobs,
            finish_reason=reason,
            completion_tokens=delta.completion_tokens,
            tool_calls=calls,
        )


def _shift(delta: Delta, start: int) -> Delta:
    if start == 0:
        return delta
    return Delta(
        index=delta.index + start,
        text=delta.text,
        reasoning=delta.reasoning,
        logprobs=delta.logprobs,
        finish_reason=delta.finish_reason,
        completion_tokens=delta.completion_tokens,
    )


def _push_all(stream: QueueStream, post: _PostProcessor, deltas: list[Delta]) -> None:
    for delta in deltas:
        out = post(delta)
        if out is not None:
            stream.push(out)


def _deliver(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: object
) -> None:
    """Hand the engine thread's news to the caller's loop. A loop that has closed (its
    caller is gone: a finished test, a process shutting down) has nobody to tell; the
    engine thread must not die of it, or every later request would wait forever."""
    if not loop.is_closed():
        with suppress(RuntimeError):  # closed between the check and the call
            loop.call_soon_threadsafe(callback, *args)
