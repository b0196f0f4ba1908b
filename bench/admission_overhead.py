"""What keys cost a request: the latency that authentication, admission (budgets and rate
limits reserved in one transaction) and the durable ledger (the settle) add, measured side by
side in one run on SQLite.

Processes on 127.0.0.1: the fast fake OpenAI endpoint of ``bench/overhead.py`` (canned reply,
usage 9 + 8 tokens), three Ponder servers in pass-through mode (``default_strategy = "none"``,
``create_app`` under uvicorn, one worker each), and this script as the client (the cheap
keep-alive client of ``bench/overhead.py``):

* ``no database``: the gateway never opens its store, so no auth, admission or ledger at all;
* ``no keys``: a SQLite file with no keys and no admin key, as a fresh ``ponder serve`` runs
  (single-user: each request checks that no key exists, and writes a ledger row);
* ``keys``: a SQLite file, requests with an API key whose key has a tokens budget and a rate
  limit and whose team has a dollar budget (all far from their limits), so each request is
  authenticated, reserved against three counters and settled into the ledger.

Requests are sequential and non-streaming (``--stream`` for streams), ``max_tokens`` fixed.
The targets take turns round by round (``--rounds`` rounds of ``--requests`` each, the order
rotating every round); "added" is a percentile minus the same percentile of the other target.
The goal: ``keys`` adds <= 2 ms at p50 over the same server without keys; the row against
``no database`` shows the whole of auth + admission + ledger.

    python bench/admission_overhead.py                 # about 45 s
    python bench/admission_overhead.py --rounds 20 --requests 200

Every process shares this machine's cores, so on few cores the numbers are an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from launch import add_serve_arguments
from overhead import MODEL, Connection, check, environment, free_port, percentile, server

ADMIN = "bench-admin-secret"
GOAL_ADDED_P50_MS = 2.0
TARGETS = ("direct", "no database", "no keys", "keys")
MODES = {"no database": "nodb", "no keys": "nokeys", "keys": "keys"}


# -- the Ponder servers -------------------------------------------------------------------
def ponder_app() -> Any:
    """Ponder in pass-through mode, for uvicorn's factory; ``$PONDER_BENCH_MODE`` says which
    of the three (see the module docstring)."""
    from ponder.config import PonderConfig, Price, ProviderConfig
    from ponder.gateway import Gateway
    from ponder.server.app import create_app

    provider = ProviderConfig(
        name="fake", base_url=os.environ["PONDER_BENCH_UPSTREAM"], models=(MODEL,), max_retries=0
    )
    config = PonderConfig(
        providers=(provider,), default_strategy=None, prices={MODEL: Price(1.0, 2.0)}
    )
    mode = os.environ["PONDER_BENCH_MODE"]
    if mode == "nodb":

        class NoDatabase(Gateway):
            async def start(self) -> None:
                """Never open the store: every caller is the local user, nothing recorded."""

        return create_app(config, gateway=NoDatabase(config, admin_key=None))
    return create_app(config, admin_key=ADMIN if mode == "keys" else "")


def serve(role: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        f"admission_overhead:{role}_app",
        factory=True,
        app_dir=str(Path(__file__).resolve().parent),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


def configure_key(port: int) -> str:
    """A team with a dollar budget, a key with a tokens budget and a rate limit; its secret."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    base = f"http://127.0.0.1:{port}/v1/admin"
    with httpx.Client(headers=admin, timeout=30) as client:
        client.post(f"{base}/teams", json={"name": "bench"}).raise_for_status()
        made = client.post(f"{base}/keys", json={"team": "bench", "name": "bench"})
        made.raise_for_status()
        key = made.json()
        for budget in (
            {"scope": "key", "owner": key["id"], "unit": "tokens", "period": "total"},
            {"scope": "team", "owner": "bench", "unit": "usd", "period": "monthly"},
        ):
            client.put(f"{base}/budgets", json={**budget, "limit": 1e9}).raise_for_status()
        limits = {"scope": "key", "owner": key["id"], "rpm": 10**7, "tpm": 10**10}
        client.put(f"{base}/rate_limits", json=limits).raise_for_status()
    return str(key["key"])


# -- measuring ----------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    port: int
    bearer: str


