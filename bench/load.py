"""Load: N concurrent streaming clients for T seconds against a Ponder server, what they get
and what it costs the server, with the verdict on the R2 goals.

Processes on 127.0.0.1, each its own: the Ponder server (``ponder.server.app.create_app``
under uvicorn, one worker, keep-alive as ``ponder serve`` keeps it, access log off unless
--access-log), for ``fast`` the canned fake OpenAI endpoint it passes through to
(``fake_endpoint.canned_app``, raw ASGI under uvicorn), and the load generator
(``load_client.py``: N clients, one keep-alive connection each, every client sending a
streamed chat request, reading its SSE to ``[DONE]`` and sending the next, until T seconds
have passed; every request bounded by --timeout, connecting included). This script only
starts them and samples the server's memory once a second; ``load_report.py`` prints the
report and judges the goals.

Scenarios:

* ``fast``: Ponder in pass-through mode (``default_strategy = "none"``, the fake registered
  as a provider's model) in front of the fake; 500 clients for 60 s by default. A request is
  served when the fake's whole canned stream arrives; anything else is an error: a status
  other than 200, an error event in the stream, a stream cut short, a connection error, a
  timeout.
* ``embedded``: Ponder serving the bundled ``qwen2.5-coder-0.5b-instruct`` itself (loaded at
  start-up), short outputs (``max_tokens`` 8); 64 clients for 60 s by default, each request
  bounded by 120 s. Once per --limits value of ``max_concurrent_requests``: 16 (the engine's
  16 sequence slots: past them the server answers 503 with ``Retry-After`` at once) and the
  default (1024: every request admitted, the engine's queue holding those it cannot start;
  ``ponder.engine.admission`` starts them first come, first served, with no bound on the
  wait but the client's). A client honours a 429's or 503's ``Retry-After``.

Reported per run: requests, served, served req/s over the T seconds, p50/p99 latency and
time to first byte (to the first byte of the body: the first SSE event) of the served,
outcomes by kind (429s and 503s with whether they carried ``Retry-After``), the slowest
requests of any outcome (when each started, its time to first byte; one far past the p99
is called out as a stall), and the server's RSS: the VmRSS of every process in its process
group, read from /proc, *cold* (started, nothing served), *before* (after a warm-up of at
most WARMUP_CLIENTS clients for --warmup seconds, so that lazy imports and first-use caches
are not counted as growth), *peak* (sampled once a second during the run) and *after*;
growth is after minus before. MB are 10^6 bytes. The ledger is a SQLite file in a temporary
directory, as ``ponder serve`` keeps one (an in-memory database would hold every request's
row in the server's RSS).

R2 goals: ``fast``: 500 concurrent streaming clients for 60 s with 0 errors (warm-up
included), RSS growth under 50 MB. ``embedded``: every request served or answered 429/503
with ``Retry-After``; none hangs past its timeout. Exits 1 when a goal is missed (only the
goals of the scenarios run are judged).

    python bench/load.py --scenario fast                        # 500 clients, 60 s
    python bench/load.py --scenario embedded --seconds 30       # two runs of 64 clients
    python bench/load.py --json bench/results/load.json         # both, about 4 minutes

Everything shares this machine's cores, the client included; on few cores the req/s are
the machine's, not Ponder's alone (the CPU seconds of each process are reported).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fake_endpoint import MODEL, canned_app
from launch import BENCH, add_serve_arguments, free_port, serve_uvicorn, server
from load_report import GOAL_RSS_GROWTH_MB, Run, environment, report

EMBEDDED_MODEL = "qwen2.5-coder-0.5b-instruct"
SCENARIOS = ("fast", "embedded")
DEFAULTS = {"fast": (500, 60.0), "embedded": (64, 60.0)}  # clients, seconds
WARMUP_CLIENTS = 8
KEEP_ALIVE_SECONDS = 30  # as `ponder serve` (ponder.cli.KEEP_ALIVE_SECONDS)
LIMIT_ENV = "PONDER_LOAD_MAX_CONCURRENT"  # max_concurrent_requests; "" for the default
UPSTREAM_ENV = "PONDER_BENCH_UPSTREAM"


# -- the servers (run as ``load.py --serve ROLE``) ---------------------------------------
def limits() -> dict[str, Any]:
    value = os.environ.get(LIMIT_ENV, "")
    if not value:
        return {}
    return {"max_concurrent_requests": None if value == "none" else int(value)}


def ponder_app() -> Any:
    """Ponder in pass-through mode in front of the fake, for uvicorn's factory import."""
    from ponder.config import PonderConfig, ProviderConfig
    from ponder.server.app import create_app

    provider = ProviderConfig(
        name="fake", base_url=os.environ[UPSTREAM_ENV], models=(MODEL,), max_retries=0
    )
    return create_app(PonderConfig(providers=(provider,), default_strategy=None, **limits()))


def embedded_app() -> Any:
    """Ponder serving the bundled 0.5B model itself, loaded at start-up."""
    from ponder.config import PonderConfig
    from ponder.server.app import create_app

    config = PonderConfig(default_model=EMBEDDED_MODEL, default_strategy=None, **limits())
    return create_app(config, preload=[EMBEDDED_MODEL])


def default_limit() -> str:
    from ponder.config import PonderConfig

    return f"{PonderConfig().max_concurrent_requests}"


def serve(role: str, port: int, access_log: bool) -> None:
    if role == "fake":
        serve_uvicorn(canned_app(), port, log_level="warning", access_log=False, lifespan="off")
        return
    serve_uvicorn(
        f"load:{role}_app",
        port,
        log_level="info" if access_log else "warning",
        access_log=access_log,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=5,
    )


