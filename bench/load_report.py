"""The report of ``bench/load.py``: what each run measured (``Run``), the tables of its
requests, latencies, RSS and CPU time, its outcomes and slowest requests (a stall called
out), and the R2 goals judged with the verdict.

R2 goals: ``fast``: 0 errors (warm-up included), RSS growth under GOAL_RSS_GROWTH_MB.
``embedded``: every request served or answered 429/503 with ``Retry-After``; none hangs
past its timeout.
"""

from __future__ import annotations

import argparse
import resource
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import launch

__all__ = ["GOAL_RSS_GROWTH_MB", "Run", "checks", "environment", "report"]

GOAL_RSS_GROWTH_MB = 50.0
# A request longer than both STALL_FACTOR times the p99 and STALL_MS is called out.
STALL_FACTOR, STALL_MS = 10, 5000.0


@dataclass
class Run:
    """What one run measured: the load client's summaries and the server's RSS and CPU."""

    label: str
    scenario: str
    max_concurrent_requests: str
    client: dict[str, Any]  # load_client's summary
    warmup: dict[str, Any]
    rss_cold_mb: float
    rss_before_mb: float
    rss_peak_mb: float
    rss_after_mb: float
    server_cpu_s: float  # during the run
    fake_cpu_s: float | None
    rss_samples: list[tuple[float, float]]

    @property
    def growth_mb(self) -> float:
        return self.rss_after_mb - self.rss_before_mb


