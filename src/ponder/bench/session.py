"""One ``ponder bench`` invocation: options in, run directory and report out."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ponder.backends.base import Backend
from ponder.bench.bank import BankBackend, SampleBank
from ponder.bench.cassette import Cassette, CassetteBackend
from ponder.bench.report import load_prices, write_report
from ponder.bench.runner import (
    EndpointSystem,
    Record,
    RunDir,
    StrategySystem,
    System,
    build_bank,
    parse_systems,
    recorded,
    run_bench,
    run_pending,
)
from ponder.bench.tasks import Example, load_task
from ponder.config import PonderConfig
from ponder.errors import ConfigError
from ponder.gateway import Gateway
from ponder.routing.registry import BackendRegistry
from ponder.sandbox import Sandbox

Progress = Callable[[int, int], Callable[[int], None]]


@dataclass(frozen=True)
class BenchOptions:
    data: Path
    task: str = "gsm8k"
    strategies: str = "cot"
    model: str | None = None
    limit: int | None = None
    offset: int = 0
    concurrency: int = 4
    bank_concurrency: int | None = None  # bank drawing; default: concurrency
    max_tokens: int = 768
    seed: int = 0
    out_dir: Path | None = None
    systems: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    record: Path | None = None
    replay: Path | None = None
    bank: Path | None = None
    bank_size: int = 16
    replicates: int = 1
    ray: str | None = None  # a Ray cluster address, or "local"
    prices: Path | None = None  # JSON price table for the cost column


def _endpoint(spec: dict[str, Any], max_tokens: int) -> EndpointSystem:
    try:
        return EndpointSystem(
            spec["name"],
            spec["base_url"],
            spec["model"],
            extra_body=spec.get("extra_body"),
            count_via=spec.get("count_via"),
            max_tokens=max_tokens,
            **{k: spec[k] for k in ("timeout", "max_retries") if k in spec},
        )
    except KeyError as exc:
        raise ConfigError(f"a --system needs name, base_url and model; missing {exc}") from exc


async def run_session(
    options: BenchOptions, config: PonderConfig, progress: Progress | None = None
) -> tuple[RunDir, str]:
    """Run (or resume) a benchmark and write its report; returns the run dir and the table."""
    from tqdm import tqdm

    if options.record and options.replay:
        raise ConfigError("--record and --replay exclude each other")
    name = options.model or config.default_model
    task = load_task(options.task, Sandbox(config.sandbox))
    end = None if options.limit is None else options.offset + options.limit
    examples = task.load(options.data)[options.offset : end]
    labelled = parse_systems(options.strategies)
    run_dir = RunDir(options.out_dir or Path(f"runs/{task.name}-{int(time.time())}"))
    run_dir.write_config(
        {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}
        | {"model": name}
    )

    registry = BackendRegistry(config)
    if options.ray:
        return await _run_on_ray(options, registry, task, examples, run_dir, name)
    try:
        live: Backend | None = None
        if options.replay:
            backend: Backend = CassetteBackend(None, Cassette(options.replay), "replay")
        else:
            live = await registry.get(name, progress=progress)
            backend = (
                CassetteBackend(live, Cassette(options.record), "auto") if options.record else live
            )
        bank = SampleBank(options.bank) if options.bank else None
        replicates = options.replicates if bank is not None else 1
        gateway = Gateway(config, registry=registry, close_backends=False, store_traces=False)
        endpoints: list[System] = [_endpoint(s, options.max_tokens) for s in options.systems]
        systems_by_replicate: list[list[System]] = []
        for replicate in range(replicates):
            # Each strategy gets its own view of the bank per replicate, so each draws its
            # own paths in that replicate's ordering.
            systems: list[System] = [
                StrategySystem(
                    label,
                    spec,
                    BankBackend(bank, backend, replicate=replicate)
                    if bank is not None
                    else backend,
                    max_tokens=options.max_tokens,
                    seed=options.seed + replicate,
                    gateway=gateway,
                )
                for label, spec in labelled
            ]
            systems_by_replicate.append(systems + (endpoints if replicate == 0 else []))
        total = len(examples) * (len(labelled) * replicates + len(endpoints))
        finished = run_dir.records()
        done = recorded(finished)
        bar = tqdm(total=total, initial=len(finished), desc="bench", file=sys.stderr)
        seen = {"correct": 0, "n": 0, "tokens": 0}

        def on_record(record: Record) -> None:
            seen["n"] += 1
            seen["correct"] += int(record.correct)
            seen["tokens"] += record.total_tokens
            bar.update(1)
            bar.set_postfix(acc=f"{seen['correct'] / seen['n']:.0%}", tokens=seen["tokens"])

        gate = asyncio.Semaphore(options.concurrency)

        async def evaluate(batch: Sequence[Example]) -> None:
            for replicate, systems in enumerate(systems_by_replicate):
                await run_pending(
                    task,
                    batch,
                    systems,
                    run_dir,
                    done=done,
                    gate=gate,
                    on_record=on_record,
                    replicate=replicate,
                )

        if bank is None:
            await evaluate(examples)
        else:
            # A question's strategies start as soon as its paths are in the bank, so their
            # narrower calls fill the sequence slots that wide bank draws leave idle.
            bank_bar = tqdm(total=len(examples), desc="sample bank", file=sys.stderr)
            async with asyncio.TaskGroup() as group:

                def drawn(example: Example) -> None:
                    bank_bar.update(1)
                    group.create_task(evaluate([example]))

                await build_bank(
                    task,
                    examples,
                    backend,
                    bank,
                    size=options.bank_size,
                    max_tokens=options.max_tokens,
                    concurrency=options.bank_concurrency or options.concurrency,
                    on_done=drawn,
                )
            bank_bar.close()
        bar.close()
    finally:
        await registry.aclose()
    ids = {e.id for e in examples}
    records = [r for r in run_dir.records() if r.example_id in ids]
    order = [label for label, _ in labelled] + [e["name"] for e in options.systems]
    prices = load_prices(options.prices) if options.prices else None
    table = write_report(
        records, run_dir.path, order, title=f"{task.name} on {name}", prices=prices
    )
    return run_dir, table


async def _run_on_ray(
    options: BenchOptions,
    registry: BackendRegistry,
    task: Any,
    examples: list[Any],
    run_dir: RunDir,
    name: str,
) -> tuple[RunDir, str]:
    from ponder.bench.distributed import RaySystem, connect, plans_for
    from ponder.bench.runner import parse_system_labels

    if options.bank or options.record or options.replay:
        raise ConfigError("--ray does not combine with --bank, --record or --replay")
    raw = parse_system_labels(options.strategies)
    labelled = [(label, None) for label, _ in raw]
    plans = plans_for(
        labelled,
        [r for _, r in raw],
        registry.remote_config(name),
        list(options.systems),
        options.max_tokens,
        options.seed,
    )
    connect(options.ray or "local")
    systems: list[System] = [RaySystem(plan, options.task) for plan in plans]
    await run_bench(task, examples, systems, run_dir, concurrency=options.concurrency)
    ids = {e.id for e in examples}
    records = [r for r in run_dir.records() if r.example_id in ids]
    table = write_report(
        records, run_dir.path, [p.name for p in plans], title=f"{task.name} on {name} (Ray)"
    )
    return run_dir, table


def parse_system_json(values: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    try:
        return tuple(json.loads(v) for v in values)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--system must be JSON: {exc}") from exc


BATCH_QUEUE_SECONDS = 7 * 24 * 3600.0


def batch_config(config: PonderConfig) -> PonderConfig:
    """The configuration for a batch job: it is the engine's only client and queues its own
    work on purpose, so a job waits for the engine as long as it takes instead of being
    refused after the server's ``max_queue_seconds``."""
    return replace(config, engine=replace(config.engine, max_queue_seconds=BATCH_QUEUE_SECONDS))
