"""The simple path: one sequence, one token per ``llama_decode``, no batching.

It is the yardstick for the batched engine: with the same seed and sampling settings, the
engine's ``n=1`` output must equal this. It also serves the throughput benchmark's notion
of "one request at a time". It must not run while the engine is decoding on the same model.
"""

from __future__ import annotations

from typing import Any

import llama_cpp

from ponder.engine import openmp
from ponder.engine.llama_model import LlamaModel
from ponder.engine.sampling import SequenceSampler, StopMatcher
from ponder.errors import BackendError
from ponder.types import FinishReason, SamplingParams

SEQ = 0


def generate_one(
    model: LlamaModel, prompt: list[int], params: SamplingParams, seed: int
) -> tuple[str, int, FinishReason]:
    """Generate one sequence; returns (text, completion tokens, finish reason)."""
    max_tokens = params.max_tokens or (model.n_ctx_seq - len(prompt))
    sampler = SequenceSampler(model, params, seed)
    stop = StopMatcher(params.stop)
    batch = llama_cpp.llama_batch_init(max(len(prompt), 1), 0, 1)
    llama_cpp.llama_memory_seq_rm(model.memory, SEQ, -1, -1)
    text = ""
    generated = 0
    reason: FinishReason = "length"
    try:
        _fill(batch, prompt, 0)
        _decode(model, batch)
        index = len(prompt) - 1
        pos = len(prompt)
        while generated < max_tokens:
            token = sampler.sample(model.ctx, index)
            generated += 1
            if model.is_eog(token) and not params.ignore_eos:
                reason = "stop"
                break
            result = stop.feed(model.piece(token))
            text += result.emit
            if result.stopped:
                reason = "stop"
                return text, generated, reason
            if generated >= max_tokens:
                break
            _fill(batch, [token], pos)
            _decode(model, batch)
            index = 0
            pos += 1
        text += stop.flush()
        return text, generated, reason
    finally:
        llama_cpp.llama_memory_seq_rm(model.memory, SEQ, -1, -1)
        llama_cpp.llama_batch_free(batch)
        sampler.free()
        # The caller's thread is not the engine's: its OpenMP workers would slow the engine.
        release = openmp.worker_releaser()
        if release is not None:
            release()


def _fill(batch: Any, tokens: list[int], start: int) -> None:
    # Any: the ctypes stubs do not model writes through llama_batch's pointer fields.
    for i, token in enumerate(tokens):
        batch.token[i] = token
        batch.pos[i] = start + i
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = SEQ
        batch.logits[i] = i == len(tokens) - 1
    batch.n_tokens = len(tokens)


def _decode(model: LlamaModel, batch: llama_cpp.llama_batch) -> None:
    rc = llama_cpp.llama_decode(model.ctx, batch)
    if rc != 0:
        raise BackendError(f"llama_decode failed with code {rc}")
