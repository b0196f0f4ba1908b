"""``ponder bench`` and ``ponder calibrate``: the command-line face of the benchmark harness."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ponder.config import PonderConfig
from ponder.errors import PonderError
from ponder.progress import download_bar
from ponder.reasoning.profile import AutoProfile, load_profile

if TYPE_CHECKING:
    from ponder.backends.base import Backend


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
    from ponder.bench.session import BenchOptions, batch_config, parse_system_json, run_session

    config: PonderConfig = batch_config(ctx.obj)
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
    default=None,
    help="Calibration data for checkable answers (JSONL). Use rows you do not report results "
    "on. Required unless --base gives the ladder.",
)
@click.option(
    "--base",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Keep this profile's ladder for checkable answers instead of fitting one; fit only "
    "the kinds whose data is given.",
)
@click.option(
    "--chat-data",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help='Chat prompts (JSONL with "prompt") to fit the chat levels on.',
)
@click.option("--chat-limit", type=int, default=40, show_default=True, help="Chat prompts used.")
@click.option(
    "--kinds-from",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Take the chat and code levels, and their calibration records, from this profile "
    "(fitted earlier); --chat-data and --code-data refit a kind on top.",
)
@click.option(
    "--code-data",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="HumanEval-format tasks (JSONL, .gz allowed) to fit the code levels on; only the "
    "even-numbered tasks are used, so that the odd ones stay for reporting.",
)
@click.option("--code-limit", type=int, default=82, show_default=True, help="Code tasks used.")
@click.option(
    "--code-samples", type=int, default=8, show_default=True, help="Programs sampled per task."
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
    default=None,
    help="Sample bank file (drawn once, reused by later runs); required with --data.",
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
    """Fit the adaptive controller's profile: the ladder for checkable answers on a
    calibration split, and the chat and code levels on their own prompts."""
    from ponder.bench.session import batch_config
    from ponder.routing.registry import BackendRegistry

    config = batch_config(config)
    name = opts["model"] or config.default_model
    if (opts["data"] is None) == (opts["base"] is None):
        raise click.UsageError("give --data (fit the ladder) or --base (keep a profile's)")
    if opts["data"] is not None and opts["bank"] is None:
        raise click.UsageError("--data needs --bank")
    command = "ponder " + shlex.join(sys.argv[1:])

    async def run() -> tuple[Any, AutoProfile]:
        registry = BackendRegistry(config)
        try:
            needs_model = opts["data"] or opts["chat_data"] or opts["code_data"]
            backend = (
                await registry.get(name, progress=download_bar(f"assembling {name}"))
                if needs_model
                else None
            )
            result = (
                await _fit_ladder(config, opts, name, backend, command) if opts["data"] else None
            )
            profile = result.profile if result else load_profile(Path(opts["base"]))
            profile = await _fit_kinds(config, opts, backend, profile, command)
            return result, profile
        finally:
            await registry.aclose()

    try:
        result, profile = asyncio.run(run())
    except PonderError as exc:
        raise click.ClickException(exc.message) from exc
    Path(opts["out"]).write_text(json.dumps(profile.model_dump(mode="json"), indent=2) + "\n")
    if result is not None:
        _echo_ladder(result, profile)
    for kind in ("chat", "code"):
        fitted = profile.calibration.get(kind)
        if isinstance(fitted, dict) and "chosen" in fitted:
            click.echo(f"{kind}: {json.dumps(fitted['chosen'])}")
        elif isinstance(fitted, dict):
            click.echo(f"{kind}: {json.dumps(fitted)}")
    click.echo(f"profile: {opts['out']}")


async def _fit_ladder(
    config: PonderConfig, opts: dict[str, Any], name: str, backend: Backend | None, command: str
) -> Any:
    from ponder.bench.bank import SampleBank
    from ponder.bench.calibrate import calibrate as fit
    from ponder.bench.tasks import load_task
    from ponder.sandbox import Sandbox

    task = load_task(opts["task"])
    data = Path(opts["data"])
    rows = task.load(data)
    end = opts["offset"] + opts["limit"]
    examples = rows[opts["offset"] : end]
    screen = rows[end : end + opts["screen"]]
    assert backend is not None  # fitting a ladder draws paths
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
            "command": command,
        },
        on_step=lambda line: click.echo(line, err=True),
    )


async def _fit_kinds(
    config: PonderConfig,
    opts: dict[str, Any],
    backend: Backend | None,
    profile: AutoProfile,
    command: str,
) -> AutoProfile:
    """The profile with its chat and code levels fitted where their data is given."""
    from ponder.bench.calibrate_kinds import choose_code, draw_code, fit_chat
    from ponder.bench.tasks import HumanEval, read_jsonl
    from ponder.sandbox import Sandbox

    update: dict[str, Any] = {}
    calibration = dict(profile.calibration)
    if opts["kinds_from"]:
        fitted = load_profile(Path(opts["kinds_from"]))
        update.update(chat=fitted.chat, code=fitted.code)
        calibration.update({k: v for k, v in fitted.calibration.items() if k in ("chat", "code")})
    if opts["chat_data"] and backend is not None:
        path = Path(opts["chat_data"])
        prompts = [str(r["prompt"]) for r in read_jsonl(path) if "prompt" in r][
            : opts["chat_limit"]
        ]
        if not prompts:
            raise click.UsageError(f"--chat-data {path} has no prompts")
        click.echo(f"chat: one direct answer on {len(prompts)} prompts", err=True)
        chat = await fit_chat(
            prompts, backend, max_tokens=opts["max_tokens"], concurrency=opts["concurrency"]
        )
        update["chat"] = chat.efforts
        calibration["chat"] = {"data": path.name, "command": command, **chat.summary}
    if opts["code_data"] and backend is not None:
        path = Path(opts["code_data"])
        sandbox = Sandbox(config.sandbox)
        task = HumanEval(sandbox)
        even = [e for e in task.load(path) if int(e.id.rsplit("/", 1)[-1]) % 2 == 0]
        examples = even[: opts["code_limit"]]
        if not examples:
            raise click.UsageError(f"--code-data {path} has no even-numbered tasks")
        click.echo(
            f"code: greedy and {opts['code_samples']} samples on {len(examples)} tasks", err=True
        )
        draws = await draw_code(
            task,
            examples,
            backend,
            sandbox,
            samples=opts["code_samples"],
            max_tokens=opts["max_tokens"],
            concurrency=opts["concurrency"],
        )
        efforts, summary = choose_code(draws, opts["code_samples"], opts["max_tokens"])
        update["code"] = efforts
        calibration["code"] = {
            "data": path.name,
            "split": "even-numbered tasks",  # "tasks" is the count, in the summary
            "command": command,
            **summary,
        }
    update["calibration"] = calibration
    return profile.model_copy(update=update)


def _echo_ladder(result: Any, profile: AutoProfile) -> None:
    for kind, first in result.first_passes.items():
        click.echo(
            f"{kind} first pass alone: {first.accuracy:.1%} at {first.tokens:.0f} tokens/question"
        )
    click.echo(f"first pass used at every level: {result.chosen_first_pass}")
    chosen = profile.calibration["chosen"]
    assert isinstance(chosen, dict)
    for level, row in chosen.items():
        effort = profile.efforts[level]
        steps = [f"{effort.first_pass} first pass", *(r.kind for r in effort.ladder)]
        click.echo(
            f"{level:>8}: {row['accuracy']:.1%} at {row['mean_total_tokens']:.0f} tokens/question"
            f" ({' -> '.join(steps)})"
        )
