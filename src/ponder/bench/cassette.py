"""Record and replay of backend calls.

In ``record`` mode every call through a :class:`CassetteBackend` is forwarded to the real
backend and stored: the request, every sampled path (text, finish reason, token count,
per-token logprobs) and the exact usage. In ``replay`` mode the same calls are answered from
the cassette with no model at all, so a whole benchmark re-runs bit-identically in seconds.
``auto`` replays what it has and records what it lacks.

Calls are keyed by the request (messages, prefill, sampling, schema, tools, n) and by how
many times that same request was made before, so repeated identical requests (a strategy
sampling the same prompt window after window) each get their own recorded answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from ponder.backends.base import Backend, Capabilities, ChoiceBuilder, QueueStream
from ponder.bench.jsonl import append_entry, read_entries
from ponder.errors import BackendError
from ponder.types import (
    Choice,
    Completion,
    Delta,
    GenerationRequest,
    TokenLogprob,
    TopLogprob,
    Usage,
)

Mode = Literal["record", "replay", "auto"]


def digest(payload: dict[str, Any]) -> str:
    """A stable hash of a JSON-able description of a request."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def request_key(request: GenerationRequest) -> str:
    s = request.sampling
    return digest(
        {
            "messages": [m.as_dict() for m in request.messages],
            "prefill": request.prefill,
            "n": request.n,
            "sampling": [
                s.temperature,
                s.top_p,
                s.top_k,
                s.min_p,
                s.repeat_penalty,
                s.presence_penalty,
                s.frequency_penalty,
                s.seed,
                s.max_tokens,
                list(s.stop),
                s.logprobs,
                s.top_logprobs,
                s.ignore_eos,
            ],
            "json_schema": request.json_schema,
            "json_object": request.json_object,
            "tools": request.tools,
            "tool_choice": request.tool_choice,
        }
    )


def encode_choice(choice: Choice) -> dict[str, Any]:
    """One sampled path as stored in a cassette or a sample bank."""
    logprobs = None
    if choice.logprobs is not None:
        logprobs = [
            [t.token, t.logprob, [[a.token, a.logprob] for a in t.top]] for t in choice.logprobs
        ]
    return {
        "text": choice.text,
        "reasoning": choice.reasoning,
        "finish_reason": choice.finish_reason,
        "completion_tokens": choice.completion_tokens,
        "logprobs": logprobs,
    }


def decode_logprobs(
    raw: list[list[Any]] | None, top_k: int | None = None
) -> tuple[TokenLogprob, ...] | None:
    """Stored logprobs back to typed ones, keeping the first ``top_k`` alternatives."""
    if raw is None:
        return None
    return tuple(
        TokenLogprob(tok, lp, None, tuple(TopLogprob(a, b) for a, b in top[:top_k]))
        for tok, lp, top in raw
    )


def decode_choice(index: int, entry: dict[str, Any], *, logprobs: bool = True) -> Choice:
    return Choice(
        index=index,
        text=entry["text"],
        finish_reason=entry["finish_reason"],
        completion_tokens=entry["completion_tokens"],
        reasoning=entry["reasoning"],
        logprobs=decode_logprobs(entry["logprobs"]) if logprobs else None,
    )


