"""What Ponder adds to a request it only passes through, measured side by side in one run.

Three processes on 127.0.0.1: a fast fake OpenAI endpoint (a raw ASGI app under uvicorn
returning a canned completion, or a canned stream of chunks), a Ponder server in
pass-through mode (``default_strategy = "none"``, the fake registered as a provider's model,
``ponder.server.app.create_app`` under uvicorn), and this script as the client, a minimal
keep-alive HTTP/1.1 client on asyncio, far cheaper than either server. The same requests go
direct to the fake and through Ponder, alternating:

* sequential latency: N requests one at a time, direct and through Ponder taking turns
  request by request (the first of each pair alternating); "added" is Ponder's percentile
  minus the direct one;
* throughput: C concurrent connections, each sending its next request when the last
  answered, for S seconds; direct and through Ponder take turns round by round.

Both for plain (non-streaming) and streaming requests. Then the verdict on the P3 goals:
added latency <= 1 ms p50 and <= 5 ms p99 sequential (non-streaming), >= 1,000 req/s through
one Ponder worker at 32 concurrent (non-streaming).

    python bench/overhead.py                       # about 40 s
    python bench/overhead.py --workers 2 --json bench/results/overhead.json

Every process runs on this machine, so on few cores the client and the fake take CPU from
Ponder: the numbers are an upper bound on what Ponder adds. Access logs are off in both
servers unless --access-log (``ponder serve`` logs at info, access log included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import time
from contextlib import AbstractContextManager, ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import launch
from fake_endpoint import MODEL, check
from launch import add_serve_arguments, environment, free_port
from loopback_client import Connection, chat_request
from overhead_servers import serve

GOALS = {"added_p50_ms": 1.0, "added_p99_ms": 5.0, "through_rps": 1000.0}


def server(
    role: str, port: int, *, script: str | Path = __file__, **options: Any
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """Run this script's server ``role`` (or ``script``'s) until the block ends, as
    :func:`launch.server` does; bench/admission_overhead.py starts the canned fake so."""
    return launch.server(role, port, script=script, **options)


# -- the requests -------------------------------------------------------------------------
def prepared(port: int, stream: bool) -> bytes:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say something canned."}],
        "max_tokens": 16,
    }
    if stream:
        body["stream"] = True
    return chat_request(port, body, "bench")


# -- measurements -------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    port: int


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def sequential(
    targets: list[Target], stream: bool, n: int, warmup: int
) -> dict[str, list[float]]:
    """Latencies in ms, the targets taking turns request by request."""
    conns = {t.name: Connection(t.port) for t in targets}
    raws = {t.name: prepared(t.port, stream) for t in targets}
    out: dict[str, list[float]] = {t.name: [] for t in targets}
    try:
        for i in range(warmup + n):
            order = targets if i % 2 == 0 else targets[::-1]
            for t in order:
                started = time.perf_counter()
                status, body = await conns[t.name].request(raws[t.name])
                elapsed = (time.perf_counter() - started) * 1000
                if not check(status, body, stream):
                    raise RuntimeError(f"{t.name}: bad reply {status}: {body[:300]!r}")
                if i >= warmup:
                    out[t.name].append(elapsed)
    finally:
        for conn in conns.values():
            await conn.close()
    return out


async def throughput(target: Target, stream: bool, concurrency: int, seconds: float) -> float:
    raw = prepared(target.port, stream)
    done = 0
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done, errors
        conn = Connection(target.port)
        try:
            while time.perf_counter() < deadline:
                status, body = await conn.request(raw)
                if check(status, body, stream):
                    done += 1
                else:
                    errors += 1
        finally:
            await conn.close()

    started = time.perf_counter()
    async with asyncio.timeout(seconds + 30):
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{target.name}: {errors} bad replies under load")
    return done / elapsed


@dataclass
class Row:
    kind: str  # "plain" or "stream"
    target: str  # what the direct calls are compared with
    direct_p50_ms: float
    direct_p99_ms: float
    p50_ms: float
    p99_ms: float
    added_p50_ms: float
    added_p99_ms: float
    direct_rps: float
    rps: float
    rounds_direct_rps: list[float]
    rounds_rps: list[float]


async def measure(args: argparse.Namespace, direct: Target, others: list[Target]) -> list[Row]:
    targets = [direct, *others]
    rows = []
    for stream in (False, True):
        kind = "stream" if stream else "plain"
        lat = await sequential(targets, stream, args.requests, args.warmup)
        # Warm every connection of each pool before counting.
        for target in targets:
            await throughput(target, stream, args.concurrency, 0.3)
        rps: dict[str, list[float]] = {t.name: [] for t in targets}
        for r in range(args.rounds):
            for target in targets if r % 2 == 0 else targets[::-1]:
                rps[target.name].append(
                    await throughput(target, stream, args.concurrency, args.seconds)
                )
        d = lat[direct.name]
        for other in others:
            o = lat[other.name]
            rows.append(
                Row(
                    kind=kind,
                    target=other.name,
                    direct_p50_ms=percentile(d, 50),
                    direct_p99_ms=percentile(d, 99),
                    p50_ms=percentile(o, 50),
                    p99_ms=percentile(o, 99),
                    added_p50_ms=percentile(o, 50) - percentile(d, 50),
                    added_p99_ms=percentile(o, 99) - percentile(d, 99),
                    direct_rps=statistics.median(rps[direct.name]),
                    rps=statistics.median(rps[other.name]),
                    rounds_direct_rps=rps[direct.name],
                    rounds_rps=rps[other.name],
                )
            )
    return rows


# -- the report ---------------------------------------------------------------------------
def report(rows: list[Row], args: argparse.Namespace, env: dict[str, str]) -> bool:
    print(
        f"\nPonder pass-through overhead: {args.requests} sequential requests per target and "
        f"kind, {args.rounds} rounds x {args.seconds:g} s at {args.concurrency} concurrent; "
        f"ponder workers={args.workers}; " + ", ".join(f"{k}={v}" for k, v in env.items())
    )
    header = (
        f"{'kind':<7}{'via':<8}{'direct p50':>11}{'p99':>8}{'via p50':>10}{'p99':>8}"
        f"{'added p50':>11}{'p99':>8}{'direct rps':>12}{'via rps':>10}{'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.kind:<7}{r.target:<8}{r.direct_p50_ms:>11.2f}{r.direct_p99_ms:>8.2f}"
            f"{r.p50_ms:>10.2f}{r.p99_ms:>8.2f}"
            f"{r.added_p50_ms:>11.2f}{r.added_p99_ms:>8.2f}"
            f"{r.direct_rps:>12,.0f}{r.rps:>10,.0f}{r.rps / r.direct_rps:>7.2f}"
        )
    print("(latencies in ms; rps: median of rounds; ratio: via / direct)")
    if any(r.target == "module" for r in rows):
        print(
            "module: a bare FastAPI route on ponder.gateway.passthrough, not the Ponder server "
            "(the floor an integration can reach)"
        )
    plain = next(r for r in rows if r.kind == "plain" and r.target == "ponder")
    checks = [
        (
            f"added latency p50 <= {GOALS['added_p50_ms']:g} ms",
            plain.added_p50_ms,
            plain.added_p50_ms <= GOALS["added_p50_ms"],
        ),
        (
            f"added latency p99 <= {GOALS['added_p99_ms']:g} ms",
            plain.added_p99_ms,
            plain.added_p99_ms <= GOALS["added_p99_ms"],
        ),
        (
            f">= {GOALS['through_rps']:,.0f} req/s through Ponder at {args.concurrency} concurrent",
            plain.rps,
            plain.rps >= GOALS["through_rps"],
        ),
    ]
    print(f"\nP3 goals (the Ponder server, non-streaming, {args.workers} worker(s)):")
    for label, value, ok in checks:
        print(f"  {'MET   ' if ok else 'MISSED'} {label}: {value:,.2f}")
    met = all(ok for _, _, ok in checks)
    print("verdict:", "all P3 goals met" if met else "P3 goals not met")
    return met


async def run(args: argparse.Namespace) -> list[Row]:
    fake_port, ponder_port, module_port = free_port(), free_port(), free_port()
    upstream = {"PONDER_BENCH_UPSTREAM": f"http://127.0.0.1:{fake_port}/v1"}
    log = args.access_log
    with ExitStack() as stack:
        stack.enter_context(server("fake", fake_port, workers=1, access_log=log, env={}))
        stack.enter_context(
            server("ponder", ponder_port, workers=args.workers, access_log=log, env=upstream)
        )
        others = [Target("ponder", ponder_port)]
        if args.module:
            stack.enter_context(
                server("module", module_port, workers=args.workers, access_log=log, env=upstream)
            )
            others.append(Target("module", module_port))
        return await measure(args, Target("direct", fake_port), others)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="sequential, per target")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="per throughput round")
    parser.add_argument("--workers", type=int, default=1, help="Ponder's uvicorn workers")
    parser.add_argument("--access-log", action="store_true", help="as `ponder serve` does")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--module",
        action="store_true",
        help="also measure a bare FastAPI route on ponder.gateway.passthrough",
    )
    add_serve_arguments(parser, ["fake", "ponder", "module"], workers=False)  # --workers: above
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.workers, args.access_log)
        return
    env = environment()
    if env["loop"] == "uvloop":
        import uvloop

        rows = uvloop.run(run(args))
    else:
        rows = asyncio.run(run(args))
    met = report(rows, args, env)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
        data["environment"] = env
        data |= {"goals": GOALS, "met": met, "rows": [asdict(r) for r in rows]}
        args.json.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
