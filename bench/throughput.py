"""The embedded engine against raw llama.cpp, measured side by side in alternating rounds.

For each model, every round measures, next to each other on the same context:

  raw(1)   llama.cpp decoding one sequence, with only a greedy argmax in numpy
  (a)      one path through the embedded backend (sampling at temperature 0.8, top-k 40)
  raw(N)   llama.cpp decoding N sequences in one batch, one token each per step
  (b)      one request with n=N through the backend
  (c)      two concurrent requests with n=N/2 each
  ttft     time to first token of a ~500-token prompt through the backend, against
           llama.cpp's own evaluation of the same prompt tokens in one decode call

One short unrecorded round warms the context first. Raw and engine then alternate which goes
first from round to round, so that the machine's drift falls on both. Every path generates
exactly --tokens tokens (end-of-generation is ignored). Rates are decode rates: the tokens
after each path's first (which comes from the prompt's evaluation) over the time from the
first token to the last, so that prompt evaluation is compared only with prompt evaluation
(the ttft row). End-to-end rates are printed too.

    python bench/throughput.py --rounds 5 --json bench/results/throughput.json
    python bench/throughput.py --render bench/results/throughput.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import llama_cpp
import numpy as np

from ponder.backends.embedded import EmbeddedBackend
from ponder.config import ContextConfig
from ponder.engine import openmp
from ponder.engine.llama_model import LlamaModel
from ponder.engine.weights import ModelStore
from ponder.types import GenerationRequest, Message, SamplingParams

PROMPT = "Write a detailed story about a lighthouse keeper who discovers a message in a bottle."
LONG_PROMPT_TOKENS = 500


@dataclass(frozen=True, slots=True)
class Timing:
    """One measured generation: tokens, and where the time went."""

    tokens: int  # generated tokens, over all paths
    paths: int
    first_s: float  # start to the first token (prompt evaluation, and for the engine its overheads)
    total_s: float  # start to the last token

    @property
    def decode_tps(self) -> float:
        """Tokens after each path's first, over the time between the first and the last."""
        return (self.tokens - self.paths) / (self.total_s - self.first_s)

    @property
    def e2e_tps(self) -> float:
        return self.tokens / self.total_s


def raw_decode(model: LlamaModel, prompt: list[int], n: int, tokens: int) -> Timing:
    """Raw llama.cpp: evaluate the prompt once, copy it to N sequences, decode N per step."""
    memory, ctx = model.memory, model.ctx
    llama_cpp.llama_memory_clear(memory, True)
    batch = llama_cpp.llama_batch_init(max(len(prompt), n), 0, 1)
    try:
        started = time.perf_counter()
        for i, tok in enumerate(prompt):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, i, 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == len(prompt) - 1
        batch.n_tokens = len(prompt)
        assert llama_cpp.llama_decode(ctx, batch) == 0
        for s in range(1, n):
            llama_cpp.llama_memory_seq_cp(memory, 0, s, -1, -1)
        row = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(ctx, len(prompt) - 1), shape=(model.n_vocab,)
        )
        last = [int(row.argmax())] * n
        first = time.perf_counter() - started
        for step in range(tokens - 1):
            for s in range(n):
                batch.token[s], batch.pos[s], batch.n_seq_id[s] = last[s], len(prompt) + step, 1
                batch.seq_id[s][0] = s
                batch.logits[s] = True
            batch.n_tokens = n
            assert llama_cpp.llama_decode(ctx, batch) == 0
            for s in range(n):
                row = np.ctypeslib.as_array(
                    llama_cpp.llama_get_logits_ith(ctx, s), shape=(model.n_vocab,)
                )
                last[s] = int(row.argmax())
        total = time.perf_counter() - started
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_memory_clear(memory, True)
        # This thread is not the engine's; the engine does the same when it goes idle.
        release = openmp.worker_releaser()
        if release is not None:
            release()
    return Timing(n * tokens, n, first, total)


def request(messages: Sequence[Message], n: int, seed: int, tokens: int) -> GenerationRequest:
    params = SamplingParams(
        temperature=0.8, top_k=40, top_p=0.95, seed=seed, max_tokens=tokens, ignore_eos=True
    )
    return GenerationRequest(messages=tuple(messages), sampling=params, n=n)


async def engine_decode(backend: EmbeddedBackend, req: GenerationRequest) -> Timing:
    """One request through the backend's stream, timed on the caller's loop."""
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    async for delta in backend.stream(req):
        if first is None:
            first = time.perf_counter() - started
        if delta.completion_tokens is not None:
            tokens += delta.completion_tokens
    total = time.perf_counter() - started
    assert first is not None
    return Timing(tokens, req.n, first, total)