# -- what the server holds ----------------------------------------------------------------
def group_usage(pgid: int) -> tuple[float, float]:
    """RSS (MB) and CPU time (s) of every process in a process group, from /proc."""
    rss_kib = ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # state, ppid, pgrp, ...
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
            for line in Path(entry.path, "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss_kib += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return rss_kib * 1024 / 1e6, ticks / os.sysconf("SC_CLK_TCK")


def load(
    port: int,
    pgid: int,
    workdir: Path,
    name: str,
    *,
    clients: int,
    seconds: float,
    timeout: float,
    body: dict[str, Any],
    canned: bool,
) -> tuple[dict[str, Any], list[tuple[float, float]]]:
    """Run the load client in a process of its own; its summary, and the server's RSS
    sampled once a second meanwhile ((seconds, MB) pairs)."""
    out = workdir / f"{name}.json"
    command = [
        sys.executable,
        str(BENCH / "load_client.py"),
        *("--port", str(port), "--clients", str(clients), "--seconds", str(seconds)),
        *("--timeout", str(timeout), "--body", json.dumps(body), "--out", str(out)),
    ]
    if canned:
        command.append("--canned")
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    bound = seconds + timeout + 60  # the client's own bound, and its start-up
    proc = subprocess.Popen(command)
    try:
        while True:
            try:
                proc.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                samples.append((time.monotonic() - started, group_usage(pgid)[0]))
            if time.monotonic() - started > bound:
                raise RuntimeError(f"the load client ran past {bound:.0f} s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"the load client exited with {proc.returncode}")
    return json.loads(out.read_text()), samples


# -- the runs -----------------------------------------------------------------------------
def measure(
    scenario: str, limit: str, args: argparse.Namespace, clients: int, seconds: float
) -> Run:
    """One run: start the servers, warm up, load, stop them."""
    if scenario == "fast":
        role, canned = "ponder", True
        body: dict[str, Any] = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Say something canned."}],
            "max_tokens": 16,
        }
    else:
        role, canned = "embedded", False
        body = {
            "model": EMBEDDED_MODEL,
            "messages": [{"role": "user", "content": "Name a prime number."}],
            "max_tokens": args.max_tokens,
        }
    body["stream"] = True
    label = scenario if scenario == "fast" else f"embedded, limit {limit or default_limit()}"
    print(f"\n== {label}: {clients} clients for {seconds:g} s", flush=True)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ponder-load-")))
        env = {"PONDER_DATABASE_URL": f"sqlite:///{workdir}/ponder.db", LIMIT_ENV: limit}
        fake = None
        if role == "ponder":
            fake_port = free_port()
            fake = stack.enter_context(
                server("fake", fake_port, workers=1, access_log=False, env={}, script=__file__)
            )
            env[UPSTREAM_ENV] = f"http://127.0.0.1:{fake_port}/v1"
        port = free_port()
        ponder = stack.enter_context(
            server(role, port, workers=1, access_log=args.access_log, env=env, script=__file__)
        )
        pgid = ponder.pid  # launch.server starts it in a session (so a group) of its own
        cold, _ = group_usage(pgid)
        warm_clients = min(WARMUP_CLIENTS, clients)
        common = {"timeout": args.timeout, "body": body, "canned": canned}
        warmup, _ = load(
            port, pgid, workdir, "warmup", clients=warm_clients, seconds=args.warmup, **common
        )
        before, cpu_before = group_usage(pgid)
        fake_before = group_usage(fake.pid)[1] if fake is not None else 0.0
        summary, samples = load(
            port, pgid, workdir, "run", clients=clients, seconds=seconds, **common
        )
        after, cpu_after = group_usage(pgid)
        fake_after = group_usage(fake.pid)[1] if fake is not None else 0.0
    return Run(
        label=label,
        scenario=scenario,
        max_concurrent_requests=limit or f"default ({default_limit()})",
        client=summary,
        warmup=warmup,
        rss_cold_mb=cold,
        rss_before_mb=before,
        rss_peak_mb=max([before, after, *(mb for _, mb in samples)]),
        rss_after_mb=after,
        server_cpu_s=cpu_after - cpu_before,
        fake_cpu_s=fake_after - fake_before if fake is not None else None,
        rss_samples=samples,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument(
        "--clients", type=int, help="concurrent clients (default: 500 fast, 64 embedded)"
    )
    parser.add_argument("--seconds", type=float, help="per run (default: 60)")
    parser.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    parser.add_argument(
        "--limits",
        default="16,default",
        help="embedded: max_concurrent_requests of each run, comma-separated "
        "('default': the configuration's default, 'none': unbounded)",
    )
    parser.add_argument("--max-tokens", type=int, default=8, help="embedded: per request")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds, before each run")
    parser.add_argument("--access-log", action="store_true", help="as `ponder serve` does")
    parser.add_argument("--json", type=Path, help="also write the results here")
    add_serve_arguments(parser, ["fake", "ponder", "embedded"])
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.access_log)
        return
    env = environment()
    runs = []
    for scenario in SCENARIOS if args.scenario == "all" else [args.scenario]:
        clients = args.clients or DEFAULTS[scenario][0]
        seconds = args.seconds or DEFAULTS[scenario][1]
        if scenario == "fast":
            runs.append(measure(scenario, "", args, clients, seconds))
            continue
        for limit in args.limits.split(","):
            limit = limit.strip()
            runs.append(
                measure(scenario, "" if limit == "default" else limit, args, clients, seconds)
            )
    met = report(runs, args, env)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
        data |= {"environment": env, "goal_rss_growth_mb": GOAL_RSS_GROWTH_MB, "met": met}
        data["runs"] = [asdict(r) | {"growth_mb": r.growth_mb} for r in runs]
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    if not met:
        sys.exit(1)


if __name__ == "__main__":
    main()
