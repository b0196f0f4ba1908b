"""``ponder ask``: one question through the gateway, its progress shown while it works.

On a terminal the strategy's progress lines and the model's tokens show as they come (see
:mod:`ponder.cli.live`), then the answer, then one summary line (:mod:`ponder.cli.summary`).
Piped, the answer is plain text on stdout; progress and the summary go to stderr, so that
``$(ponder ask ...)`` holds the answer alone. ``--json`` prints the whole result for scripts.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from ponder.cli.errors import CommandError
from ponder.cli.live import Display, PlainDisplay, QuietDisplay, RichDisplay, WatchedBackend
from ponder.cli.summary import CONFIDENCE_SCALE, decision, plural, summary_line
from ponder.config import PonderConfig
from ponder.gateway import Gateway
from ponder.progress import download_bar
from ponder.reasoning.base import StrategyResult
from ponder.reasoning.profile import AutoProfile, EffortProfile, builtin_profile, load_profile
from ponder.reasoning.runner import StrategySpec
from ponder.routing.registry import embedded_backend_class
from ponder.types import GenerationRequest, Message, SamplingParams


def _profile(config: PonderConfig | None) -> AutoProfile:
    if config is not None and config.auto_profile:
        return load_profile(config.auto_profile)
    return builtin_profile()


def _effort_words(effort: EffortProfile) -> str:
    most = sum(
        r.max_n if r.kind == "vote" else r.n if r.kind == "program" else 1 for r in effort.ladder
    )
    first = "a program" if effort.first_pass == "program" else "a chain of thought"
    accept = (
        "never taken alone"
        if effort.accept_confidence >= 100
        or (effort.ladder and effort.accept_confidence == float("inf"))
        else f"taken at confidence >= {effort.accept_confidence:g}"
    )
    more = f", else up to {plural(most, 'more path')}" if effort.ladder else ""
    return f"first {first}, {accept}{more}"


class AskCommand(click.Command):
    """``ask``, whose help lists the strategies and efforts installed, read when asked."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from ponder.reasoning import catalog
        from ponder.reasoning.registry import StrategyRegistry

        registry = StrategyRegistry.discover()
        with formatter.section("Strategies (--strategy)"):
            formatter.write_dl([(name, catalog.summary(cls)) for name, cls in registry.items()])
        profile = _profile(ctx.find_object(PonderConfig))
        with formatter.section("Efforts (--effort, for auto)"):
            formatter.write_dl([(n, _effort_words(e)) for n, e in profile.efforts.items()])
        formatter.write_paragraph()
        formatter.write_text(f"In progress lines, {CONFIDENCE_SCALE}.")


def _param(value: str) -> tuple[str, object]:
    key, eq, raw = value.partition("=")
    if not eq or not key:
        raise click.BadParameter(f"expected key=value, got {value!r}", param_hint="'--param'")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


@dataclass(frozen=True, slots=True)
class Asked:
    """One answered question and what the summary needs."""

    result: StrategyResult
    spec: StrategySpec
    model: str
    seconds: float
    decision: str | None


