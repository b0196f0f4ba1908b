"""The embedded backend: a local GGUF model served by the batched llama.cpp engine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from ponder.backends.base import Capabilities, QueueStream, collect
from ponder.backends.thinking import ThinkSplitter
from ponder.backends.toolcalls import parser_for_template
from ponder.config import ContextConfig
from ponder.engine.batched import BatchedEngine
from ponder.engine.grammar import schema_grammar
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

    @classmethod
    def from_path(
        cls, path: Path, config: ContextConfig | None = None, name: str | None = None
    ) -> EmbeddedBackend:
        return cls(LlamaModel(path, config or ContextConfig(), name=name), name=name)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.engine.close)
        self.model.close()

    async def generate(self, request: GenerationRequest) -> Completion:
        return await collect(self.stream(request), request, self.name)

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        return len(self._prompt(request))

    def _prompt(self, request: GenerationRequest) -> list[int]:
        return self.model.chat_tokens(
            request.messages,
            prefill=request.prefill,
            tools=request.tools if request.tool_choice != "none" else None,
            tool_choice=request.tool_choice,
        )

    def _grammar(self, request: GenerationRequest) -> str | None:
        schema = request.json_schema or (_JSON_OBJECT_SCHEMA if request.json_object else None)
        if schema is None:
            return None
        try:
            return schema_grammar(schema)
        except Exception as exc:
            raise InvalidRequestError(
                f"unsupported JSON schema: {exc}", param="response_format"
            ) from exc

    def stream(self, request: GenerationRequest) -> QueueStream:
        prompt = self._prompt(request)
        grammar = self._grammar(request)
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
        post = _PostProcessor(request, self._tool_parser if request.tools else None, self._thinking)

        for start, size in chunks:

            def on_deltas(deltas: list[Delta], start: int = start) -> None:
                shifted = [_shift(d, start) for d in deltas]
                loop.call_soon_threadsafe(_push_all, stream, post, shifted)

            def on_finish(usage: Usage, error: BaseException | None) -> None:
                loop.call_soon_threadsafe(state.finish_one, stream, usage, error)

            job_id = self.engine.submit(prompt, size, sampling, on_deltas, on_finish, grammar)
            job_ids.append(job_id)
        return stream


class _StreamState:
    """Sums usage over a request's jobs and ends the stream after the last one."""

    def __init__(self, jobs: int, charge: Charge) -> None:
        self.remaining = jobs
        self.charge = charge
        self.usage = Usage()
        self.error: BaseException | None = None

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
        request: GenerationRequest,
        tool_parser: Callable[[str], tuple[str, list[dict[str, object]]]] | None,
        thinking: bool,
    ) -> None:
        self._tool_parser = tool_parser
        self._splitters = [ThinkSplitter() for _ in range(request.n)] if thinking else None
        self._held = [""] * request.n

    def __call__(self, delta: Delta) -> Delta:
        text, reasoning = delta.text, ""
        if self._splitters is not None:
            splitter = self._splitters[delta.index]
            part = splitter.feed(text)
            if delta.finish_reason is not None:
                tail = splitter.flush()
                part.content += tail.content
                part.reasoning += tail.reasoning
            text, reasoning = part.content, part.reasoning
        if self._tool_parser is None:
            return Delta(
                index=delta.index,
                text=text,
                reasoning=reasoning,
                logprobs=delta.logprobs,
                finish_reason=delta.finish_reason,
                completion_tokens=delta.completion_tokens,
            )
        # Tool calls are only known once the sequence is complete; hold its text till then.
        self._held[delta.index] += text
        if delta.finish_reason is None:
            return Delta(index=delta.index, reasoning=reasoning, logprobs=delta.logprobs)
        content, calls = self._tool_parser(self._held[delta.index])
        return Delta(
            index=delta.index,
            text=content,
            reasoning=reasoning,
            logprobs=delta.logprobs,
            finish_reason="tool_calls"
            if calls and delta.finish_reason == "stop"
            else delta.finish_reason,
            completion_tokens=delta.completion_tokens,
            tool_calls=tuple(calls) if calls else None,
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
        stream.push(post(delta))
