"""A scripted Backend for unit tests of strategies and servers.

Replies come from a script: a function of (request, choice index) that returns either a
text or a :class:`Reply` with per-token logprobs. Tokens are whitespace-separated words
(each word with its leading space is one token), so token counts are exact and easy to
reason about in tests. Every request is recorded in ``calls``.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ponder.backends.base import Capabilities, QueueStream, collect
from ponder.metering import begin_charge
from ponder.types import (
    Completion,
    Delta,
    FinishReason,
    GenerationRequest,
    TokenLogprob,
    TopLogprob,
    Usage,
)


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    # Log-probability of each token (one per token); missing entries default to -0.1.
    logprobs: Sequence[float] = ()


Script = Callable[[GenerationRequest, int], "str | Reply"]


def _alternatives(token: str, value: float, k: int) -> tuple[TopLogprob, ...]:
    """The chosen token first, the rest of the probability mass split over k-1 others,
    as a real model's top-k would look."""
    if k <= 0:
        return ()
    rest = max(1.0 - math.exp(value), 1e-12) / max(k - 1, 1)
    return (
        TopLogprob(token, value),
        *(TopLogprob(f"<alt{i}>", math.log(rest)) for i in range(1, k)),
    )


def tokens_of(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+$", text)


@dataclass
class ScriptedBackend:
    script: Script
    name: str = "scripted"
    capabilities: Capabilities = field(
        default_factory=lambda: Capabilities(prefill=True, cancel_frees_compute=True)
    )
    # Seconds between streamed tokens, so tests can cancel mid-stream.
    token_delay: float = 0.0
    calls: list[GenerationRequest] = field(default_factory=list)

    @staticmethod
    def cycle(texts: Sequence[str | Reply]) -> ScriptedBackend:
        """Answer the k-th generated choice (over all calls) with ``texts[k % len]``."""
        counter = iter(range(10**9))
        return ScriptedBackend(lambda request, index: texts[next(counter) % len(texts)])

    def _reply(self, request: GenerationRequest, index: int) -> Reply:
        out = self.script(request, index)
        return out if isinstance(out, Reply) else Reply(out)

    def _prompt_tokens(self, request: GenerationRequest) -> int:
        return sum(len(tokens_of(m.content)) for m in request.messages) + len(
            tokens_of(request.prefill)
        )

    async def generate(self, request: GenerationRequest) -> Completion:
        return await collect(self.stream(request), request, self.name)

    def stream(self, request: GenerationRequest) -> QueueStream:
        self.calls.append(request)
        replies = [self._reply(request, i) for i in range(request.n)]
        cancelled: set[int] = set()
        stream = QueueStream(on_cancel=cancelled.add, on_close=lambda: _stop(stream))
        prompt = self._prompt_tokens(request)
        limit = request.sampling.max_tokens
        charge = begin_charge(self.name)
        counts = [0] * request.n

        async def run() -> None:
            failure: BaseException | None = None
            try:
                await produce()
            except BaseException as exc:
                failure = exc
                raise
            finally:
                usage = Usage(prompt_tokens=prompt, completion_tokens=sum(counts), calls=1)
                charge.end(usage, failure)

        async def produce() -> None:
            pieces = [tokens_of(r.text) for r in replies]
            done = [False] * request.n
            step = 0
            while not all(done):
                for i in range(request.n):
                    if done[i]:
                        continue
                    if i in cancelled:
                        done[i] = True
                        stream.push(
                            Delta(index=i, finish_reason="cancelled", completion_tokens=counts[i])
                        )
                        continue
                    if step >= len(pieces[i]) or (limit is not None and counts[i] >= limit):
                        done[i] = True
                        reason: FinishReason = (
                            "length"
                            if limit is not None and counts[i] >= limit and step < len(pieces[i])
                            else "stop"
                        )
                        stream.push(
                            Delta(index=i, finish_reason=reason, completion_tokens=counts[i])
                        )
                        continue
                    token = pieces[i][step]
                    counts[i] += 1
                    value = replies[i].logprobs[step] if step < len(replies[i].logprobs) else -0.1
                    logprobs: tuple[TokenLogprob, ...] = ()
                    if request.sampling.logprobs or request.sampling.top_logprobs:
                        top = _alternatives(token, value, request.sampling.top_logprobs)
                        logprobs = (TokenLogprob(token, value, None, top),)
                    stream.push(Delta(index=i, text=token, logprobs=logprobs))
                stream.set_usage(
                    Usage(prompt_tokens=prompt, completion_tokens=sum(counts), calls=1)
                )
                step += 1
                await asyncio.sleep(self.token_delay)
            stream.finish(Usage(prompt_tokens=prompt, completion_tokens=sum(counts), calls=1))

        stream.producer = asyncio.get_running_loop().create_task(run())
        return stream

    async def aclose(self) -> None:
        return None


def _stop(stream: QueueStream) -> None:
    if stream.producer is not None:
        stream.producer.cancel()
