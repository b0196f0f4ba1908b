"""The listing commands: ``deployments``, ``models``, ``strategies`` and ``sandbox check``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from ponder.config import PonderConfig
from ponder.engine.weights import ModelStore
from ponder.errors import PonderError
from ponder.progress import download_bar
from ponder.routing.registry import BackendRegistry


@click.command()
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


@click.command()
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
            try:  # one model failing is a row of the listing, not the end of it
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


@click.command()
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

    registry = StrategyRegistry.discover()
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


@click.group()
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
