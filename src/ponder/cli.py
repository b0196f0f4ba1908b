"""The ``ponder`` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ponder.backends.registry import BackendRegistry
from ponder.config import PonderConfig, load_config
from ponder.engine.weights import ModelStore
from ponder.errors import PonderError
from ponder.reasoning.runner import StrategySpec, run_strategy
from ponder.types import GenerationRequest, Message, SamplingParams


def _progress(label: str) -> Callable[[int, int], Callable[[int], None]]:
    """A tqdm progress bar for long operations such as the first assembly of a model."""

    def start(total: int, parts: int) -> Callable[[int], None]:
        from tqdm import tqdm

        bar = tqdm(
            total=total, unit="B", unit_scale=True, desc=f"{label} ({parts} parts)", file=sys.stderr
        )

        def tick(size: int) -> None:
            bar.update(size)
            if bar.n >= total:
                bar.close()

        return tick

    return start


def _config(path: str | None) -> PonderConfig:
    return load_config(Path(path) if path else None)


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML configuration file.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """Ponder: make any LLM think before it answers."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        ctx.obj = _config(config_path)
    except PonderError as exc:
        raise click.ClickException(exc.message) from exc


def _param(value: str) -> tuple[str, object]:
    key, eq, raw = value.partition("=")
    if not eq or not key:
        raise click.BadParameter(f"expected key=value, got {value!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


@main.command()
@click.argument("question")
@click.option("--model", "-m", default=None, help="Model name, GGUF path, or provider/model.")
@click.option(
    "--strategy",
    "-s",
    default="cot",
    show_default=True,
    help="Reasoning strategy (see docs/strategies.md).",
)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    help="Strategy parameter as key=value (repeatable), e.g. -p n=8.",
)
@click.option(
    "--show-reasoning/--hide-reasoning", default=True, help="Print the reasoning before the answer."
)
@click.option("--max-tokens", type=int, default=1024, show_default=True, help="Per inner call.")
@click.option("--temperature", type=float, default=None, help="Default: the strategy's own.")
@click.option("--seed", type=int, default=None)
@click.option(
    "--trace",
    "trace_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the trace as JSON here.",
)
@click.pass_obj
def ask(
    config: PonderConfig,
    question: str,
    model: str | None,
    strategy: str,
    params: tuple[str, ...],
    show_reasoning: bool,
    max_tokens: int,
    temperature: float | None,
    seed: int | None,
    trace_path: str | None,
) -> None:
    """Answer QUESTION, reasoning with a strategy (chain of thought by default)."""
    name = model or config.default_model

    async def run() -> None:
        raw = {"strategy": strategy, **dict(_param(p) for p in params)}
        if temperature is not None:
            raw.setdefault("temperature", temperature)
        spec = StrategySpec.parse(raw)
        registry = BackendRegistry(config)
        try:
            backend = await registry.get(name, progress=_progress(f"assembling {name}"))
            request = GenerationRequest(
                messages=(Message("user", question),),
                sampling=SamplingParams(max_tokens=max_tokens, seed=seed),
            )
            started = time.perf_counter()
            progress = (
                (lambda line: click.secho(line, fg="bright_black", nl=False, err=True))
                if show_reasoning
                else None
            )
            result = await run_strategy(spec, backend, request, on_progress=progress)
            elapsed = time.perf_counter() - started
        finally:
            await registry.aclose()
        if show_reasoning:
            click.secho("Reasoning:", bold=True)
            click.echo(result.reasoning)
            click.echo()
        click.secho("Answer: ", bold=True, nl=False)
        click.echo(result.answer if result.answer is not None else result.text)
        if trace_path:
            traces.append(result.trace.as_dict())
        u = result.hidden_usage
        click.secho(
            f"tokens: {u.prompt_tokens} prompt + {u.completion_tokens} completion "
            f"({u.reasoning_tokens} reasoning) = {u.total_tokens} in {u.calls} calls "
            f"({elapsed:.1f}s, {spec.describe()} on {name})",
            fg="bright_black",
            err=True,
        )

    traces: list[dict[str, object]] = []
    try:
        asyncio.run(run())
    except PonderError as exc:
        raise click.ClickException(exc.message) from exc
    if trace_path and traces:
        Path(trace_path).write_text(json.dumps(traces[0], indent=2))


@main.command()
@click.option("--host", default=None, help="Interface to bind (default from config: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default from config: 8000).")
@click.option(
    "--model", "-m", "models", multiple=True, help="Load this model at start-up (repeatable)."
)
@click.option("--max-n", type=int, default=None, help="Largest n a request may ask for.")
@click.pass_obj
def serve(
    config: PonderConfig,
    host: str | None,
    port: int | None,
    models: tuple[str, ...],
    max_n: int | None,
) -> None:
    """Start the OpenAI-compatible server."""
    import uvicorn

    from ponder.server.app import create_app

    if max_n is not None:
        config = config.replace(max_n=max_n)
    preload = list(models) or [config.default_model]
    for name in preload:
        registry = BackendRegistry(config)
        if registry.kind_of(name) == "bundled":
            registry.store.ensure(registry.canonical(name), _progress(f"assembling {name}"))
    app = create_app(config, preload=preload)
    uvicorn.run(app, host=host or config.host, port=port or config.port, log_level="info")


