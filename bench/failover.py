"""Failover: with one of two deployments failing half the time, the share of requests that
still succeed, and the latency failover adds, against a healthy pair.

Processes on 127.0.0.1: a fake OpenAI endpoint (``failover_endpoint.py``; every reply after
a fixed service delay, ``--delay-ms``), three Ponder servers in pass-through mode
(``default_strategy = "none"``), and this script as the client, with the ``openai`` SDK
(its own retries off, so that every failure Ponder lets through is seen). In Ponder each
scenario is a public name served by two providers listing it, one always healthy; the
instances differ only in ``[routing]``:

* ``default``: ``num_retries = 2``, ``backoff = 0.01``, the default cooldown (a deployment
  failing ``allowed_fails = 3`` times within 60 s is cooled down for 30 s);
* ``no-retry``: the same with ``num_retries = 0`` (what retries buy);
* ``no-cooldown``: the same with ``allowed_fails`` out of reach (failover by retries
  alone: the failing deployment keeps getting its share of first attempts).

The scenarios (the second deployment of each pair):

a. ``healthy``: healthy too: the baseline;
b. ``flaky``: 503 on a seeded-random half of its requests (the goal: failover hides it);
c. ``flaky, mixed``: fails as often, its failures cycling through a 503, a hang until
   Ponder's per-attempt timeout (``--timeout``) and a dropped connection, all before any
   byte of the reply;
d. ``flaky, no retries``: (b) on ``no-retry``; ``flaky, no cooldown`` and
   ``mixed, no cooldown``: (b) and (c) on ``no-cooldown``;
e. ``one down``: 503 always, so that the cooldown shows.

With the default cooldown a failing deployment is cooled down after its first three
failures and then serves almost nothing for 30 s, so (b), (c) and (e) mostly measure the
healthy deployment; the ``no cooldown`` rows are where failover itself is measured (about
a quarter of their requests meet the failing deployment first).

Each scenario gets ``--requests`` non-streamed and as many streamed (``stream=True``)
requests, ``--concurrency`` at a time, side by side: in rounds of ``--batch`` requests, each
round going through every scenario and mode in a rotated order, so that the machine's drift
falls on all alike. A request succeeds when the whole reply arrives as the fake sent it.

Reported per scenario and mode: success rate, p50/p95 latency (a stream: to its end) and
what they add to the healthy pair's, upstream attempts per request and the failures served
(the fake's counts), the errors the client saw, and Ponder's view of each deployment
(``GET /v1/deployments``). Exits 1 when (b) succeeds for fewer than 99% of its requests.

    python bench/failover.py                    # under a minute on two busy cores
    python bench/failover.py --requests 100 --json /tmp/failover.json

Loopback only; every wait is bounded, and every process it starts is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai

from failover_endpoint import ADMIN, reply_text, serve
from launch import add_serve_arguments, free_port, server

GOAL = 0.99  # the success rate scenario (b) must reach
BASELINE, GOAL_SCENARIO = "healthy", "flaky"
MODES = ("plain", "stream")


def instances() -> dict[str, dict[str, Any]]:
    """Each Ponder instance's [routing] table."""
    routing = {"num_retries": 2, "backoff": 0.01}
    return {
        "default": routing,
        "no-retry": {**routing, "num_retries": 0},
        "no-cooldown": {**routing, "allowed_fails": 1_000_000},
    }


@dataclass(frozen=True, slots=True)
class Scenario:
    label: str
    instance: str
    model: str  # the public name, in its instance
    second: str  # the second deployment's profile (the first is "ok")

    @property
    def deployments(self) -> list[tuple[str, str]]:
        """(provider, profile) of each deployment."""
        return [(f"{self.model}-a", "ok"), (f"{self.model}-b", self.second)]


SCENARIOS = (
    Scenario(BASELINE, "default", "healthy", "ok"),
    Scenario(GOAL_SCENARIO, "default", "flaky", "flaky"),
    Scenario("flaky, mixed", "default", "mixed", "mixed"),
    Scenario("flaky, no retries", "no-retry", "flaky", "flaky"),
    Scenario("flaky, no cooldown", "no-cooldown", "flaky", "flaky"),
    Scenario("mixed, no cooldown", "no-cooldown", "mixed", "mixed"),
    Scenario("one down", "default", "down", "down"),
)
# In every instance, for uncounted requests first (connections made, code paths warm).
WARMUP = Scenario("warm-up", "*", "warmup", "ok")


@dataclass(slots=True)
class Tally:
    """One scenario's requests in one mode: latencies of successes, errors by kind."""

    requests: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # the first error of each kind


# -- the client ---------------------------------------------------------------------------
def error_kind(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.APIError):
        return "error event"  # a stream that began, then failed
    return type(exc).__name__


