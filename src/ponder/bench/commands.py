"""``ponder bench`` and ``ponder calibrate``: the command-line face of the benchmark harness."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from ponder.config import PonderConfig
from ponder.errors import PonderError
from ponder.progress import download_bar


@click.group(invoke_without_command=True)
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
    '"extra_body", "count_via" (a Ponder server it uses as backend, for exact tokens), '
    '"timeout" (s, default 3600), "max_retries" (default 0)}. Repeatable.',
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
    "--bank-concurrency",
    type=int,
    default=None,
    help="Questions whose bank paths are drawn at once (default: --concurrency). Each is "
    "one request of --bank-size paths, so a few fill an engine's sequence slots, while "
    "strategies afterwards make narrower calls and want more questions in flight.",
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
            bank_concurrency=opts["bank_concurrency"],
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
        run_dir, table = asyncio.run(run_session(options, config, download_bar("assembling model")))
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
    from ponder.bench.runner import RunDir, parse_system_labels

    path = Path(run_dir)
    records = RunDir(path).records()
    table = load_prices(Path(prices)) if prices else None
    # The run's own order and title, where it recorded them.
    order: list[str] = []
    title = ""
    asked = path / "run.json"
    if asked.is_file():
        run = json.loads(asked.read_text())
        labels = [label for label, _ in parse_system_labels(run.get("strategies") or "")]
        order = labels + [system["name"] for system in run.get("systems") or ()]
        order += [r.system for r in records if r.system not in order]  # from earlier resumes
        order = list(dict.fromkeys(order))
        title = f"{run.get('task', '')} on {run.get('model', '')}"
    click.echo(write_report(records, path, order or None, title=title, prices=table))


@click.command()
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    help="Calibration data (JSONL). Use rows you do not report results on.",
)
@click.option("--task", default="gsm8k", show_default=True, help="As for ponder bench.")
@click.option("--model", "-m", default=None, help="Model to calibrate (default: the default).")
@click.option("--offset", type=int, default=100, show_default=True, help="First row used.")
@click.option("--limit", type=int, default=30, show_default=True, help="Rows used.")
@click.option(
    "--screen",
    type=int,
    default=0,
    show_default=True,
    help="Rows after those on which only the greedy first passes run (one path each), so "
    "that the kind of first pass is chosen on more questions than the bank covers.",
)
@click.option(
    "--bank",
    type=click.Path(dir_okay=False),
    required=True,
    help="Sample bank file (drawn once, reused by later runs).",
)
@click.option("--bank-size", type=int, default=8, show_default=True, help="Paths per question.")
@click.option(
    "--replicates", type=int, default=4, show_default=True, help="Path orderings per candidate."
)
@click.option("--max-tokens", type=int, default=512, show_default=True, help="Per inner call.")
@click.option("--concurrency", type=int, default=4, show_default=True)
@click.option(
    "--first-pass",
    "first_passes",
    type=click.Choice(["cot", "program"]),
    multiple=True,
    default=("cot", "program"),
    show_default=True,
    help="Kinds of first pass to try (repeat the option); cot is always the allowance unit.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    required=True,
    help="Where to write the fitted profile (JSON; set auto_profile in the config to use it).",
)
@click.pass_obj
def calibrate(config: PonderConfig, /, **opts: Any) -> None:
    """Fit the adaptive controller's thresholds and ladder on a calibration split."""
    import shlex
    import sys

    from ponder.bench.bank import SampleBank
    from ponder.bench.calibrate import calibrate as fit
    from ponder.bench.tasks import load_task
    from ponder.routing.registry import BackendRegistry
    from ponder.sandbox import Sandbox

    name = opts["model"] or config.default_model
    task = load_task(opts["task"])
    data = Path(opts["data"])
    rows = task.load(data)
    end = opts["offset"] + opts["limit"]
    examples = rows[opts["offset"] : end]
    screen = rows[end : end + opts["screen"]]

    async def run() -> Any:
        registry = BackendRegistry(config)
        try:
            backend = await registry.get(name, progress=download_bar(f"assembling {name}"))
            return await fit(
                task,
                examples,
                backend,
                SampleBank(Path(opts["bank"])),
                bank_size=opts["bank_size"],
                replicates=opts["replicates"],
                max_tokens=opts["max_tokens"],
                concurrency=opts["concurrency"],
                sandbox=Sandbox(config.sandbox),
                first_passes=tuple(dict.fromkeys(("cot", *opts["first_passes"]))),
                screen=screen,
                metadata={
                    "model": name,
                    "data": data.name,
                    "task": task.name,
                    "rows": [opts["offset"], opts["offset"] + len(examples) - 1],
                    "screening_rows": [end, end + len(screen) - 1] if screen else None,
                    "command": "ponder " + shlex.join(sys.argv[1:]),
                },
                on_step=lambda line: click.echo(line, err=True),
            )
        finally:
            await registry.aclose()

    try:
        result = asyncio.run(run())
    except PonderError as exc:
        raise click.ClickException(exc.message) from exc
    Path(opts["out"]).write_text(
        json.dumps(result.profile.model_dump(mode="json"), indent=2) + "\n"
    )
    for kind, first in result.first_passes.items():
        click.echo(
            f"{kind} first pass alone: {first.accuracy:.1%} at {first.tokens:.0f} "
            f"tokens/question on {len(examples) + len(screen)} questions"
        )
    click.echo(f"first pass used at every level: {result.chosen_first_pass}")
    for level, row in result.profile.calibration["chosen"].items():
        effort = result.profile.efforts[level]
        steps = [f"{effort.first_pass} first pass", *(r.kind for r in effort.ladder)]
        click.echo(
            f"{level:>8}: {row['accuracy']:.1%} at {row['mean_total_tokens']:.0f} tokens/question"
            f" ({' -> '.join(steps)})"
        )
    click.echo(f"profile: {opts['out']}")
