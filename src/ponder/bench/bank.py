"""The sample bank: draw M reasoning paths per question once, evaluate strategies offline.

This is how the self-consistency, adaptive-stopping and DeepConf papers evaluate: sample a
large pool of paths per question, then simulate each selection or stopping rule by drawing
paths from the pool in a random order, many orderings over. :class:`BankBackend` is a
Backend that serves path requests from the pool, in an order fixed by its ``replicate``
number; a request the pool cannot serve (a critique, a judge call, more paths than the
pool holds) falls through to the live model, and the paths it gets are added to the pool.

Token accounting stays exact: each served path carries its recorded completion tokens, and a
served call is charged its prompt once, as the batched engine would charge it. Streams honour
cancellation at the token where it happens, so online DeepConf saves the same tokens it
would save live.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import threading
from pathlib import Path
from typing import Any

from ponder.backends.base import Backend, Capabilities, QueueStream
from ponder.bench.cassette import decode_choice, decode_logprobs, digest, encode_choice
from ponder.bench.jsonl import append_entry, read_entries
from ponder.errors import BackendError
from ponder.types import Choice, Completion, Delta, GenerationRequest, TokenLogprob, Usage


def path_key(request: GenerationRequest) -> str:
    """What makes two path requests draw from the same distribution (not n, seed or logprobs)."""
    s = request.sampling
    key: dict[str, Any] = {
        "messages": [m.as_dict() for m in request.messages],
        "prefill": request.prefill,
        "sampling": [
            s.temperature,
            s.top_p,
            s.top_k,
            s.min_p,
            s.repeat_penalty,
            s.max_tokens,
            list(s.stop),
        ],
        "json_schema": request.json_schema,
        "tools": request.tools,
    }
    # Added only when set, so that banks drawn before these were keyed stay valid.
    penalties = {
        name: value
        for name, value in (
            ("presence_penalty", s.presence_penalty),
            ("frequency_penalty", s.frequency_penalty),
            ("ignore_eos", s.ignore_eos),
        )
        if value
    }
    if penalties:
        key["penalties"] = penalties
    return digest(key)


class SampleBank:
    """Paths per request key, in a JSONL file that only grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._paths: dict[str, list[dict[str, Any]]] = {}
        self._prompt: dict[str, int] = {}
        self._lock = threading.Lock()
        self._drawing: dict[str, asyncio.Lock] = {}
        # Keyed by the identity of an entry held in ``_paths``: entries are never removed.
        self._decoded: dict[tuple[int, int], tuple[TokenLogprob, ...] | None] = {}
        for entry in read_entries(path):
            self._paths.setdefault(entry["key"], []).extend(entry["paths"])
            self._prompt[entry["key"]] = entry["prompt_tokens"]

    def paths(self, key: str) -> list[dict[str, Any]]:
        return self._paths.get(key, [])

    def prompt_tokens(self, key: str) -> int:
        return self._prompt.get(key, 0)

    def drawing(self, key: str) -> asyncio.Lock:
        """Held while a request for ``key`` is served, live draw included: a concurrent
        request for the same paths waits, then finds them in the bank instead of drawing its
        own. Greedy rows then share one greedy path, and sampled paths one strategy had to
        draw live are reused by the others, as they would be had the requests come in turn."""
        return self._drawing.setdefault(key, asyncio.Lock())

    def logprobs(self, entry: dict[str, Any], top_k: int) -> tuple[TokenLogprob, ...] | None:
        """A path's logprobs with ``top_k`` alternatives, decoded once: offline evaluation
        serves the same paths to many strategies and orderings."""
        cache_key = (id(entry), top_k)
        if cache_key not in self._decoded:
            self._decoded[cache_key] = decode_logprobs(entry["logprobs"], top_k)
        return self._decoded[cache_key]

    def add(self, key: str, prompt_tokens: int, choices: tuple[Choice, ...]) -> None:
        paths = [encode_choice(c) for c in choices]
        with self._lock:
            self._paths.setdefault(key, []).extend(paths)
            self._prompt.setdefault(key, prompt_tokens)
            append_entry(self.path, {"key": key, "prompt_tokens": prompt_tokens, "paths": paths})