async def one(client: openai.AsyncOpenAI, model: str, stream: bool) -> str | None:
    """One request; None if the whole expected reply came, else what went wrong."""
    messages: list[Any] = [{"role": "user", "content": "hello"}]
    if not stream:
        completion = await client.chat.completions.create(model=model, messages=messages)
        text = completion.choices[0].message.content
    else:
        parts: list[str] = []
        chunks = await client.chat.completions.create(model=model, messages=messages, stream=True)
        async for chunk in chunks:
            parts.extend(c.delta.content or "" for c in chunk.choices)
        text = "".join(parts)
    return None if text == reply_text() else "wrong reply"


async def batch(
    client: openai.AsyncOpenAI, model: str, stream: bool, count: int, concurrency: int, tally: Tally
) -> None:
    """``count`` requests, ``concurrency`` at a time."""
    left = iter(range(count))

    async def worker() -> None:
        for _ in left:
            started = time.perf_counter()
            try:
                problem = await one(client, model, stream)
            except openai.OpenAIError as exc:
                problem = error_kind(exc)
                cause = f" ({exc.__cause__!r})" if exc.__cause__ else ""
                tally.examples.setdefault(problem, f"{exc}{cause}"[:300])
            elapsed = time.perf_counter() - started
            tally.requests += 1
            if problem is None:
                tally.latencies.append(elapsed)
            else:
                tally.errors[problem] += 1

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, count)):
            group.create_task(worker())


