"""Backfilling admission against strict first come, first served, side by side in one run.

The workload is the one that made backfilling worth building: a wide request (a sample-bank
draw that needs every sequence slot) waits behind a long running one, and short one-path
requests (a strategy's greedy first pass, a judge call) arrive behind it.

  long   n = slots/2 paths, --long tokens each: holds half the slots
  wide   n = slots paths, --wide tokens each: arrives next, waits for every slot
  short  --shorts requests of one path, --short tokens each: arrive last

Every path generates exactly its max_tokens (end-of-generation is ignored), so both modes do
the same work. For each mode the script reports when each class of request finished (seconds
from the first arrival), the makespan, and aggregate decoded tokens/s. Backfilling must not
delay the wide request; it should finish the short ones far sooner.

    python bench/backfill.py --model qwen2.5-coder-0.5b-instruct
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ponder.backends.base import GenerationStream
from ponder.backends.embedded import EmbeddedBackend
from ponder.config import ContextConfig
from ponder.engine.llama_model import LlamaModel
from ponder.engine.weights import ModelStore
from ponder.types import Delta, GenerationRequest, Message, SamplingParams

PROMPT = "Write a detailed story about a lighthouse keeper who discovers a message in a bottle."


@dataclass
class Outcome:
    mode: str
    long_s: float
    wide_s: float
    shorts_s: list[float]
    makespan_s: float
    tokens: int
    backfilled: int

    @property
    def tps(self) -> float:
        return self.tokens / self.makespan_s

    @property
    def shorts_mean_s(self) -> float:
        return statistics.fmean(self.shorts_s)


def request(n: int, tokens: int, seed: int) -> GenerationRequest:
    sampling = SamplingParams(temperature=0.8, seed=seed, max_tokens=tokens, ignore_eos=True)
    return GenerationRequest(messages=(Message("user", PROMPT),), sampling=sampling, n=n)


async def workload(
    backend: EmbeddedBackend, mode: str, slots: int, args: argparse.Namespace
) -> Outcome:
    started = time.perf_counter()
    backfilled = backend.engine.stats.backfilled

    async def timed(req: GenerationRequest) -> tuple[float, int]:
        result = await backend.generate(req)
        return time.perf_counter() - started, result.usage.completion_tokens

    async def drain(stream: GenerationStream, deltas: AsyncIterator[Delta]) -> tuple[float, int]:
        async for _ in deltas:
            pass
        return time.perf_counter() - started, stream.usage.completion_tokens

    # The long request's first token means it holds its slots; the others queue behind it.
    stream = backend.stream(request(slots // 2, args.long, 1))
    deltas = aiter(stream)
    await anext(deltas)
    async with asyncio.TaskGroup() as group:
        long = group.create_task(drain(stream, deltas))
        wide = group.create_task(timed(request(slots, args.wide, 2)))
        await asyncio.sleep(0.01)
        shorts = [
            group.create_task(timed(request(1, args.short, 10 + i))) for i in range(args.shorts)
        ]
    done = [long.result(), wide.result(), *(s.result() for s in shorts)]
    return Outcome(
        mode=mode,
        long_s=long.result()[0],
        wide_s=wide.result()[0],
        shorts_s=[s.result()[0] for s in shorts],
        makespan_s=max(t for t, _ in done),
        tokens=sum(n for _, n in done),
        backfilled=backend.engine.stats.backfilled - backfilled,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--long", type=int, default=256, help="tokens per path of the long one")
    parser.add_argument("--wide", type=int, default=64, help="tokens per path of the wide one")
    parser.add_argument("--short", type=int, default=32, help="tokens of each short request")
    parser.add_argument("--shorts", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per mode")
    args = parser.parse_args(argv)
    path = ModelStore().ensure(args.model)
    backends = {
        mode: EmbeddedBackend(
            LlamaModel(
                path,
                ContextConfig(n_ctx=8192, n_seq_max=args.slots, backfill=mode == "backfill"),
                name=args.model,
            )
        )
        for mode in ("fifo", "backfill")
    }
    outcomes: list[Outcome] = []
    try:
        # Alternate the modes, so that drift in the machine's speed hits both alike.
        for _ in range(args.rounds):
            for mode, backend in backends.items():
                outcomes.append(asyncio.run(workload(backend, mode, args.slots, args)))
    finally:
        for backend in backends.values():
            asyncio.run(backend.aclose())
    print(
        f"{args.model}: {args.slots} slots; long n={args.slots // 2}x{args.long}, "
        f"wide n={args.slots}x{args.wide}, {args.shorts} shorts x{args.short} tokens"
    )
    print(
        f"{'mode':<9} {'long s':>7} {'wide s':>7} {'shorts mean s':>14} {'last short s':>13}"
        f" {'makespan s':>11} {'tok/s':>7} {'backfilled':>10}"
    )
    for o in outcomes:
        print(
            f"{o.mode:<9} {o.long_s:7.2f} {o.wide_s:7.2f} {o.shorts_mean_s:14.2f}"
            f" {max(o.shorts_s):13.2f} {o.makespan_s:11.2f} {o.tps:7.1f} {o.backfilled:10d}"
        )
    by_mode = {mode: [o for o in outcomes if o.mode == mode] for mode in ("fifo", "backfill")}

    def mean(mode: str, value: str) -> float:
        return statistics.fmean(float(getattr(o, value)) for o in by_mode[mode])

    print(
        f"backfill / fifo: shorts' mean finish {mean('backfill', 'shorts_mean_s') / mean('fifo', 'shorts_mean_s'):.2f}x,"
        f" wide finish {mean('backfill', 'wide_s') / mean('fifo', 'wide_s'):.2f}x,"
        f" makespan {mean('backfill', 'makespan_s') / mean('fifo', 'makespan_s'):.2f}x,"
        f" tokens/s {mean('backfill', 'tps') / mean('fifo', 'tps'):.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