class BankBackend:
    def __init__(
        self,
        bank: SampleBank,
        inner: Backend | None,
        *,
        replicate: int = 0,
        min_top_logprobs: int = 5,
    ) -> None:
        self.bank = bank
        self.inner = inner
        self.replicate = replicate
        self.min_top_logprobs = min_top_logprobs
        self.name = inner.name if inner is not None else "bank"
        self.capabilities = inner.capabilities if inner is not None else Capabilities(prefill=False)
        self._order: dict[str, list[int]] = {}
        self._cursor: dict[str, int] = {}
        self.served = 0
        self.live = 0

    def _take(self, key: str, n: int, greedy: bool) -> list[dict[str, Any]]:
        pool = self.bank.paths(key)
        if greedy:
            # Greedy decoding is deterministic up to floating-point noise: llama.cpp's result
            # can depend on which other sequences share the batch. Every strategy that asks
            # for this greedy path gets the first one recorded, so that greedy rows compare
            # paired instead of differing by that noise.
            return pool[:1] * n
        if key not in self._order:
            order = list(range(len(pool)))
            random.Random(f"{self.replicate}:{key}").shuffle(order)
            self._order[key] = order
            self._cursor[key] = 0
        order = self._order[key]
        start = self._cursor[key]
        picked = [pool[i] for i in order[start : start + n]]
        self._cursor[key] = start + len(picked)
        return picked

    async def generate(self, request: GenerationRequest) -> Completion:
        key = path_key(request)
        async with self.bank.drawing(key):
            return await self._serve(key, request)

    async def _serve(self, key: str, request: GenerationRequest) -> Completion:
        picked = self._take(key, request.n, request.sampling.greedy)
        choices: list[Choice] = []
        usage = Usage()
        if picked:
            self.served += len(picked)
            usage = Usage(prompt_tokens=self.bank.prompt_tokens(key), calls=1)
            for p in picked:
                choices.append(self._choice(len(choices), p, request))
                usage = usage + Usage(completion_tokens=p["completion_tokens"])
        missing = request.n - len(picked)
        if missing > 0:
            if self.inner is None:
                raise BackendError(
                    "the sample bank has no path for this request and no live model to ask"
                )
            wanted = max(request.sampling.top_logprobs, self.min_top_logprobs)
            live_request = request.replace(n=missing).with_sampling(
                logprobs=True, top_logprobs=wanted
            )
            live = await self.inner.generate(live_request)
            self.live += missing
            self.bank.add(key, live.usage.prompt_tokens, live.choices)
            # Advance past the paths just added, so later draws in this replicate skip them.
            self._order[key] = self._order.get(key, []) + list(
                range(len(self.bank.paths(key)) - missing, len(self.bank.paths(key)))
            )
            self._cursor[key] = len(self._order[key])
            for entry in self.bank.paths(key)[-len(live.choices) :]:
                choices.append(self._choice(len(choices), entry, request))
            usage = usage + live.usage
        return Completion(choices=tuple(choices), usage=usage, model=self.name)

    def _choice(self, index: int, entry: dict[str, Any], request: GenerationRequest) -> Choice:
        choice = decode_choice(index, entry, logprobs=False)
        wants = request.sampling.logprobs or request.sampling.top_logprobs > 0
        if not wants:
            return choice
        return dataclasses.replace(
            choice, logprobs=self.bank.logprobs(entry, request.sampling.top_logprobs)
        )

    def stream(self, request: GenerationRequest) -> QueueStream:
        cancelled: set[int] = set()
        stream = QueueStream(on_cancel=cancelled.add)

        async def play() -> None:
            try:
                completion = await self.generate(request)
            except BaseException as exc:
                stream.fail(exc)
                return
            spent = [0] * len(completion.choices)
            pieces = [list(c.logprobs or ()) for c in completion.choices]
            # Stream text token by token only where the tokens spell the text exactly.
            spelled = [
                "".join(p.token for p in pieces[c.index]) == c.text for c in completion.choices
            ]
            finished = [False] * len(completion.choices)
            step = 0
            while not all(finished):
                for c in completion.choices:
                    i = c.index
                    if finished[i]:
                        continue
                    if i in cancelled:
                        finished[i] = True
                        stream.push(
                            Delta(index=i, finish_reason="cancelled", completion_tokens=spent[i])
                        )
                    elif step < len(pieces[i]):
                        spent[i] += 1
                        token = pieces[i][step]
                        stream.push(
                            Delta(
                                index=i, text=token.token if spelled[i] else "", logprobs=(token,)
                            )
                        )
                    else:
                        finished[i] = True
                        if not spelled[i]:
                            stream.push(Delta(index=i, text=c.text))
                        spent[i] = c.completion_tokens
                        stream.push(
                            Delta(
                                index=i,
                                finish_reason=c.finish_reason,
                                completion_tokens=c.completion_tokens,
                            )
                        )
                step += 1
                await asyncio.sleep(0)
            # Only the tokens a path produced before its cancellation are charged.
            stream.finish(
                Usage(
                    prompt_tokens=completion.usage.prompt_tokens,
                    completion_tokens=sum(spent),
                    calls=completion.usage.calls,
                )
            )

        stream.producer = asyncio.get_running_loop().create_task(play())
        return stream

    async def aclose(self) -> None:
        return None