def environment() -> dict[str, str]:
    """The benches' environment (launch.environment), with the limits a load test meets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        somaxconn = Path("/proc/sys/net/core/somaxconn").read_text().strip()
    except OSError:
        somaxconn = "?"
    return {**launch.environment(), "nofile": f"{soft}/{hard}", "somaxconn": somaxconn}


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def refusals(outcomes: dict[str, int]) -> int:
    return sum(n for kind, n in outcomes.items() if kind.startswith(("HTTP 429", "HTTP 503")))


def outcome_line(summary: dict[str, Any]) -> str:
    parts = [f"{kind} {n:,}" for kind, n in summary["outcomes"].items()]
    retry = summary["refusals_retry_after"]
    if retry:
        parts.append(
            f"(Retry-After on {retry.get('with', 0):,} of {sum(retry.values()):,} 429/503s)"
        )
    return "; ".join(parts) or "none"


def checks(run: Run, timeout: float) -> list[tuple[str, str, bool]]:
    """(goal, what was seen, met) for one run."""
    c, w = run.client, run.warmup
    if run.scenario == "fast":
        errors = c["errors"] + w["errors"]
        return [
            (
                f"{c['clients']} streaming clients for {c['seconds']:g} s with 0 errors",
                f"{errors:,} errors in {c['requests'] + w['requests']:,} requests",
                errors == 0,
            ),
            (
                f"RSS growth < {GOAL_RSS_GROWTH_MB:g} MB",
                f"{run.growth_mb:+.1f} MB ({run.rss_before_mb:.1f} -> {run.rss_after_mb:.1f})",
                run.growth_mb < GOAL_RSS_GROWTH_MB,
            ),
        ]
    outcomes = Counter(c["outcomes"]) + Counter(w["outcomes"])
    retry = Counter(c["refusals_retry_after"]) + Counter(w["refusals_retry_after"])
    other = {k: n for k, n in outcomes.items() if k != "served" and refusals({k: n}) == 0}
    bad = sum(other.values()) + retry.get("without", 0)
    timeouts = outcomes.get("timeout", 0)
    longest = max(c["longest_ms"], w["longest_ms"])
    seen = f"warm-up included: {outcomes.get('served', 0):,} served, {refusals(outcomes):,} 429/503"
    seen += f" ({retry.get('without', 0):,} without Retry-After), {sum(other.values()):,} other"
    if other:
        seen += f": {other}"
    return [
        (
            f"[{run.label}] every request served or 429/503 with Retry-After",
            seen,
            bad == 0 and outcomes.get("served", 0) > 0,
        ),
        (
            f"[{run.label}] none hangs past its {timeout:g} s timeout",
            f"{timeouts:,} timeouts; longest request {ms(longest)} ms",
            timeouts == 0,
        ),
    ]


def report(runs: list[Run], args: argparse.Namespace, env: dict[str, str]) -> bool:
    print("\nPonder under load; " + ", ".join(f"{k}={v}" for k, v in env.items()))
    header = (
        f"{'run':<22}{'clients':>8}{'secs':>6}{'requests':>10}{'served':>9}{'req/s':>8}"
        f"{'p50':>10}{'p99':>10}{'ttfb p50':>10}{'p99':>10}{'errors':>8}{'longest':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        c = r.client
        print(
            f"{r.label:<22}{c['clients']:>8}{c['seconds']:>6g}{c['requests']:>10,}"
            f"{c['served']:>9,}{c['rps']:>8,.1f}{ms(c['latency']['p50_ms']):>10}"
            f"{ms(c['latency']['p99_ms']):>10}{ms(c['ttfb']['p50_ms']):>10}"
            f"{ms(c['ttfb']['p99_ms']):>10}{c['errors']:>8,}{ms(c['longest_ms']):>10}"
        )
    print(
        "(latencies of the served requests, in ms; req/s: served within the run's seconds; "
        "errors: every outcome but served, 429/503s included)"
    )
    header = (
        f"{'run':<22}{'rss cold':>9}{'before':>8}{'peak':>8}{'after':>8}{'growth':>8}"
        f"{'cpu s: server':>15}{'fake':>7}{'client':>8}{'wall s':>8}"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in runs:
        fake = "-" if r.fake_cpu_s is None else f"{r.fake_cpu_s:.1f}"
        print(
            f"{r.label:<22}{r.rss_cold_mb:>9.1f}{r.rss_before_mb:>8.1f}{r.rss_peak_mb:>8.1f}"
            f"{r.rss_after_mb:>8.1f}{r.growth_mb:>+8.1f}{r.server_cpu_s:>15.1f}{fake:>7}"
            f"{r.client['client_cpu_s']:>8.1f}{r.client['wall_s']:>8.1f}"
        )
    print("(RSS in MB of the server's process group; growth: after - before)")
    print("\noutcomes:")
    for r in runs:
        print(f"  {r.label}: {outcome_line(r.client)}")
        if r.warmup["errors"]:
            print(f"  {r.label}, warm-up: {outcome_line(r.warmup)}")
        refused = r.client["refused_latency"]
        if refused["p50_ms"] is not None:
            print(
                f"  {r.label}: 429/503 answered in p50 {ms(refused['p50_ms'])} ms, "
                f"p99 {ms(refused['p99_ms'])} ms, max {ms(refused['max_ms'])} ms"
            )
        for kind, example in r.client["examples"].items():
            print(f"  {r.label}: first {kind}: {example}")
        slowest = [
            f"{ms(s['ms'])} ms ({s['outcome']}, started at {s['started_at_s']:.1f} s, "
            f"first byte after {ms(s['ttfb_ms'])} ms)"
            for s in r.client["slowest"][:3]
        ]
        print(f"  {r.label}: slowest: " + "; ".join(slowest))
        p99 = r.client["latency"]["p99_ms"] or 0.0
        if r.client["longest_ms"] > max(STALL_FACTOR * p99, STALL_MS):
            print(
                f"  NOTE {r.label}: a request took {r.client['longest_ms'] / 1000:,.1f} s while "
                f"p99 is {ms(p99)} ms: it stalled (no error, but a shorter timeout would be one)"
            )
    results = [check for r in runs for check in checks(r, args.timeout)]
    print("\nR2 goals:")
    for label, seen, ok in results:
        print(f"  {'MET   ' if ok else 'MISSED'} {label}: {seen}")
    met = all(ok for _, _, ok in results)
    missed = [label for label, _, ok in results if not ok]
    print("verdict:", "R2 met" if met else "R2 missed: " + "; ".join(missed))
    return met