async def drive(
    ports: dict[str, int], args: argparse.Namespace
) -> tuple[dict[tuple[str, str], Tally], float]:
    """Every scenario and mode, in rotated rounds; the tallies and the wall time."""
    clients = {
        name: openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1",
            api_key=ADMIN,
            max_retries=0,
            timeout=60.0,
        )
        for name, port in ports.items()
    }
    tallies = {(s.label, mode): Tally() for s in SCENARIOS for mode in MODES}
    runs = [(s, mode) for s in SCENARIOS for mode in MODES]
    rounds = max(1, -(-args.requests // args.batch))
    width = args.concurrency
    try:
        for client in clients.values():  # connections made, code paths warm; not counted
            for mode in MODES:
                warm = Tally()
                await batch(client, WARMUP.model, mode == "stream", 4 * width, width, warm)
                if warm.errors:
                    raise RuntimeError(f"the warm-up failed: {dict(warm.errors)}")
        started = time.perf_counter()
        for r in range(rounds):
            size = min(args.batch, args.requests - r * args.batch)
            shift = r % len(runs)
            for scenario, mode in runs[shift:] + runs[:shift]:
                await batch(
                    clients[scenario.instance],
                    scenario.model,
                    mode == "stream",
                    size,
                    width,
                    tallies[scenario.label, mode],
                )
            if args.verbose:
                print(f"round {r + 1}/{rounds}: {time.perf_counter() - started:.1f} s")
    finally:
        for client in clients.values():
            await client.close()
    return tallies, time.perf_counter() - started


async def fetch_json(url: str, bearer: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url, headers=headers)
        response.raise_for_status()
        return response.json()


# -- the report ---------------------------------------------------------------------------
def quantile_ms(values: list[float], q: float) -> float | None:
    if len(values) < 2:
        return values[0] * 1000 if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1] * 1000


def results(
    tallies: dict[tuple[str, str], Tally], counts: dict[str, Any], ponder: dict[str, Any]
) -> list[dict[str, Any]]:
    rows = []
    for scenario in SCENARIOS:
        ids = {f"{provider}/{scenario.model}" for provider, _ in scenario.deployments}
        view = [d for d in ponder[scenario.instance] if d["id"] in ids]
        for mode in MODES:
            tally, base = tallies[scenario.label, mode], tallies[BASELINE, mode]
            upstream: Counter[str] = Counter()
            for provider, _ in scenario.deployments:
                upstream.update(counts.get(f"{scenario.instance}/{provider}", {}).get(mode, {}))
            row: dict[str, Any] = {
                "scenario": scenario.label,
                "instance": scenario.instance,
                "mode": mode,
                "requests": tally.requests,
                "succeeded": len(tally.latencies),
                "success_rate": len(tally.latencies) / max(tally.requests, 1),
            }
            for q in (50, 95):
                mine = quantile_ms(tally.latencies, q / 100)
                theirs = quantile_ms(base.latencies, q / 100)
                row[f"p{q}_ms"] = mine
                row[f"added_p{q}_ms"] = row[f"ratio_p{q}"] = None
                if mine is not None and theirs:
                    row[f"added_p{q}_ms"], row[f"ratio_p{q}"] = mine - theirs, mine / theirs
            row |= {
                "upstream": dict(upstream),
                "attempts_per_request": sum(upstream.values()) / max(tally.requests, 1),
                "injected_failures": sum(v for k, v in upstream.items() if k != "ok"),
                "client_errors": dict(tally.errors),
                "client_error_examples": tally.examples,
                "cooldowns": sum(d["cooldowns"] for d in view),
                "deployments": view,
            }
            rows.append(row)
    return rows


def report(rows: list[dict[str, Any]]) -> None:
    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    def added(r: dict[str, Any], q: int) -> str:
        if r[f"added_p{q}_ms"] is None or r[f"ratio_p{q}"] is None:
            return "-"
        return f"{r[f'added_p{q}_ms']:+.1f} ({r[f'ratio_p{q}']:.2f}x)"

    head = (
        f"{'scenario':<20} {'mode':<6} {'reqs':>5} {'succeeded':>15} {'p50 ms':>7} "
        f"{'p95 ms':>7} {'added p50 ms':>15} {'added p95 ms':>16} {'att/req':>7} "
        f"{'injected':>8} {'cooldowns':>9}  client errors"
    )
    print(head + "\n" + "-" * len(head))
    for r in rows:
        ok = f"{r['succeeded']} ({r['success_rate']:.3f})"
        errors = ", ".join(f"{k} x{v}" for k, v in sorted(r["client_errors"].items())) or "-"
        print(
            f"{r['scenario']:<20} {r['mode']:<6} {r['requests']:>5} {ok:>15} "
            f"{num(r['p50_ms']):>7} {num(r['p95_ms']):>7} {added(r, 50):>15} {added(r, 95):>16} "
            f"{r['attempts_per_request']:>7.2f} {r['injected_failures']:>8} {r['cooldowns']:>9}  "
            f"{errors}"
        )
    print(
        "att/req: upstream attempts per request, injected: failures served (the fake's "
        "counts); cooldowns: Ponder's, per scenario (both modes).\n\nPonder's view of each "
        "deployment (GET /v1/deployments, both modes together):"
    )
    for r in rows[:: len(MODES)]:
        for d in r["deployments"]:
            print(
                f"  {r['scenario']:<20} {d['id']:<22} requests {d['requests']:>5}  "
                f"failures {d['failures']:>4}  cooldowns {d['cooldowns']:>2}  "
                f"cooling down now: {'yes' if d['cooling_down'] else 'no'}"
            )


# -- main ---------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="per scenario and mode")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch", type=int, default=50, help="requests per scenario a round")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="the fake's service time")
    parser.add_argument("--fail-rate", type=float, default=0.5, help="of the flaky deployment")
    parser.add_argument("--timeout", type=float, default=0.5, help="Ponder's per attempt (s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--verbose", action="store_true")
    add_serve_arguments(parser, ["fake", "ponder"], workers=True)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return 0
    if args.requests < 1 or args.concurrency < 1 or args.batch < 1:
        parser.error("--requests, --concurrency and --batch must be positive")

    script = Path(__file__)
    with ExitStack() as stack:
        fake_port = free_port()
        fake_env = {
            "FAILOVER_DELAY_MS": str(args.delay_ms),
            "FAILOVER_FAIL_RATE": str(args.fail_rate),
            "FAILOVER_SEED": str(args.seed),
        }
        stack.enter_context(
            server("fake", fake_port, workers=1, access_log=False, env=fake_env, script=script)
        )
        ports = {}
        for instance, routing in instances().items():
            setup = {
                "upstream": f"http://127.0.0.1:{fake_port}",
                "instance": instance,
                "timeout": args.timeout,
                "routing": routing,
                "models": {
                    WARMUP.model: WARMUP.deployments,
                    **{s.model: s.deployments for s in SCENARIOS if s.instance == instance},
                },
            }
            ports[instance] = port = free_port()
            env = {"FAILOVER_PONDER": json.dumps(setup)}
            stack.enter_context(
                server("ponder", port, workers=1, access_log=False, env=env, script=script)
            )
        tallies, wall = asyncio.run(drive(ports, args))

        async def gather() -> tuple[Any, dict[str, Any]]:
            counts = await fetch_json(f"http://127.0.0.1:{fake_port}/counts")
            ponder = {}
            for instance, port in ports.items():
                listing = await fetch_json(f"http://127.0.0.1:{port}/v1/deployments", ADMIN)
                ponder[instance] = listing["data"]
            return counts, ponder

        counts, ponder = asyncio.run(gather())

    rows = results(tallies, counts, ponder)
    print(
        f"Failover: {args.requests} requests per scenario and mode, {args.concurrency} at a "
        f"time, fake service time {args.delay_ms:g} ms, flaky fail rate {args.fail_rate:g}, "
        f"per-attempt timeout {args.timeout:g} s, [routing] {instances()['default']} "
        f"(+ defaults); {wall:.1f} s of requests.\n"
    )
    report(rows)
    if args.json:
        args.json.write_text(
            json.dumps({"args": {**vars(args), "json": str(args.json)}, "rows": rows}, indent=2)
        )
    goal = [r for r in rows if r["scenario"] == GOAL_SCENARIO]
    worst = min(r["success_rate"] for r in goal)
    if worst < GOAL:
        print(
            f"\nGOAL NOT MET: with one of two deployments failing {args.fail_rate:.0%} of the "
            f"time, only {worst:.1%} of requests succeeded (goal: {GOAL:.0%})."
        )
        return 1
    print(f"\nGoal met: scenario '{GOAL_SCENARIO}' succeeded for {worst:.1%} (goal {GOAL:.0%}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