class Cassette:
    """The stored calls, one JSON line each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        for entry in read_entries(path):
            self._entries[entry["key"]] = entry

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._entries.get(key)

    def put(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries[entry["key"]] = entry
            append_entry(self.path, entry)


class CassetteBackend:
    def __init__(self, inner: Backend | None, cassette: Cassette, mode: Mode = "auto") -> None:
        if inner is None and mode != "replay":
            raise ValueError("record and auto modes need a backend to record from")
        self.inner = inner
        self.cassette = cassette
        self.mode = mode
        self.name = inner.name if inner is not None else "replay"
        self.capabilities = inner.capabilities if inner is not None else Capabilities(prefill=True)
        self._seen: Counter[str] = Counter()
        self.hits = 0
        self.misses = 0

    def _key(self, request: GenerationRequest) -> str:
        base = request_key(request)
        occurrence = self._seen[base]
        self._seen[base] += 1
        return f"{base}#{occurrence}"

    def _lookup(self, key: str) -> dict[str, Any] | None:
        if self.mode == "record":
            return None
        entry = self.cassette.get(key)
        if entry is None and self.mode == "replay":
            raise BackendError(
                f"cassette {self.cassette.path} has no recording for this call ({key[:12]}…)"
            )
        return entry

    def _store(
        self, key: str, request: GenerationRequest, completion: Completion, streamed: bool
    ) -> None:
        self.cassette.put(
            {
                "key": key,
                "streamed": streamed,
                "model": completion.model,
                "messages": [m.as_dict() for m in request.messages],
                "n": request.n,
                "choices": [encode_choice(c) for c in completion.choices],
                "usage": [
                    completion.usage.prompt_tokens,
                    completion.usage.completion_tokens,
                    completion.usage.reasoning_tokens,
                    completion.usage.cached_prompt_tokens,
                    completion.usage.calls,
                ],
            }
        )

    @staticmethod
    def _completion(entry: dict[str, Any]) -> Completion:
        choices = tuple(decode_choice(i, c) for i, c in enumerate(entry["choices"]))
        return Completion(choices=choices, usage=Usage(*entry["usage"]), model=entry["model"])

    async def generate(self, request: GenerationRequest) -> Completion:
        key = self._key(request)
        entry = self._lookup(key)
        if entry is not None:
            self.hits += 1
            return self._completion(entry)
        assert self.inner is not None
        self.misses += 1
        completion = await self.inner.generate(request)
        self._store(key, request, completion, streamed=False)
        return completion

    def stream(self, request: GenerationRequest) -> QueueStream:
        key = self._key(request)
        entry = self._lookup(key)
        if entry is not None:
            self.hits += 1
            return self._replay_stream(entry)
        assert self.inner is not None
        self.misses += 1
        return self._record_stream(key, request)

    def _replay_stream(self, entry: dict[str, Any]) -> QueueStream:
        """Token by token where logprobs were recorded, so the consumer makes the same
        decisions (cancellations) it made when recording."""
        completion = self._completion(entry)
        stream = QueueStream()

        async def play() -> None:
            ends = {}
            for choice in completion.choices:
                pieces = choice.logprobs or ()
                if pieces and "".join(p.token for p in pieces) == choice.text:
                    ends[choice.index] = [
                        Delta(index=choice.index, text=p.token, logprobs=(p,)) for p in pieces
                    ]
                else:
                    ends[choice.index] = [
                        Delta(index=choice.index, text=choice.text, logprobs=choice.logprobs or ())
                    ]
            longest = max((len(v) for v in ends.values()), default=0)
            for step in range(longest + 1):
                for choice in completion.choices:
                    steps = ends[choice.index]
                    if step < len(steps):
                        stream.push(steps[step])
                    elif step == len(steps):
                        stream.push(
                            Delta(
                                index=choice.index,
                                finish_reason=choice.finish_reason,
                                completion_tokens=choice.completion_tokens,
                            )
                        )
                await asyncio.sleep(0)
            stream.finish(completion.usage)

        stream.producer = asyncio.get_running_loop().create_task(play())
        return stream

    def _record_stream(self, key: str, request: GenerationRequest) -> QueueStream:
        assert self.inner is not None
        inner = self.inner.stream(request)
        builder = ChoiceBuilder(request.n)
        stream = QueueStream(on_cancel=inner.cancel, on_close=lambda: None)

        async def relay() -> None:
            try:
                async for delta in inner:
                    builder.add(delta)
                    stream.push(delta)
            except BaseException as exc:
                stream.fail(exc)
                return
            completion = Completion(
                choices=builder.choices(True), usage=inner.usage, model=self.name
            )
            self._store(key, request, completion, streamed=True)
            stream.finish(inner.usage)

        stream.producer = asyncio.get_running_loop().create_task(relay())
        return stream

    async def aclose(self) -> None:
        if self.inner is not None:
            await self.inner.aclose()
