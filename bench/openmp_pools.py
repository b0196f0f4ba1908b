"""Two threads that decode: with and without freeing OpenMP worker pools when idle.

llama.cpp built with OpenMP keeps a worker pool per thread that has decoded (see
``ponder.engine.openmp``). This runs one model's raw llama.cpp loop on the main thread and
its engine on the engine's thread, one after the other and never at once, and prints each
run's decode speed: first as Ponder runs (each thread frees its pool when it stops), then
with both pools kept, as before that fix.

    python bench/openmp_pools.py --model qwen2.5-coder-0.5b-instruct
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from ponder.backends.embedded import EmbeddedBackend
from ponder.config import ContextConfig
from ponder.engine import openmp
from ponder.engine.llama_model import LlamaModel
from ponder.engine.weights import ModelStore
from ponder.types import Message
from throughput import PROMPT, engine_decode, raw_decode, request

ORDER = ("raw", "raw", "engine", "engine", "raw", "raw", "engine", "raw")


def _no_releaser() -> Callable[[], None] | None:
    return None


def run(name: str, tokens: int, keep_pools: bool) -> list[tuple[str, float]]:
    releaser = openmp.worker_releaser
    if keep_pools:
        # As before the fix: no thread ever hands its pool back.
        openmp.worker_releaser = _no_releaser
    try:
        return _measure(name, tokens)
    finally:
        openmp.worker_releaser = releaser


def _measure(name: str, tokens: int) -> list[tuple[str, float]]:
    model = LlamaModel(ModelStore().ensure(name), ContextConfig(n_ctx=4096), name=name)
    backend = EmbeddedBackend(model, name=name)
    messages = (Message("user", PROMPT),)
    prompt = model.chat_tokens(list(messages))
    out: list[tuple[str, float]] = []
    try:
        raw_decode(model, prompt, 1, 4)  # warm up
        for step in ORDER:
            if step == "raw":
                timing = raw_decode(model, prompt, 1, tokens)
            else:
                timing = asyncio.run(engine_decode(backend, request(messages, 1, 1, tokens)))
            out.append((step, timing.decode_tps))
    finally:
        asyncio.run(backend.aclose())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    for keep in (False, True):
        label = "pools kept (before the fix)" if keep else "pools freed when idle (Ponder)"
        rows = run(args.model, args.tokens, keep)
        print(f"{label}: " + "  ".join(f"{step} {tps:.1f}" for step, tps in rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
