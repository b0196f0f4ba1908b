"""Per-sequence sampling, logprobs and stop handling for the batched engine.

Sampling runs in llama.cpp's own sampler chain (top-k/top-p/min-p truncation before the draw,
in C), so that drawing N paths per step stays cheap next to the decode. Logprobs are read
from the same logits row that sampling used: no extra forward pass.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass

import llama_cpp
import numpy as np

from ponder.engine.grammar import split_lazy
from ponder.engine.llama_model import LlamaModel
from ponder.types import SamplingParams, TokenLogprob, TopLogprob

_PENALTY_LAST_N = 64


class SequenceSampler:
    """One llama.cpp sampler chain, owned by one sequence."""

    def __init__(
        self, model: LlamaModel, params: SamplingParams, seed: int, grammar: str | None = None
    ) -> None:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if not chain:
            raise RuntimeError("llama.cpp could not create a sampler chain")
        self._chain = chain
        add = llama_cpp.llama_sampler_chain_add
        if grammar is not None:
            smpl = _grammar_sampler(model, grammar)
            if not smpl:
                self.free()
                raise ValueError("the JSON schema could not be compiled to a grammar")
            add(chain, smpl)
        if (
            params.repeat_penalty != 1.0
            or params.frequency_penalty != 0.0
            or params.presence_penalty != 0.0
        ):
            add(
                chain,
                llama_cpp.llama_sampler_init_penalties(
                    model.n_vocab,
                    _PENALTY_LAST_N,
                    params.repeat_penalty,
                    params.frequency_penalty,
                    params.presence_penalty,
                ),
            )
        if params.greedy:
            add(chain, llama_cpp.llama_sampler_init_greedy())
        else:
            if params.top_k > 0:
                add(chain, llama_cpp.llama_sampler_init_top_k(params.top_k))
            if params.top_p < 1.0:
                add(chain, llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
            if params.min_p > 0.0:
                add(chain, llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
            add(chain, llama_cpp.llama_sampler_init_temp(params.temperature))
            add(chain, llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))

    def sample(self, ctx: object, output_index: int) -> int:
        return int(llama_cpp.llama_sampler_sample(self._chain, ctx, output_index))

    def free(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None


def _grammar_sampler(model: LlamaModel, grammar: str) -> object:
    """A grammar sampler; a lazy one (see :func:`ponder.engine.grammar.lazy_grammar`) lets
    every token through until a trigger token is sampled."""
    text, triggers = split_lazy(grammar)
    if not triggers:
        return llama_cpp.llama_sampler_init_grammar(model.vocab, text.encode(), b"root")
    tokens = (llama_cpp.llama_token * len(triggers))(*triggers)
    return llama_cpp.llama_sampler_init_grammar_lazy_patterns(
        model.vocab, text.encode(), b"root", None, 0, tokens, len(triggers)
    )


def logits_row(ctx: object, output_index: int, n_vocab: int) -> np.ndarray:
    """A zero-copy view of one output row of the last decode's logits."""
    ptr = llama_cpp.llama_get_logits_ith(ctx, output_index)
    row: np.ndarray = np.ctypeslib.as_array(ptr, shape=(n_vocab,))
    return row


def token_logprob(model: LlamaModel, row: np.ndarray, token: int, top_n: int) -> TokenLogprob:
    """Log-softmax of the raw logits at ``token``, with the ``top_n`` best alternatives."""
    peak = float(row.max())
    lse = peak + float(np.log(np.exp(row - peak, dtype=np.float32).sum(dtype=np.float64)))
    top: tuple[TopLogprob, ...] = ()
    if top_n > 0:
        idx = np.argpartition(row, -top_n)[-top_n:]
        idx = idx[np.argsort(row[idx])[::-1]]
        top = tuple(_top(model, int(t), float(row[t]) - lse) for t in idx)
    piece = model.piece(token)
    return TokenLogprob(
        token=piece.decode("utf-8", errors="replace"),
        logprob=float(row[token]) - lse,
        bytes=tuple(piece),
        top=top,
    )


def _top(model: LlamaModel, token: int, logprob: float) -> TopLogprob:
    piece = model.piece(token)
    return TopLogprob(
        token=piece.decode("utf-8", errors="replace"), logprob=logprob, bytes=tuple(piece)
    )


@dataclass(slots=True)
class StopResult:
    emit: str  # text safe to send now
    stopped: bool  # a stop string matched; the sequence ends


class StopMatcher:
    """Turns token bytes into text and cuts it at the first stop string.

    Text that could still become a stop string is held back until it cannot, so that a
    stop string never leaks into a stream, even when it spans tokens.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._hold = max((len(s) for s in self._stops), default=1) - 1

    def feed(self, data: bytes) -> StopResult:
        self._pending += self._decoder.decode(data)
        if not self._stops:
            out, self._pending = self._pending, ""
            return StopResult(out, False)
        cut = min((i for s in self._stops if (i := self._pending.find(s)) >= 0), default=-1)
        if cut >= 0:
            out = self._pending[:cut]
            self._pending = ""
            return StopResult(out, True)
        safe = len(self._pending) - self._hold
        # Hold back only a tail that is a prefix of some stop string.
        keep_from = max(safe, 0)
        for start in range(keep_from, len(self._pending)):
            tail = self._pending[start:]
            if any(s.startswith(tail) for s in self._stops):
                keep_from = start
                break
        else:
            keep_from = len(self._pending)
        out, self._pending = self._pending[:keep_from], self._pending[keep_from:]
        return StopResult(out, False)

    def flush(self) -> str:
        out = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return out
