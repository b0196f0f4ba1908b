"""DeepConf (Fu et al. 2025): vote with the model's own token confidence.

Token confidence is the negative mean log-probability of the top-k candidates at a token;
a path's group confidence is that averaged over a sliding window of tokens, and its lowest
group confidence is the minimum over windows (a path that gets lost anywhere scores low).

* offline: sample N paths, keep the top ``keep_percent`` by lowest group confidence, and
  vote weighted by confidence;
* online: sample ``warmup`` paths, set the threshold at the confidence that would have kept
  ``keep_percent`` of them, then stream the remaining paths and cancel any whose current
  group confidence falls below it. Cancellation frees the engine's compute for the others.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from ponder.reasoning.answers import extract_answer
from ponder.reasoning.base import RunContext, Strategy, StrategyParams, StrategyResult
from ponder.reasoning.confidence import keep_threshold, lowest_group_confidence, token_confidence
from ponder.reasoning.outcome import result_from_vote
from ponder.reasoning.paths import Path, path_request, question_of, sample_paths_recorded
from ponder.reasoning.voting import Vote, weighted_vote
from ponder.types import GenerationRequest, TokenLogprob


class ConfidenceVoteParams(StrategyParams):
    mode: Literal["offline", "online"] = "online"
    n: int = Field(default=16, ge=2, le=64)
    warmup: int = Field(default=4, ge=1, le=32)
    keep_percent: float = Field(default=90.0, gt=0.0, le=100.0)
    window: int = Field(default=32, ge=1, le=4096)
    top_logprobs: int = Field(default=5, ge=1, le=20)


def filtered_vote(
    paths: Sequence[Path], confidences: Sequence[float], keep_percent: float
) -> tuple[list[int], Vote]:
    threshold = keep_threshold(confidences, keep_percent)
    kept = [i for i, c in enumerate(confidences) if c >= threshold]
    vote = weighted_vote([paths[i].answer for i in kept], [confidences[i] for i in kept])
    return kept, vote


class ConfidenceVote(Strategy):
    name: ClassVar[str] = "confidence-vote"
    Params: ClassVar[type[StrategyParams]] = ConfidenceVoteParams
    example: ClassVar[Mapping[str, Any]] = {"n": 4, "warmup": 2, "window": 4}

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: ConfidenceVoteParams
    ) -> StrategyResult:
        k = min(params.top_logprobs, ctx.backend.capabilities.max_top_logprobs)
        if params.mode == "offline" or params.warmup >= params.n:
            paths, call = await sample_paths_recorded(
                ctx, request, params, n=params.n, temperature=0.7, top_logprobs=k
            )
            confidences = [lowest_group_confidence(p.logprobs, params.window) for p in paths]
            kept, vote = filtered_vote(paths, confidences, params.keep_percent)
            call.annotations["confidences"] = [round(c, 4) for c in confidences]
            return result_from_vote(
                ctx, [paths[i] for i in kept], vote, kept=len(kept), mode="offline"
            )

        warm, call = await sample_paths_recorded(
            ctx, request, params, n=params.warmup, temperature=0.7, top_logprobs=k, label="warmup"
        )
        warm_conf = [lowest_group_confidence(p.logprobs, params.window) for p in warm]
        threshold = keep_threshold(warm_conf, params.keep_percent)
        call.annotations["confidences"] = [round(c, 4) for c in warm_conf]
        ctx.trace.note("threshold", value=round(threshold, 4), from_warmup=len(warm))
        ctx.progress(f"warm-up of {len(warm)} paths: confidence threshold {threshold:.3f}")
        live, live_conf, cancelled = await self._stream_rest(
            ctx, request, params, k, threshold, offset=len(warm)
        )
        paths = warm + live
        confidences = warm_conf + live_conf
        kept = [
            i
            for i, c in enumerate(confidences)
            if c >= threshold and paths[i].finish_reason != "cancelled"
        ]
        vote = weighted_vote([paths[i].answer for i in kept], [confidences[i] for i in kept])
        return result_from_vote(
            ctx,
            [paths[i] for i in kept],
            vote,
            kept=len(kept),
            cancelled=cancelled,
            threshold=round(threshold, 4),
            mode="online",
        )

    async def _stream_rest(
        self,
        ctx: RunContext,
        request: GenerationRequest,
        params: ConfidenceVoteParams,
        k: int,
        threshold: float,
        offset: int,
    ) -> tuple[list[Path], list[float], int]:
        n = params.n - offset
        sub = path_request(
            request, params, n=n, temperature=0.7, top_logprobs=k, seed_offset=offset
        )
        stream = ctx.backend.stream(sub, label="online")
        texts = [""] * n
        logprobs: list[list[TokenLogprob]] = [[] for _ in range(n)]
        windows: list[deque[float]] = [deque(maxlen=params.window) for _ in range(n)]
        lowest = [float("inf")] * n
        finish = ["stop"] * n
        tokens = [0] * n
        cancelling: set[int] = set()
        async for delta in stream:
            i = delta.index
            texts[i] += delta.text
            for entry in delta.logprobs:
                logprobs[i].append(entry)
                windows[i].append(token_confidence(entry))
                if len(windows[i]) == params.window:
                    lowest[i] = min(lowest[i], float(np.mean(windows[i])))
            if delta.finish_reason is not None:
                finish[i] = delta.finish_reason
                tokens[i] = delta.completion_tokens or len(logprobs[i])
            elif lowest[i] < threshold and i not in cancelling:
                # Tokens already in flight may still arrive; cancel once.
                stream.cancel(i)
                cancelling.add(i)
                ctx.progress(
                    f"path {offset + i + 1} cancelled: confidence {lowest[i]:.3f} < {threshold:.3f}"
                )
        question = question_of(request)
        paths = [
            Path(
                offset + i,
                texts[i],
                extract_answer(texts[i], params.answer_format, question),
                tokens[i],
                finish[i],
                tuple(logprobs[i]),
            )
            for i in range(n)
        ]
        confidences = [lowest_group_confidence(p.logprobs, params.window) for p in paths]
        stream.call.annotations.update(
            answers=[p.answer for p in paths], confidences=[round(c, 4) for c in confidences]
        )
        for p in paths:
            if p.finish_reason != "cancelled":
                ctx.progress(
                    f"path {p.index + 1}: {p.answer if p.answer is not None else '(no answer)'}"
                )
        return paths, confidences, len(cancelling)