@click.command(cls=AskCommand)
@click.argument("question")
@click.option("--model", "-m", default=None, help="Model name, GGUF path, or provider/model.")
@click.option(
    "--strategy",
    "-s",
    default=None,
    help="Reasoning strategy (listed below); default: the configured one (auto).",
)
@click.option(
    "--effort",
    default=None,
    help="Effort level for auto (like OpenAI's reasoning_effort; listed below).",
)
@click.option(
    "--clarify/--no-clarify",
    default=None,
    help="For auto: ask back when the question leaves out what only you know (default), or "
    "answer with a best guess.",
)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    help="Strategy parameter as key=value (repeatable), e.g. -p n=8.",
)
@click.option(
    "--show-reasoning/--hide-reasoning",
    default=True,
    help="Show progress while it works, and the reasoning before the answer.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    help="Per inner call.",
)
@click.option("--temperature", type=float, default=None, help="Default: the strategy's own.")
@click.option("--seed", type=int, default=None)
@click.option(
    "--trace",
    "trace_path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the trace as JSON here.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the whole result as one JSON object (answer, usage, trace id, decision).",
)
@click.pass_obj
def ask(
    config: PonderConfig,
    question: str,
    model: str | None,
    strategy: str | None,
    effort: str | None,
    clarify: bool | None,
    params: tuple[str, ...],
    show_reasoning: bool,
    max_tokens: int,
    temperature: float | None,
    seed: int | None,
    trace_path: str | None,
    as_json: bool,
) -> None:
    """Answer QUESTION, reasoning with a strategy (the adaptive controller by default)."""
    raw: dict[str, Any] = dict(
        {"strategy": strategy} if strategy else config.default_strategy or {"strategy": "cot"}
    )
    raw.update(_param(p) for p in params)
    if effort is not None:
        if raw.get("strategy") != "auto":
            raise CommandError(
                f"--effort is for the auto strategy, not {raw.get('strategy')}; drop it or pass -s auto"
            )
        raw["effort"] = effort
    if clarify is not None:
        if raw.get("strategy") != "auto":
            raise CommandError(
                f"--clarify is for the auto strategy, not {raw.get('strategy')}; drop it or pass -s auto"
            )
        raw["clarify"] = clarify
    if temperature is not None:
        raw.setdefault("temperature", temperature)
    request = GenerationRequest(
        messages=(Message("user", question),),
        sampling=SamplingParams(max_tokens=max_tokens, seed=seed),
    )
    terminal = sys.stderr.isatty() and not as_json
    display: Display = (
        QuietDisplay()
        if as_json or not show_reasoning
        else RichDisplay(Console(stderr=True))
        if terminal
        else PlainDisplay()
    )
    try:
        asked = asyncio.run(_ask(config, raw, request, model or config.default_model, display))
    finally:
        display.close()
    if trace_path:
        Path(trace_path).write_text(json.dumps(asked.result.trace.as_dict(), indent=2))
    if as_json:
        click.echo(json.dumps(_as_json(asked), indent=2, default=str))
        return
    _show(asked, show_reasoning, terminal)


async def _ask(
    config: PonderConfig,
    raw: dict[str, Any],
    request: GenerationRequest,
    name: str,
    display: Display,
) -> Asked:
    async with Gateway(config) as gateway:
        # Every mistake in the command is found here, before a model loads.
        spec = StrategySpec.parse(raw, gateway.strategies)
        profile = gateway.services.auto_profile or builtin_profile()
        if spec.name == "auto":
            profile.effort(str(raw.get("effort", "medium")))
        canonical = gateway.registry.canonical(name)
        kind = gateway.registry.kind_of(canonical)
        if kind != "remote":
            embedded_backend_class()  # llama.cpp missing: name the extra to install
        assembling = download_bar(f"assembling {canonical}") if kind == "bundled" else None
        backend = await gateway.registry.get(canonical, progress=assembling)
        started = time.perf_counter()
        result = await gateway.solve(
            spec,
            request,
            model=canonical,
            # A remote model's stream may differ from its generate; only watch our own.
            backend=WatchedBackend(backend, display) if kind != "remote" else backend,
            on_progress=display.progress,
        )
        seconds = time.perf_counter() - started
    return Asked(result, spec, canonical, seconds, decision(spec, result, profile))


def _show(asked: Asked, show_reasoning: bool, terminal: bool) -> None:
    result = asked.result
    answer = result.answer if result.answer is not None else result.text
    # details.clarify is the documented mark of a question back (ponder.details.clarify).
    label = "Question back: " if result.details.get("clarify") is True else "Answer: "
    if show_reasoning and result.reasoning:
        click.secho("Reasoning:", bold=True, color=terminal)
        click.echo(result.reasoning.rstrip())
        click.echo()
        click.secho(label, bold=True, nl=False, color=terminal)
    elif terminal:
        click.secho(label, bold=True, nl=False)
    click.echo(answer)
    sys.stdout.flush()
    line = summary_line(result, asked.spec, asked.model, asked.seconds, asked.decision)
    click.secho(line, fg="bright_black", err=True, color=terminal)


def _as_json(asked: Asked) -> dict[str, Any]:
    result, usage = asked.result, asked.result.hidden_usage
    return {
        "answer": result.answer,
        "text": result.text,
        "reasoning": result.reasoning,
        "model": asked.model,
        "strategy": asked.spec.describe(),
        "params": asked.spec.params.model_dump(),
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "total_tokens": usage.total_tokens,
            "calls": usage.calls,
        },
        "seconds": round(asked.seconds, 3),
        "trace_id": result.trace.id,
        "decision": {"summary": asked.decision, "details": result.details},
    }
