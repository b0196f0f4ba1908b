"""Overspend under concurrency: many requests racing for the last of a budget, on SQLite, on
PostgreSQL, and on PostgreSQL behind two Ponder replicas.

Processes on 127.0.0.1: a fake OpenAI endpoint (a raw ASGI app that waits ``--delay-ms``,
then answers with the request's worst case, the prompt's upper bound plus ``max_tokens``, as
its usage, and counts every token it reports), one or two Ponder servers in pass-through mode
(``ponder.server.app.create_app`` under uvicorn, a ``[prices]`` entry for the fake's model,
an admin key), and this script as the client. For each database (a SQLite file; a throwaway
PostgreSQL started from Debian's binaries as ``tests/postgres.py`` does, with one Ponder; the
same with two Ponder processes on one database, requests split between them) and for each
budget unit (tokens, usd), each run:

1. creates a team and a key, and gives the key a ``total`` budget at the edge: enough for
   ``--fit`` requests' reservations and one token (one micro-dollar) short of one more;
2. fires ``--concurrency`` chat requests at once (fixed ``max_tokens``), each on a
   connection opened beforehand;
3. reads the ledger back (``GET /v1/usage?group_by=key`` with the key itself), the budget's
   counters (the store, directly), and what the fake says it served.

Overspend is ``max(0, spent - limit)``; the goal is overspend <= one request's reservation
(by construction it should be 0: a reservation is the request's worst case, held in the same
transaction that checks the limit). The ledger must also equal what the fake served, exactly
to the token (and to the micro-dollar at the configured prices), the budget's ``spent`` must
equal the ledger, and nothing may stay reserved.

    python bench/budget_race.py                  # 20 runs per database and unit, ~80 s
    python bench/budget_race.py --runs 3         # a quick pass
    python bench/budget_race.py --databases sqlite --runs 5

PostgreSQL needs its server binaries (``apt-get install postgresql``); without them the
PostgreSQL rows are skipped with the reason shown. The script stops every process it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx

from budget_race_servers import (
    ADMIN,
    MODEL,
    PRICE_COMPLETION,
    PRICE_PROMPT,
    postgres,
    prompt_bound,
    serve,
)
from launch import add_serve_arguments, free_port, server
from loopback_client import Connection, chat_request

MESSAGES = [{"role": "user", "content": "How much of the budget is left for me?"}]
DATABASES = {
    "sqlite": ("SQLite file, 1 replica", 1),
    "postgres": ("PostgreSQL, 1 replica", 1),
    "postgres2": ("PostgreSQL, 2 replicas", 2),
}


# -- one run ------------------------------------------------------------------------------
@dataclass
class Run:
    database: str
    unit: str
    limit: float  # tokens, or dollars
    reservation: float  # one request's, in the same unit
    ok: int
    refused: int
    errors: list[str]
    spent: float  # the ledger's, in the unit
    budget_spent: float
    budget_reserved: float
    ledger_tokens: int
    ledger_micros: int
    ledger_requests: int
    fake_tokens: int
    fake_micros: int
    fake_requests: int
    seconds: float

    @property
    def overspend(self) -> float:
        return max(0.0, self.spent - self.limit)

    @property
    def exact(self) -> bool:
        """The ledger is what the fake served (tokens, money, requests) and what the budget
        was charged, and nothing stays reserved."""
        return (
            self.ledger_tokens == self.fake_tokens
            and self.ledger_micros == self.fake_micros
            and self.ledger_requests == self.fake_requests == self.ok
            and round(self.budget_spent * self.scale) == round(self.spent * self.scale)
            and self.budget_reserved == 0
        )

    @property
    def scale(self) -> int:
        return 1_000_000 if self.unit == "usd" else 1


def chat_bytes(port: int, secret: str, max_tokens: int) -> bytes:
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": max_tokens}
    return chat_request(port, body, secret)


async def fire(ports: list[int], secret: str, args: argparse.Namespace) -> list[tuple[int, bytes]]:
    """``--concurrency`` requests at once, split between the replicas, each on a connection
    opened (and used once for /health) beforehand."""
    conns = [Connection(ports[i % len(ports)]) for i in range(args.concurrency)]
    try:
        async with asyncio.timeout(120):
            for conn in conns:
                health = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{conn.port}\r\n\r\n"
                status, _ = await conn.request(health.encode())
                if status != 200:
                    raise RuntimeError(f"/health on port {conn.port} answered {status}")
            raws = {p: chat_bytes(p, secret, args.max_tokens) for p in ports}
            return await asyncio.gather(*(c.request(raws[c.port]) for c in conns))
    finally:
        for conn in conns:
            await conn.close()


async def one_run(
    database: str,
    unit: str,
    ports: list[int],
    fake_port: int,
    store: Any,
    client: httpx.AsyncClient,
    args: argparse.Namespace,
) -> Run:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    base = f"http://127.0.0.1:{ports[0]}"
    team = f"race-{database}-{unit}-{secrets.token_hex(4)}"
    (
        await client.post(f"{base}/v1/admin/teams", json={"name": team}, headers=admin)
    ).raise_for_status()
    made = await client.post(
        f"{base}/v1/admin/keys", json={"team": team, "name": team}, headers=admin
    )
    made.raise_for_status()
    key_id, secret = made.json()["id"], made.json()["key"]

    tokens = prompt_bound(MESSAGES) + args.max_tokens  # one request's reservation
    if unit == "tokens":
        reservation: float = tokens
        limit: float = args.fit * tokens + tokens - 1
    else:  # dollars: reserved at the highest of the model's prices, in micro-dollars
        micros = round(tokens * max(PRICE_PROMPT, PRICE_COMPLETION))
        reservation = micros / 1e6
        limit = (args.fit * micros + micros - 1) / 1e6
    budget = {"scope": "key", "owner": key_id, "unit": unit, "period": "total", "limit": limit}
    (await client.put(f"{base}/v1/admin/budgets", json=budget, headers=admin)).raise_for_status()

    before = (await client.get(f"http://127.0.0.1:{fake_port}/stats")).json()
    started = time.perf_counter()
    replies = await fire(ports, secret, args)
    seconds = time.perf_counter() - started
    after = (await client.get(f"http://127.0.0.1:{fake_port}/stats")).json()

    ok = refused = 0
    errors = []
    for status, body in replies:
        if status == 200:
            ok += 1
        elif status == 429 and b"budget_exceeded" in body:
            refused += 1
        else:
            errors.append(f"{status} {body[:200]!r}")

    usage = await client.get(
        f"{base}/v1/usage",
        params={"group_by": "key"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    usage.raise_for_status()
    rows = [r for r in usage.json()["data"] if r["key"] == key_id]
    row = rows[0] if rows else {"total_tokens": 0, "cost_usd": 0.0, "requests": 0}
    (held,) = [b for b in await store.budgets(await store.get_key(key_id)) if b.scope == "key"]

    served = {k: after[k] - before[k] for k in after}
    ledger_micros = round(row["cost_usd"] * 1e6)
    return Run(
        database=database,
        unit=unit,
        limit=limit,
        reservation=reservation,
        ok=ok,
        refused=refused,
        errors=errors,
        spent=row["total_tokens"] if unit == "tokens" else ledger_micros / 1e6,
        budget_spent=held.spent,
        budget_reserved=held.reserved,
        ledger_tokens=row["total_tokens"],
        ledger_micros=ledger_micros,
        ledger_requests=row["requests"],
        fake_tokens=served["prompt_tokens"] + served["completion_tokens"],
        fake_micros=round(
            served["prompt_tokens"] * PRICE_PROMPT + served["completion_tokens"] * PRICE_COMPLETION
        ),
        fake_requests=served["requests"],
        seconds=seconds,
    )


async def race(database: str, url: str, fake_port: int, args: argparse.Namespace) -> list[Run]:
    """Every run of one database: its Ponder replicas started on ``url``, then stopped."""
    from ponder.tenancy import TenancyStore

    replicas = DATABASES[database][1]
    ports = [free_port() for _ in range(replicas)]
    env = {"PONDER_BENCH_UPSTREAM": f"http://127.0.0.1:{fake_port}/v1", "PONDER_DATABASE_URL": url}
    runs = []
    with ExitStack() as stack:
        for port in ports:  # one at a time: the first creates the schema
            stack.enter_context(
                server("ponder", port, workers=1, access_log=False, env=env, script=__file__)
            )
        store = await TenancyStore.open(url)
        try:
            async with httpx.AsyncClient(timeout=60) as client:
                for i in range(args.runs):
                    for unit in args.units:
                        run = await one_run(database, unit, ports, fake_port, store, client, args)
                        runs.append(run)
                        if args.verbose:
                            print(
                                f"  {database:<10}{unit:<7}run {i + 1:>3}: ok={run.ok} "
                                f"refused={run.refused} errors={len(run.errors)} "
                                f"spent={run.spent:g} limit={run.limit:g} "
                                f"overspend={run.overspend:g} exact={run.exact} "
                                f"({run.seconds:.2f} s)",
                                flush=True,
                            )
        finally:
            await store.aclose()
    return runs


# -- report -------------------------------------------------------------------------------
def report(runs: list[Run], skipped: dict[str, str], args: argparse.Namespace) -> bool:
    print(
        f"\nBudget race: {args.runs} run(s) per database and unit; {args.concurrency} concurrent "
        f"requests per run, max_tokens={args.max_tokens}, fake latency {args.delay_ms:g} ms; "
        f"each key's budget fits {args.fit} reservations and is one unit short of "
        f"{args.fit + 1}; prices {PRICE_PROMPT:g}/{PRICE_COMPLETION:g} $ per M tokens"
        + (f"; CONTROL: the fake overruns max_tokens by {args.overrun}" if args.overrun else "")
    )
    header = (
        f"{'database':<24}{'unit':<8}{'runs':>5}{'limit':>12}{'reservation':>13}"
        f"{'ok min':>8}{'max':>5}{'refused':>9}{'errors':>8}{'spent min':>12}{'max':>12}"
        f"{'overspend min':>15}{'max':>12}{'ledger exact':>14}{'goal':>8}"
    )
    print(header)
    print("-" * len(header))
    met_all = True
    for database, (label, _) in DATABASES.items():
        if database in skipped:
            print(f"{label:<24}skipped: {skipped[database]}")
            continue
        for unit in args.units:
            mine = [r for r in runs if r.database == database and r.unit == unit]
            if not mine:
                continue
            ok = [r.ok for r in mine]
            spent = [r.spent for r in mine]
            over = [r.overspend for r in mine]
            reservation = mine[0].reservation
            exact = sum(r.exact for r in mine)
            errors = sum(len(r.errors) for r in mine)
            met = max(over) <= reservation and exact == len(mine) and errors == 0
            met_all &= met

            def amount(value: float, unit: str = unit) -> str:
                return f"${value:.6f}" if unit == "usd" else f"{value:g}"

            print(
                f"{label:<24}{unit:<8}{len(mine):>5}{amount(mine[0].limit):>12}"
                f"{amount(reservation):>13}{min(ok):>8}{max(ok):>5}"
                f"{sum(r.refused for r in mine):>9}{errors:>8}"
                f"{amount(min(spent)):>12}{amount(max(spent)):>12}"
                f"{amount(min(over)):>15}{amount(max(over)):>12}"
                f"{f'{exact}/{len(mine)}':>14}{'met' if met else 'MISSED':>8}"
            )
    print(
        "tokens or dollars; ok: requests answered 200 in a run; refused: 429 budget_exceeded, "
        "all runs; errors: any other reply, all runs;\nspent: the ledger's total for the key "
        "in a run; overspend = max(0, spent - limit); ledger exact: runs whose ledger equals "
        "what the fake served\n(tokens, micro-dollars, requests) and the budget's spent, with "
        "nothing left reserved"
    )
    for r in runs:
        for error in r.errors[:3]:
            print(f"  error ({r.database}, {r.unit}): {error}")
        if not r.exact:
            print(
                f"  not exact ({r.database}, {r.unit}): ledger {r.ledger_tokens} tok / "
                f"{r.ledger_micros} u$ / {r.ledger_requests} req; fake {r.fake_tokens} tok / "
                f"{r.fake_micros} u$ / {r.fake_requests} req; ok={r.ok}; budget spent "
                f"{r.budget_spent:g}, reserved {r.budget_reserved:g}"
            )
    full = [r for r in runs if r.unit == "tokens"]
    if full and not args.overrun and any(r.ok != args.fit for r in full):
        print(
            f"note: the fake spends each reservation in full, so exactly {args.fit} token-budget "
            "requests should succeed per run; some runs differ (see ok min/max)"
        )
    print(
        "\ngoal: overspend <= one request's reservation, the ledger exact to the token, no errors"
    )
    print("verdict:", "goal met" if met_all else "goal MISSED")
    return met_all


async def main_async(args: argparse.Namespace) -> bool:
    runs: list[Run] = []
    skipped: dict[str, str] = {}
    fake_port = free_port()
    env = {"PONDER_BENCH_DELAY_MS": str(args.delay_ms), "PONDER_BENCH_OVERRUN": str(args.overrun)}
    with ExitStack() as stack:
        stack.enter_context(
            server("fake", fake_port, workers=1, access_log=False, env=env, script=__file__)
        )
        new_database: Callable[[], str] | str | None = None  # str: why PostgreSQL is missing
        for database in args.databases:
            if database == "sqlite":
                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="ponder-race-"))
                url = f"sqlite:///{folder}/ponder.sqlite3"
            else:
                if new_database is None:
                    try:
                        new_database = stack.enter_context(postgres())
                    except (LookupError, RuntimeError) as error:
                        new_database = str(error)[:300]
                if isinstance(new_database, str):
                    skipped[database] = new_database
                    continue
                url = new_database()
            print(f"{DATABASES[database][0]}: {args.runs} run(s)...", flush=True)
            runs += await race(database, url, fake_port, args)
    return report(runs, skipped, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="per database and unit")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--fit", type=int, default=10, help="reservations the budget affords")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="the fake's latency")
    parser.add_argument(
        "--databases",
        type=lambda s: [d for d in s.split(",") if d],
        default=list(DATABASES),
        help=f"comma-separated, of {','.join(DATABASES)}",
    )
    parser.add_argument(
        "--units", type=lambda s: s.split(","), default=["tokens", "usd"], help="tokens,usd"
    )
    parser.add_argument(
        "--overrun",
        type=int,
        default=0,
        help="a control: the fake reports this many tokens past max_tokens (an endpoint that "
        "ignores it), which pass-through cannot stop, so the bench must report overspend",
    )
    parser.add_argument("--verbose", action="store_true", help="a line per run")
    add_serve_arguments(parser, ["fake", "ponder"])
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    unknown = set(args.databases) - set(DATABASES) or set(args.units) - {"tokens", "usd"}
    if unknown or args.runs < 1 or args.concurrency < 1 or args.fit < 0:
        parser.error(f"bad choice: {sorted(unknown) or 'runs/concurrency/fit'}")
    met = asyncio.run(main_async(args))
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