def prepared(target: Target, stream: bool, max_tokens: int) -> bytes:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say something canned."}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
    payload = json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{target.port}\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {target.bearer}\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def rounds(
    targets: list[Target], args: argparse.Namespace
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Latencies in ms per target (all rounds pooled), and each round's p50 per target."""
    conns = {t.name: Connection(t.port) for t in targets}
    raws = {t.name: prepared(t, args.stream, args.max_tokens) for t in targets}
    pooled: dict[str, list[float]] = {t.name: [] for t in targets}
    per_round: dict[str, list[float]] = {t.name: [] for t in targets}

    async def one(target: Target) -> float:
        started = time.perf_counter()  # not the loop's clock: uvloop's counts whole ms
        status, body = await conns[target.name].request(raws[target.name])
        elapsed = (time.perf_counter() - started) * 1000
        if not check(status, body, args.stream):
            raise RuntimeError(f"{target.name}: bad reply {status}: {body[:300]!r}")
        return elapsed

    try:
        async with asyncio.timeout(args.rounds * len(targets) * args.requests + 120):
            for target in targets:  # warm every connection and code path first
                for _ in range(args.warmup):
                    await one(target)
            for r in range(args.rounds):
                k = r % len(targets)
                order = targets[k:] + targets[:k]
                if r // len(targets) % 2:
                    order = order[::-1]
                for target in order:
                    # A fresh connection (uvicorn closes one idle for 5 s), warmed untimed.
                    await conns[target.name].close()
                    await one(target)
                    times = [await one(target) for _ in range(args.requests)]
                    pooled[target.name] += times
                    per_round[target.name].append(statistics.median(times))
    finally:
        for conn in conns.values():
            await conn.close()
    return pooled, per_round


def ledger_requests(port: int, bearer: str) -> int:
    reply = httpx.get(
        f"http://127.0.0.1:{port}/v1/usage",
        params={"group_by": "key"},
        headers={"Authorization": f"Bearer {bearer}"},
    )
    reply.raise_for_status()
    return sum(int(row["requests"]) for row in reply.json()["data"])


def report(
    pooled: dict[str, list[float]],
    per_round: dict[str, list[float]],
    recorded: int,
    args: argparse.Namespace,
) -> bool:
    env = environment()
    kind = "streaming" if args.stream else "non-streaming"
    print(
        f"\nAdmission overhead ({kind}, sequential): {args.rounds} rounds x {args.requests} "
        f"requests per target, order rotating; {args.warmup} warm-up requests each; SQLite; "
        + ", ".join(f"{k}={v}" for k, v in env.items())
    )
    header = f"{'target':<14}{'p50 ms':>9}{'p99 ms':>9}{'added p50':>11}{'p99':>8}  vs"
    print(header)
    print("-" * (len(header) + 12))
    base = {"direct": None, "no database": "direct", "no keys": "no database", "keys": "no keys"}
    for name in TARGETS:
        lat = pooled[name]
        line = f"{name:<14}{percentile(lat, 50):>9.2f}{percentile(lat, 99):>9.2f}"
        other = base[name]
        if other is not None:
            ref = pooled[other]
            line += (
                f"{percentile(lat, 50) - percentile(ref, 50):>+11.2f}"
                f"{percentile(lat, 99) - percentile(ref, 99):>+8.2f}  {other}"
            )
        print(line)

    def added(name: str, ref: str, q: float) -> float:
        return percentile(pooled[name], q) - percentile(pooled[ref], q)

    def round_spread(name: str, ref: str) -> str:
        deltas = [a - b for a, b in zip(per_round[name], per_round[ref], strict=True)]
        return f"per-round p50 added: min {min(deltas):+.2f}, max {max(deltas):+.2f} ms"

    print(
        f"keys vs no database (auth + admission + ledger, all of it): "
        f"{added('keys', 'no database', 50):+.2f} ms p50, {added('keys', 'no database', 99):+.2f} "
        f"ms p99; {round_spread('keys', 'no database')}"
    )
    print(f"keys vs no keys: {round_spread('keys', 'no keys')}")
    sent = args.rounds * (args.requests + 1) + args.warmup
    print(f"ledger check: the key's ledger holds {recorded} requests of {sent} sent")

    p50 = added("keys", "no keys", 50)
    strict = added("keys", "no database", 50)
    met = p50 <= GOAL_ADDED_P50_MS and recorded == sent
    print(f"\ngoal: keys add <= {GOAL_ADDED_P50_MS:g} ms p50 over the same server without keys")
    print(f"  {'MET   ' if p50 <= GOAL_ADDED_P50_MS else 'MISSED'} vs no keys: {p50:+.2f} ms")
    print(
        f"  {'met   ' if strict <= GOAL_ADDED_P50_MS else 'missed'} (also) vs no database: "
        f"{strict:+.2f} ms"
    )
    print("verdict:", "goal met" if met else "goal MISSED")
    return met


async def run(args: argparse.Namespace) -> bool:
    fake_port = free_port()
    ports = {name: free_port() for name in MODES}
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ponder-adm-")))
        stack.enter_context(server("fake", fake_port, workers=1, access_log=False, env={}))
        for name, mode in MODES.items():
            env = {
                "PONDER_BENCH_UPSTREAM": f"http://127.0.0.1:{fake_port}/v1",
                "PONDER_BENCH_MODE": mode,
                "PONDER_DATABASE_URL": f"sqlite:///{folder / mode}.sqlite3",
            }
            stack.enter_context(
                server("ponder", ports[name], workers=1, access_log=False, env=env, script=__file__)
            )
        secret = configure_key(ports["keys"])
        targets = [Target("direct", fake_port, "bench")]
        targets += [
            Target(name, port, secret if name == "keys" else "bench")
            for name, port in ports.items()
        ]
        pooled, per_round = await rounds(targets, args)
        recorded = ledger_requests(ports["keys"], secret)
    return report(pooled, per_round, recorded, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--requests", type=int, default=100, help="per target and round")
    parser.add_argument("--warmup", type=int, default=50, help="per target")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--stream", action="store_true", help="streaming requests instead")
    add_serve_arguments(parser, ["ponder"])
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    if args.rounds < 1 or args.requests < 1 or args.warmup < 0:
        parser.error("--rounds and --requests must be >= 1, --warmup >= 0")
    if environment()["loop"] == "uvloop":
        import uvloop

        met = uvloop.run(run(args))
    else:
        met = asyncio.run(run(args))
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
