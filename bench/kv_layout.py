"""KV-cache layout under a many-request load, measured side by side in one run.

llama.cpp keeps the KV cache either in one buffer shared by every sequence (``kv_unified``,
Ponder's default: a prompt's cells are shared by its paths) or in one stream of
``n_ctx / n_seq_max`` cells per sequence. With one buffer, each sequence's attention runs over
every used cell of the buffer, masked; with streams, over its own cells only. This script
runs the same load under both layouts, alternating (unified, split, unified, split, ...) so
that drift on a shared machine shows up instead of biasing one side:

  R concurrent requests, each with its own prompt (padded with context to about P tokens,
  as mixture-of-agents and critique prompts are), n=W paths, exactly T new tokens per path.

    python bench/kv_layout.py --requests 6 --width 4 --prompt-tokens 1500 --tokens 128
"""

from __future__ import annotations

import argparse
import asyncio
import time

from ponder.backends.embedded import EmbeddedBackend
from ponder.config import ContextConfig
from ponder.engine.llama_model import LlamaModel
from ponder.engine.weights import ModelStore
from ponder.types import GenerationRequest, Message, SamplingParams

QUESTIONS = [
    "A baker sells 14 loaves a day at $3 each and spends $11 a day on flour. "
    "How much does she earn in a 30-day month? Think step by step.",
    "A train leaves at 9:40 and travels 210 km at 84 km/h. When does it arrive? "
    "Think step by step.",
    "Tom has three times as many marbles as Ann, and together they have 96. "
    "How many does Tom have? Think step by step.",
    "A tank holds 1,200 litres and leaks 2.5% of its content each hour. "
    "How much is left after 4 hours? Think step by step.",
]


# Filler that makes a long prompt, as when earlier answers are quoted back to the model.
CONTEXT = (
    "Earlier attempt: the shop sells each item at a fixed price, the costs are paid daily, "
    "and the monthly total is the daily profit times the number of days. "
)


async def load(
    backend: EmbeddedBackend, requests: int, width: int, tokens: int, padding: int
) -> tuple[int, float]:
    sampling = SamplingParams(temperature=0.7, max_tokens=tokens, ignore_eos=True, seed=1)
    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(
                backend.generate(
                    GenerationRequest(
                        (
                            Message(
                                "user",
                                CONTEXT * padding + QUESTIONS[i % len(QUESTIONS)] + f" (case {i})",
                            ),
                        ),
                        sampling,
                        n=width,
                    )
                )
            )
            for i in range(requests)
        ]
    wall = time.perf_counter() - started
    return sum(t.result().usage.completion_tokens for t in tasks), wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--requests", type=int, default=6)
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--prompt-tokens", type=int, default=1500)
    parser.add_argument(
        "--cells-per-sequence", type=int, default=4096, help="n_ctx = this x n_seq_max"
    )
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    path = ModelStore().ensure(args.model)
    padding = args.prompt_tokens // 30  # CONTEXT is about 30 tokens
    n_seq = args.requests * args.width
    rates: dict[str, list[float]] = {"unified": [], "split": []}
    print(
        f"{args.model}: {args.requests} requests x n={args.width} x {args.tokens} tokens, "
        f"~{args.prompt_tokens}-token prompts, n_ctx {args.cells_per_sequence * n_seq}, "
        f"n_seq_max {n_seq}"
    )
    for round_ in range(args.rounds):
        for layout in ("unified", "split"):
            config = ContextConfig(
                n_ctx=args.cells_per_sequence * n_seq,
                n_seq_max=n_seq,
                kv_unified=layout == "unified",
            )
            backend = EmbeddedBackend(LlamaModel(path, config, name=args.model))
            try:
                asyncio.run(load(backend, 1, 1, 8, 0))  # warm-up: page the weights in
                produced, wall = asyncio.run(
                    load(backend, args.requests, args.width, args.tokens, padding)
                )
            finally:
                asyncio.run(backend.aclose())
            rates[layout].append(produced / wall)
            print(
                f"round {round_ + 1} {layout:<8} {produced:6d} tokens {wall:7.1f} s "
                f"{produced / wall:6.1f} tok/s"
            )
    for u, s in zip(rates["unified"], rates["split"], strict=True):
        print(f"split / unified = {s / u:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