async def engine_concurrent(backend: EmbeddedBackend, n: int, tokens: int) -> Timing:
    """Two requests of N/2 at once, compared end to end (their prompts are evaluated in
    different steps); ``first_s`` is the later of the two requests' first tokens."""
    messages = (Message("user", PROMPT),)
    started = time.perf_counter()
    left, right = await asyncio.gather(
        engine_decode(backend, request(messages, n // 2, 300, tokens)),
        engine_decode(backend, request(messages, n - n // 2, 400, tokens)),
    )
    total = time.perf_counter() - started
    first = max(left.first_s, right.first_s)
    return Timing(left.tokens + right.tokens, n, first, total)


def long_messages(model: LlamaModel, target: int) -> tuple[Message, ...]:
    """A user message whose templated prompt is about ``target`` tokens."""
    sentence = "The keeper climbed the stairs again and wrote down what the sea had done. "
    words = sentence * (target // 8)
    while len(model.chat_tokens([Message("user", words)])) > target:
        words = words[: int(len(words) * 0.95)]
    return (Message("user", words),)


def raw_prompt_eval(model: LlamaModel, prompt: list[int]) -> float:
    """Seconds for llama.cpp to evaluate the prompt in one decode call and give one row."""
    timing = raw_decode(model, prompt, 1, 1)
    return timing.first_s


async def engine_ttft(backend: EmbeddedBackend, messages: Sequence[Message]) -> float:
    return (await engine_decode(backend, request(messages, 1, 500, 1))).first_s


@dataclass
class Record:
    model: str
    round: int
    n: int
    mode: str  # raw, a, b, c, ttft_raw, ttft_engine
    tokens: int
    first_s: float
    total_s: float
    decode_tps: float
    e2e_tps: float


def record(model: str, rnd: int, n: int, mode: str, t: Timing) -> Record:
    decode = t.decode_tps if t.tokens > t.paths else 0.0
    return Record(model, rnd, n, mode, t.tokens, t.first_s, t.total_s, decode, t.e2e_tps)


def run_round(
    model: LlamaModel,
    backend: EmbeddedBackend,
    rnd: int,
    widths: Sequence[int],
    tokens: int,
    long_prompt: tuple[Message, ...],
) -> list[Record]:
    """One round; raw goes first on even rounds, the engine on odd ones."""
    name = backend.name
    messages = (Message("user", PROMPT),)
    prompt = model.chat_tokens(list(messages))
    raw_first = rnd % 2 == 0
    out: list[Record] = []

    def pair(n: int) -> None:
        def raw() -> None:
            out.append(record(name, rnd, n, "raw", raw_decode(model, prompt, n, tokens)))

        def engine() -> None:
            t = asyncio.run(engine_decode(backend, request(messages, n, 100 + rnd, tokens)))
            out.append(record(name, rnd, n, "a" if n == 1 else "b", t))
            if n >= 2:
                c = asyncio.run(engine_concurrent(backend, n, tokens))
                out.append(record(name, rnd, n, "c", c))

        for step in (raw, engine) if raw_first else (engine, raw):
            step()

    for n in widths:
        pair(n)
    tokens_long = model.chat_tokens(list(long_prompt))

    def ttft_raw() -> None:
        seconds = raw_prompt_eval(model, tokens_long)
        out.append(Record(name, rnd, 1, "ttft_raw", len(tokens_long), seconds, seconds, 0, 0))

    def ttft_engine() -> None:
        seconds = asyncio.run(engine_ttft(backend, long_prompt))
        out.append(Record(name, rnd, 1, "ttft_engine", len(tokens_long), seconds, seconds, 0, 0))

    for step in (ttft_raw, ttft_engine) if raw_first else (ttft_engine, ttft_raw):
        step()
    return out


def ratios(records: Sequence[dict[str, object]]) -> dict[tuple[str, int], dict[str, list[float]]]:
    """Per model and N, each round's side-by-side ratios."""
    by: dict[tuple[str, int, int], dict[str, dict[str, object]]] = {}
    for r in records:
        key = (str(r["model"]), int(r["round"]), int(r["n"]))  # type: ignore[call-overload]
        by.setdefault(key, {})[str(r["mode"])] = r
    out: dict[tuple[str, int], dict[str, list[float]]] = {}
    for (model, _rnd, n), modes in sorted(by.items()):
        slot = out.setdefault((model, n), {})

        def add(label: str, value: float, slot: dict[str, list[float]] = slot) -> None:
            slot.setdefault(label, []).append(value)

        raw = modes.get("raw")
        engine = modes.get("a" if n == 1 else "b")
        if raw and engine:
            add("raw tok/s", float(raw["decode_tps"]))  # type: ignore[arg-type]
            add("engine tok/s", float(engine["decode_tps"]))  # type: ignore[arg-type]
            add("decode", float(engine["decode_tps"]) / float(raw["decode_tps"]))  # type: ignore[arg-type]
            add("e2e", float(engine["e2e_tps"]) / float(raw["e2e_tps"]))  # type: ignore[arg-type]
        concurrent = modes.get("c")
        if concurrent and engine:
            # End to end: the two requests' prompts are evaluated in different steps, so no
            # window of decode-only steps is shared by both; each pays its own prompt.
            add("c/b", float(concurrent["e2e_tps"]) / float(engine["e2e_tps"]))  # type: ignore[arg-type]
        ttft_raw, ttft_engine = modes.get("ttft_raw"), modes.get("ttft_engine")
        if ttft_raw and ttft_engine:
            add("ttft raw s", float(ttft_raw["first_s"]))  # type: ignore[arg-type]
            add("ttft engine s", float(ttft_engine["first_s"]))  # type: ignore[arg-type]
            add("ttft", float(ttft_raw["first_s"]) / float(ttft_engine["first_s"]))  # type: ignore[arg-type]
    return out


def spread(values: Sequence[float], percent: bool = True) -> str:
    if not values:
        return "-"

    def fmt(v: float) -> str:
        return f"{v:.0%}" if percent else f"{v:.1f}"

    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def render_markdown(records: Sequence[dict[str, object]]) -> str:
    """The summary table: medians over rounds, with the range in brackets."""
    table = ratios(records)
    rounds = len({int(r["round"]) for r in records})  # type: ignore[call-overload]
    lines = [
        f"Medians over {rounds} rounds, range in brackets.",
        "",
        "| model | N | raw tok/s | engine tok/s | engine / raw (decode) | engine / raw (end to end) | (c) 2×N/2 / (b), end to end | ttft: raw / engine s | raw / engine ttft |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (model, n), slot in table.items():
        ttft = (
            f"{statistics.median(slot['ttft raw s']):.2f} / {statistics.median(slot['ttft engine s']):.2f}"
            if "ttft raw s" in slot
            else "-"
        )
        lines.append(
            f"| {model} | {n} | {spread(slot.get('raw tok/s', []), False)} "
            f"| {spread(slot.get('engine tok/s', []), False)} | {spread(slot.get('decode', []))} "
            f"| {spread(slot.get('e2e', []))} | {spread(slot.get('c/b', []))} | {ttft} "
            f"| {spread(slot.get('ttft', []))} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", default="qwen2.5-coder-0.5b-instruct,qwen2.5-coder-1.5b-instruct"
    )
    parser.add_argument("--n", default="1,8,16")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the records to this JSON file")
    parser.add_argument(
        "--render", default=None, help="print the summary table from a saved JSON file and exit"
    )
    args = parser.parse_args(argv)
    if args.render:
        with open(args.render) as fh:
            print(render_markdown(json.load(fh)))
        return 0
    widths = [int(x) for x in args.n.split(",")]
    store = ModelStore()
    out: list[dict[str, object]] = []
    for name in args.models.split(","):
        config = ContextConfig(n_ctx=16 * 1024, n_seq_max=max(widths), n_threads=args.threads)
        model = LlamaModel(store.ensure(name), config, name=name)
        backend = EmbeddedBackend(model, name=name)
        long_prompt = long_messages(model, LONG_PROMPT_TOKENS)
        print(f"\n## {name}  ({args.tokens} tokens per path, {args.rounds} rounds)")
        try:
            # The first decodes of a fresh context run slow (pages faulted in, caches cold).
            run_round(model, backend, 0, widths, 4, long_prompt)
            for rnd in range(args.rounds):
                rows = run_round(model, backend, rnd, widths, args.tokens, long_prompt)
                out.extend(asdict(r) for r in rows)
                for (model_name, n), slot in ratios([asdict(r) for r in rows]).items():
                    del model_name
                    line = f"  round {rnd} N={n:<2}"
                    if "decode" in slot:
                        label = "(a)/ceiling(1)" if n == 1 else f"(b)/ceiling({n})"
                        line += (
                            f" {label} = {slot['decode'][0]:.0%}"
                            f" ({slot['engine tok/s'][0]:.1f} vs {slot['raw tok/s'][0]:.1f} tok/s,"
                            f" end to end {slot['e2e'][0]:.0%})"
                        )
                    if "c/b" in slot:
                        line += f"   (c)/(b) = {slot['c/b'][0]:.0%}"
                    if "ttft" in slot:
                        line += (
                            f"   ttft raw/engine = {slot['ttft'][0]:.0%}"
                            f" ({slot['ttft raw s'][0]:.3f} vs {slot['ttft engine s'][0]:.3f} s)"
                        )
                    print(line, flush=True)
        finally:
            asyncio.run(backend.aclose())
    print()
    print(render_markdown(out))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
