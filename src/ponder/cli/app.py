"""The ``ponder`` group: its global options, and the one list of its subcommands."""

from __future__ import annotations

import logging
from typing import cast

import click

from ponder import logs
from ponder.accounts_cli import COMMANDS as ACCOUNT_COMMANDS
from ponder.bench.commands import bench, calibrate
from ponder.cli.ask import ask
from ponder.cli.group import PonderGroup
from ponder.cli.inventory import deployments, models, sandbox, strategies
from ponder.cli.serve import serve
from ponder.cli.settings import load_settings
from ponder.config_cli import config_group
from ponder.doctor import doctor
from ponder.logs import LogFormat


@click.group(
    cls=PonderGroup,
    epilog="Global options may come before or after the command: "
    "ponder serve --config ponder.toml works.",
)
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    default=None,
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
    ctx.obj = load_settings(config_path)


# Every subcommand, one entry each: a new command is imported above and added here.
COMMANDS: tuple[click.Command, ...] = (
    ask,
    serve,
    deployments,
    models,
    strategies,
    sandbox,
    bench,
    calibrate,
    config_group,
    doctor,
    *ACCOUNT_COMMANDS,
)

for command in COMMANDS:
    main.add_command(command)
