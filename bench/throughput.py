"""Batched multi-path sampling throughput, measured side by side in one run.

For each model and each N it compares:

  ceiling  llama.cpp decoding a batch of N sequences, one token each per step, with only a
           greedy argmax in Python (the most the batched engine can get);
  (a)      N sequential single-path generations through the embedded backend;
  (b)      one request with n=N through the embedded backend;
  (c)      two concurrent requests with n=N/2 each.

Every run generates exactly --tokens new tokens per path (end-of-generation is ignored).

    python bench/throughput.py --models qwen2.5-coder-0.5b-instruct,qwen2.5-coder-1.5b-instruct
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass

import llama_cpp
import numpy as np

from ponder.backends.embedded import EmbeddedBackend
from ponder.config import ContextConfig
from ponder.engine.llama_model import LlamaModel
from ponder.engine.weights import ModelStore
from ponder.types import GenerationRequest, Message, SamplingParams

PROMPT = "Write a detailed story about a lighthouse keeper who discovers a message in a bottle."


@dataclass
class Row:
    model: str
    n: int
    mode: str
    tokens: int
    prompt_tokens: int
    wall_s: float

    @property
    def tps(self) -> float:
        return self.tokens / self.wall_s


def ceiling(model: LlamaModel, prompt: list[int], n: int, steps: int) -> float:
    """Aggregate tokens/s of raw llama.cpp batch decoding with greedy argmax in numpy."""
    memory, ctx = model.memory, model.ctx
    llama_cpp.llama_memory_clear(memory, True)
    batch = llama_cpp.llama_batch_init(max(len(prompt), n), 0, 1)
    try:
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
        started = time.perf_counter()
        for step in range(steps):
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
        elapsed = time.perf_counter() - started
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_memory_clear(memory, True)
    return n * steps / elapsed


async def measure(backend: EmbeddedBackend, name: str, n: int, tokens: int) -> list[Row]:
    messages = (Message("user", PROMPT),)

    def request(width: int, seed: int) -> GenerationRequest:
        params = SamplingParams(
            temperature=0.8, top_k=40, top_p=0.95, seed=seed, max_tokens=tokens, ignore_eos=True
        )
        return GenerationRequest(messages=messages, sampling=params, n=width)

    rows = []
    stats = backend.engine.stats
    # (a) N sequential single-path generations
    before = stats.prompt_tokens
    started = time.perf_counter()
    generated = 0
    for i in range(n):
        result = await backend.generate(request(1, 100 + i))
        generated += result.usage.completion_tokens
    rows.append(
        Row(
            name,
            n,
            "a_sequential",
            generated,
            stats.prompt_tokens - before,
            time.perf_counter() - started,
        )
    )
    # (b) one request of N paths
    before = stats.prompt_tokens
    started = time.perf_counter()
    result = await backend.generate(request(n, 200))
    rows.append(
        Row(
            name,
            n,
            "b_batched",
            result.usage.completion_tokens,
            stats.prompt_tokens - before,
            time.perf_counter() - started,
        )
    )
    # (c) two concurrent requests of N/2 paths
    if n >= 2:
        before = stats.prompt_tokens
        started = time.perf_counter()
        first, second = await asyncio.gather(
            backend.generate(request(n // 2, 300)), backend.generate(request(n - n // 2, 400))
        )
        rows.append(
            Row(
                name,
                n,
                "c_concurrent",
                first.usage.completion_tokens + second.usage.completion_tokens,
                stats.prompt_tokens - before,
                time.perf_counter() - started,
            )
        )
    return rows


def render_markdown(records: list[dict[str, object]]) -> str:
    """A results table from the JSON this script writes."""
    lines = [
        "| model | N | (a) sequential tok/s | (b) batched tok/s | (c) 2×N/2 tok/s | (b)/(a) | ceiling | reached | (c)/(b) | (b)/ceiling(N) | prompt tokens (a) / (b) / (c) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    by_key: dict[tuple[object, object], dict[str, dict[str, object]]] = {}
    for r in records:
        by_key.setdefault((r["model"], r["n"]), {})[str(r["mode"])] = r
    for (model, n), modes in by_key.items():
        a, b, c, ceil = (
            modes.get(k) for k in ("a_sequential", "b_batched", "c_concurrent", "ceiling")
        )
        if a is None or b is None or ceil is None:
            continue
        ratio, ceiling_ratio = float(b["tps"]) / float(a["tps"]), float(ceil["ceiling_ratio"])  # type: ignore[arg-type]
        c_tps = f"{float(c['tps']):.1f}" if c else "-"  # type: ignore[arg-type]
        c_ratio = f"{float(c['tps']) / float(b['tps']):.2f}" if c else "-"  # type: ignore[arg-type]
        prompts = (
            f"{a['prompt_tokens']} / {b['prompt_tokens']} / {c['prompt_tokens'] if c else '-'}"
        )
        lines.append(
            f"| {model} | {n} | {float(a['tps']):.1f} | {float(b['tps']):.1f} | {c_tps} | {ratio:.2f}× | "  # type: ignore[arg-type]
            f"{ceiling_ratio:.2f}× | {ratio / ceiling_ratio:.0%} | {c_ratio} | {float(b['tps']) / float(ceil['tps']):.0%} | {prompts} |"  # type: ignore[arg-type]
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", default="qwen2.5-coder-0.5b-instruct,qwen2.5-coder-1.5b-instruct"
    )
    parser.add_argument("--n", default="1,4,8,16")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--kv-split",
        action="store_true",
        help="one KV stream per sequence instead of one shared buffer",
    )
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument(
        "--render", default=None, help="print a markdown table from a saved JSON file and exit"
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
        path = store.ensure(name)
        config = ContextConfig(
            n_ctx=16 * 1024,
            n_seq_max=max(widths),
            n_threads=args.threads,
            kv_unified=not args.kv_split,
        )
        model = LlamaModel(path, config, name=name)
        prompt = model.chat_tokens([Message("user", PROMPT)])
        backend = EmbeddedBackend(model, name=name)
        print(
            f"\n## {name}  (prompt {len(prompt)} tokens, {args.tokens} new tokens per path, kv_unified={not args.kv_split})"
        )
        print(f"{'N':>3} {'mode':<14} {'tok/s':>8} {'prompt':>7} {'wall s':>8}")
        try:
            for n in widths:
                # The engine thread is idle between requests, so the ceiling can borrow its
                # context; measuring it next to (a)-(c) keeps machine noise out of the ratios.
                single = ceiling(model, prompt, 1, args.tokens)
                batched = ceiling(model, prompt, n, args.tokens)
                rows = asyncio.run(measure(backend, name, n, args.tokens))
                for row in rows:
                    print(
                        f"{row.n:>3} {row.mode:<14} {row.tps:8.1f} {row.prompt_tokens:7d} {row.wall_s:8.2f}"
                    )
                a, b = rows[0], rows[1]
                ratio = b.tps / a.tps
                ceil_ratio = batched / single
                line = f"    (b)/(a) = {ratio:.2f}x   ceiling = {ceil_ratio:.2f}x ({batched:.1f} vs {single:.1f} tok/s)   reached {ratio / ceil_ratio:.0%}"
                if len(rows) > 2:
                    line += f"   (c)/(b) = {rows[2].tps / b.tps:.2f}"
                # The engine against raw llama.cpp at the same width; independent of (a).
                line += f"\n    (b)/ceiling(N) = {b.tps / batched:.0%}   (a)/ceiling(1) = {a.tps / single:.0%}"
                print(line)
                for row in rows:
                    record = asdict(row) | {"tps": row.tps}
                    out.append(record)
                out.append(
                    {
                        "model": name,
                        "n": n,
                        "mode": "ceiling",
                        "tps": batched,
                        "single_tps": single,
                        "ratio_b_a": ratio,
                        "ceiling_ratio": ceil_ratio,
                    }
                )
        finally:
            asyncio.run(backend.aclose())
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