@main.command()
@click.option(
    "--verify", is_flag=True, help="Assemble missing models and re-hash every model in full."
)
@click.pass_obj
def models(config: PonderConfig, verify: bool) -> None:
    """List the bundled models and whether each is installed and verified."""
    store = ModelStore(config.cache_dir)
    failed = False
    for spec in store.specs.values():
        packages = store.packages_installed(spec)
        status = (
            "packages missing"
            if not packages
            else ("assembled" if store.is_assembled(spec) else "not assembled")
        )
        if verify and packages:
            try:
                store.ensure(spec.name, _progress(f"assembling {spec.name}"))
                store.verify(spec.name)
                status = "verified"
            except PonderError as exc:
                status = f"FAILED: {exc.message}"
                failed = True
        default = " (default)" if spec.name == config.default_model else ""
        click.echo(f"{spec.name:<30} {spec.quantization:<7} {status}{default}")
        if not packages:
            click.echo(f"{'':<30} install with: {spec.install_hint}")
    click.echo(f"cache: {store.cache_dir}")
    if failed:
        sys.exit(1)


@main.group(invoke_without_command=True)
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False),
    help="Dataset file (JSONL, optionally .gz).",
)
@click.option(
    "--task",
    default="gsm8k",
    show_default=True,
    help="gsm8k, svamp, humaneval, jsonl, or module:Class.",
)
@click.option(
    "--strategies",
    default="cot",
    show_default=True,
    help="Comma-separated, e.g. cot,self-consistency;n=8.",
)
@click.option(
    "--model",
    "-m",
    default=None,
    help="Model for every strategy (default: the configured default).",
)
@click.option("--limit", type=int, default=None, help="How many examples.")
@click.option(
    "--offset", type=int, default=0, show_default=True, help="Skip this many examples first."
)
@click.option(
    "--concurrency", type=int, default=4, show_default=True, help="Questions in flight at once."
)
@click.option("--max-tokens", type=int, default=768, show_default=True, help="Per inner call.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Run directory (resumes if it exists).",
)
@click.option(
    "--system",
    "systems_json",
    multiple=True,
    help='An OpenAI-compatible endpoint as a system, as JSON: {"name", "base_url", "model", '
    '"extra_body", "count_via" (a Ponder server it uses as backend, for exact tokens)}. Repeatable.',
)
@click.option(
    "--record",
    type=click.Path(dir_okay=False),
    default=None,
    help="Record every model call to this cassette.",
)
@click.option(
    "--replay",
    type=click.Path(dir_okay=False),
    default=None,
    help="Answer every model call from this cassette.",
)
@click.option(
    "--bank",
    type=click.Path(dir_okay=False),
    default=None,
    help="Sample bank file: draw paths once, evaluate offline.",
)
@click.option(
    "--bank-size", type=int, default=16, show_default=True, help="Paths per question in the bank."
)
@click.option(
    "--replicates",
    type=int,
    default=1,
    show_default=True,
    help="Path orderings to evaluate from the bank.",
)
@click.option(
    "--prices",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help='JSON price table for a cost column: {"system or *": {"prompt": $/1M, "completion": $/1M}}.',
)
@click.option(
    "--ray",
    default=None,
    help="Run questions as Ray tasks on this cluster ('local': start one here).",
)
@click.pass_context
def bench(ctx: click.Context, /, **opts: Any) -> None:
    """Run strategies and external systems on a dataset; report accuracy against tokens."""
    if ctx.invoked_subcommand is not None:
        return
    if opts["data"] is None:
        raise click.UsageError("--data is required")
    from ponder.bench.session import BenchOptions, parse_system_json, run_session

    config: PonderConfig = ctx.obj
    paths = {
        k: Path(v) if v else None
        for k, v in opts.items()
        if k in {"out_dir", "record", "replay", "bank"}
    }
    try:
        options = BenchOptions(
            data=Path(opts["data"]),
            task=opts["task"],
            strategies=opts["strategies"],
            model=opts["model"],
            limit=opts["limit"],
            offset=opts["offset"],
            concurrency=opts["concurrency"],
            max_tokens=opts["max_tokens"],
            seed=opts["seed"],
            systems=parse_system_json(opts["systems_json"]),
            bank_size=opts["bank_size"],
            replicates=opts["replicates"],
            ray=opts["ray"],
            prices=Path(opts["prices"]) if opts["prices"] else None,
            out_dir=paths["out_dir"],
            record=paths["record"],
            replay=paths["replay"],
            bank=paths["bank"],
        )
        run_dir, table = asyncio.run(run_session(options, config, _progress("assembling model")))
    except PonderError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(table)
    click.echo(f"records: {run_dir.records_file}")


@bench.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--prices", type=click.Path(exists=True, dir_okay=False), default=None, help="JSON price table."
)
def bench_report(run_dir: str, prices: str | None) -> None:
    """Re-render a run's report from its records, with no model calls."""
    from ponder.bench.report import load_prices, write_report
    from ponder.bench.runner import RunDir

    records = RunDir(Path(run_dir)).records()
    table = load_prices(Path(prices)) if prices else None
    click.echo(write_report(records, Path(run_dir), prices=table))


if __name__ == "__main__":
    main()
