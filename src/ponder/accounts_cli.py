"""``ponder teams``, ``ponder keys``, ``ponder budgets`` and ``ponder usage``: the tenancy
database from the command line (the same database ``ponder serve`` uses: ``database_url``,
``PONDER_DATABASE_URL``, or the default file). A key's secret is printed once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from ponder.config import PonderConfig
from ponder.errors import PonderError
from ponder.tenancy import TenancyStore, resolve_database_url

T = TypeVar("T")


def _run(config: PonderConfig, work: Callable[[TenancyStore], Awaitable[T]]) -> T:
    async def run() -> T:
        store = await TenancyStore.open(resolve_database_url(config))
        try:
            return await work(store)
        finally:
            await store.aclose()

    try:
        return asyncio.run(run())
    except PonderError as exc:
        raise click.ClickException(exc.message) from exc


def _names(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console().print(table)


@click.group()
def teams() -> None:
    """Teams: a key belongs to one; permissions and budgets may sit on either."""


@teams.command("create")
@click.argument("name")
@click.option("--models", help="Allowed model globs, comma-separated (default: any).")
@click.option("--strategies", help="Allowed strategies, comma-separated (default: any).")
@click.option("--max-effort", help="Highest reasoning_effort (minimal ... xhigh).")
@click.pass_obj
def teams_create(
    config: PonderConfig,
    name: str,
    models: str | None,
    strategies: str | None,
    max_effort: str | None,
) -> None:
    team = _run(
        config,
        lambda s: s.create_team(
            name,
            allowed_models=_names(models),
            allowed_strategies=_names(strategies),
            max_effort=max_effort,
        ),
    )
    click.echo(f"team {team.name} created")


@click.group()
def keys() -> None:
    """API keys (stored hashed; the secret is shown once)."""


@keys.command("create")
@click.option("--team", required=True)
@click.option("--name", required=True)
@click.option("--team-admin", is_flag=True, help="May read the whole team's usage and traces.")
@click.option("--models", help="Allowed model globs, comma-separated (default: the team's).")
@click.option("--strategies", help="Allowed strategies, comma-separated (default: the team's).")
@click.option("--max-effort", help="Highest reasoning_effort (default: the team's).")
@click.pass_obj
def keys_create(
    config: PonderConfig,
    team: str,
    name: str,
    team_admin: bool,
    models: str | None,
    strategies: str | None,
    max_effort: str | None,
) -> None:
    key, secret = _run(
        config,
        lambda s: s.create_key(
            team,
            name,
            team_admin=team_admin,
            allowed_models=_names(models),
            allowed_strategies=_names(strategies),
            max_effort=max_effort,
        ),
    )
    click.echo(f"key {key.id} ({key.prefix}) for team {key.team}; the secret, shown once:")
    click.echo(secret)


@keys.command("list")
@click.option("--team", default=None)
@click.pass_obj
def keys_list(config: PonderConfig, team: str | None) -> None:
    found = _run(config, lambda s: s.list_keys(team))
    _table(
        "API keys",
        ["id", "prefix", "team", "name", "team admin", "created", "revoked"],
        [
            [k.id, k.prefix, k.team, k.name, k.team_admin, _when(k.created_at), _when(k.revoked_at)]
            for k in found
        ],
    )


@keys.command("rotate")
@click.argument("key_id")
@click.pass_obj
def keys_rotate(config: PonderConfig, key_id: str) -> None:
    key, secret = _run(config, lambda s: s.rotate_key(key_id))
    click.echo(f"key {key.id} rotated; the old secret no longer works. The new one, shown once:")
    click.echo(secret)


@keys.command("revoke")
@click.argument("key_id")
@click.pass_obj
def keys_revoke(config: PonderConfig, key_id: str) -> None:
    _run(config, lambda s: s.revoke_key(key_id))
    click.echo(f"key {key_id} revoked")


@click.group()
def budgets() -> None:
    """Budgets in dollars or tokens, per key or team, per day, month or in total."""


@budgets.command("set")
@click.option("--key", "key_id", help="A key id (or --team).")
@click.option("--team", help="A team name (or --key).")
@click.option("--usd", type=float, help="A limit in dollars (or --tokens).")
@click.option("--tokens", type=int, help="A limit in tokens (or --usd).")
@click.option("--period", type=click.Choice(["daily", "monthly", "total"]), default="monthly")
@click.pass_obj
def budgets_set(
    config: PonderConfig,
    key_id: str | None,
    team: str | None,
    usd: float | None,
    tokens: int | None,
    period: str,
) -> None:
    if (key_id is None) == (team is None) or (usd is None) == (tokens is None):
        raise click.UsageError("give one of --key/--team and one of --usd/--tokens")
    scope, owner = ("key", key_id) if key_id is not None else ("team", team)
    unit, limit = ("usd", float(usd)) if usd is not None else ("tokens", float(tokens or 0))
    budget = _run(
        config,
        lambda s: s.set_budget(scope, owner, unit=unit, period=period, limit=limit),  # type: ignore[arg-type]
    )
    click.echo(
        f"{budget.scope} {budget.owner}: {budget.limit:g} {budget.unit} per {budget.period} "
        f"(spent {budget.spent:g}, held by requests in flight {budget.reserved:g})"
    )


@click.command()
@click.option(
    "--group-by",
    type=click.Choice(["key", "team", "model", "strategy", "day"]),
    default="model",
    show_default=True,
)
@click.option("--from", "since", type=click.DateTime(), default=None)
@click.option("--to", "until", type=click.DateTime(), default=None)
@click.pass_obj
def usage(
    config: PonderConfig, group_by: str, since: datetime | None, until: datetime | None
) -> None:
    """What the ledger recorded, grouped (failed and cancelled requests included)."""
    rows = _run(
        config,
        lambda s: s.usage(group_by=group_by, since=since, until=until),  # type: ignore[arg-type]
    )
    columns = [group_by, "requests", "ok", "prompt", "completion", "reasoning", "cost $"]
    _table(
        f"usage by {group_by}",
        columns,
        [
            [
                r.get(group_by),
                r.get("requests"),
                r.get("ok"),
                r.get("prompt_tokens"),
                r.get("completion_tokens"),
                r.get("reasoning_tokens"),
                f"{float(r.get('cost_usd') or 0):.6f}",
            ]
            for r in rows
        ],
    )


def _when(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else None


COMMANDS = (teams, keys, budgets, usage)
