"""The ``ponder`` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import cast

import click

from ponder import logs
from ponder.accounts_cli import COMMANDS as ACCOUNT_COMMANDS
from ponder.bench.commands import bench, calibrate
from ponder.config import PonderConfig, load_config
from ponder.engine.weights import ModelStore
from ponder.errors import PonderError
from ponder.gateway import Gateway
from ponder.logs import LogFormat
from ponder.progress import download_bar
from ponder.reasoning.runner import StrategySpec
from ponder.routing.registry import BackendRegistry
from ponder.types import GenerationRequest, Message, SamplingParams


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
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per line (a request's id, key, model, strategy, status, "
    "tokens), for log pipelines.",
)
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: bool, log_format: str) -> None:
    """Ponder: make any LLM think before it answers."""
    logs.configure(logging.INFO if verbose else logging.WARNING, cast(LogFormat, log_format))
    ctx.meta["log_format"] = log_format
    ctx.meta["config_path"] = config_path
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
    default=None,
    help="Reasoning strategy (see docs/strategies.md); default: the configured one (auto).",
)
@click.option(
    "--effort",
    type=click.Choice(["minimal", "low", "medium", "high", "xhigh"]),
    default=None,
    help="Effort level for auto (like OpenAI's reasoning_effort).",
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
    strategy: str | None,
    effort: str | None,
    params: tuple[str, ...],
    show_reasoning: bool,
    max_tokens: int,
    temperature: float | None,
    seed: int | None,
    trace_path: str | None,
) -> None:
    """Answer QUESTION, reasoning with a strategy (the adaptive controller by default)."""
    name = model or config.default_model
    default = dict(config.default_strategy or {"strategy": "cot"})

    async def run() -> None:
        chosen = {"strategy": strategy} if strategy else default
        raw = {**chosen, **dict(_param(p) for p in params)}
        if effort is not None:
            raw["effort"] = effort
        if temperature is not None:
            raw.setdefault("temperature", temperature)
        async with Gateway(config) as gateway:
            spec = StrategySpec.parse(raw, gateway.strategies)
            if gateway.registry.kind_of(gateway.registry.canonical(name)) == "bundled":
                await gateway.registry.get(name, progress=download_bar(f"assembling {name}"))
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
            result = await gateway.solve(spec, request, model=name, on_progress=progress)
            elapsed = time.perf_counter() - started
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
@click.option(
    "--workers",
    type=int,
    default=1,
    show_default=True,
    help="Server processes. Each loads its own copy of an embedded model; for a gateway in "
    "front of remote endpoints, about one per core.",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="Log every request (uvicorn's access log, and Ponder's record of each chat "
    "request: id, key, model, strategy, status, tokens).",
)
@click.option(
    "--allow-unauthenticated",
    is_flag=True,
    help="Serve on a non-loopback address with no API keys (anyone who can reach it may use it).",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    models: tuple[str, ...],
    max_n: int | None,
    workers: int,
    access_log: bool,
    allow_unauthenticated: bool,
) -> None:
    """Start the OpenAI-compatible server."""
    import os

    import uvicorn

    config: PonderConfig = ctx.obj
    log_format = cast(LogFormat, ctx.meta.get("log_format", "text"))
    logs.configure(logging.INFO, log_format)  # a server says what it serves
    if not access_log:  # nor Ponder's own record of each request
        logging.getLogger("ponder.requests").setLevel(logging.WARNING)
    os.environ["PONDER_LOG_FORMAT"] = log_format  # for --workers' processes
    bind = host or config.host
    if not _loopback(bind) and not allow_unauthenticated and not _has_credentials(config):
        raise click.ClickException(
            f"refusing to serve on {bind} with no API keys: anyone who can reach it could use "
            "it. Create one (ponder teams create T && ponder keys create --team T --name N), "
            "set PONDER_ADMIN_KEY, or pass --allow-unauthenticated"
        )
    if max_n is not None:
        config = config.replace(max_n=max_n)
    preload = list(models) or [config.default_model]
    registry = BackendRegistry(config)
    for name in preload:
        if registry.kind_of(name) == "bundled":
            registry.store.ensure(registry.canonical(name), download_bar(f"assembling {name}"))
    bind_host, bind_port = host or config.host, port or config.port
    if workers > 1:
        # Each worker builds its own app from the same settings (see ponder.server.factory).
        os.environ["PONDER_CONFIG"] = str(ctx.meta.get("config_path") or "")
        os.environ["PONDER_PRELOAD"] = ",".join(preload)
        if max_n is not None:
            os.environ["PONDER_MAX_N"] = str(max_n)
        uvicorn.run(
            "ponder.server.factory:app",
            factory=True,
            workers=workers,
            host=bind_host,
            port=bind_port,
            log_level="info",
            log_config=None,  # each worker logs as ponder.logs configures it
            access_log=access_log,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=config.shutdown_grace_seconds,
        )
        return
    from ponder.server.app import create_app

    uvicorn.run(
        create_app(config, preload=preload),
        host=bind_host,
        port=bind_port,
        log_level="info",
        log_config=None,  # ponder.logs configured it
        access_log=access_log,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=config.shutdown_grace_seconds,
    )


# How long an idle client connection is kept. Longer than HTTP clients keep theirs (httpx,
# so the openai SDK: 5 s, uvicorn's own default too): at equal times a client reuses a
# connection just as the server closes it, and the request fails.
KEEP_ALIVE_SECONDS = 30


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _has_credentials(config: PonderConfig) -> bool:
    """An admin key in the environment, or any live API key in the database."""
    import os

    from ponder.tenancy import TenancyStore, resolve_database_url

    if os.environ.get("PONDER_ADMIN_KEY"):
        return True

    async def any_key() -> bool:
        store = await TenancyStore.open(resolve_database_url(config))
        try:
            return await store.has_keys()
        finally:
            await store.aclose()

    return asyncio.run(any_key())


@main.command()
@click.pass_obj
def deployments(config: PonderConfig) -> None:
    """List every configured deployment, and whether the global policy allows it."""
    from rich.console import Console
    from rich.table import Table

    registry = BackendRegistry(config)
    table = Table("id", "model", "kind", "vendor", "region", "local", "$/1M in/out", "policy")
    for d in registry.catalog.deployments():
        price = f"{d.price.prompt:g}/{d.price.completion:g}" if d.price else "unknown"
        denial = registry.scope.denial(d, "request")
        table.add_row(
            d.id,
            d.model_name,
            d.kind,
            d.vendor,
            d.region or "",
            "yes" if d.local else "no",
            price,
            "allowed" if denial is None else denial.split(": ", 1)[1],
        )
    Console(width=160).print(table)


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
                store.ensure(spec.name, download_bar(f"assembling {spec.name}"))
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


@main.command()
@click.option("--markdown", is_flag=True, help="Print the table docs/strategies.md carries.")
@click.option(
    "--write-docs",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Replace the generated table in this Markdown file.",
)
def strategies(markdown: bool, write_docs: str | None) -> None:
    """List the reasoning strategies: built in, and added by installed packages."""
    from ponder.reasoning import catalog
    from ponder.reasoning.registry import StrategyRegistry

    try:
        registry = StrategyRegistry.discover()
    except PonderError as exc:
        raise click.ClickException(exc.message) from exc
    table = catalog.markdown(registry)
    if write_docs:
        path = Path(write_docs)
        path.write_text(catalog.replace_section(path.read_text(), table))
        return
    if markdown:
        click.echo(table, nl=False)
        return
    for name, cls in registry.items():
        click.echo(f"{name:<22} {catalog.summary(cls)}")
        click.echo(f"{'':<22} e.g. {catalog.example_model_name(cls)}")


@main.group()
def sandbox() -> None:
    """The sandbox that runs model-written programs."""


@sandbox.command("check")
@click.pass_obj
def sandbox_check(config: PonderConfig) -> None:
    """Say which isolation is in force and why; exit 1 where programs cannot run."""
    from ponder.sandbox import Sandbox

    sb = Sandbox(config.sandbox)
    status = asyncio.run(sb.status())
    if not status.available:
        click.echo(f"sandbox: UNAVAILABLE ({status.mode} mode): {status.detail}")
        click.echo(f"fix: {status.fix}")
        click.echo("programs will not run: program-aided refuses, auto goes without programs")
        sys.exit(1)
    if status.mode == "process":
        click.echo(f"sandbox: process mode (WEAK). {status.detail}")
        return
    click.echo(f"sandbox: bwrap mode. {status.detail}")


main.add_command(bench)
main.add_command(calibrate)
for command in ACCOUNT_COMMANDS:
    main.add_command(command)


if __name__ == "__main__":
    main()
