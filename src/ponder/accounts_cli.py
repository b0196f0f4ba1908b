"""``ponder teams``, ``ponder keys``, ``ponder budgets`` and ``ponder usage``: the tenancy
database from the command line (the same database ``ponder serve`` uses: ``database_url``,
``PONDER_DATABASE_URL``, or the default file). A key's secret is printed once.

A team or key may carry a routing policy of its own: ``--policy JSON`` (the form of the
configuration's ``[policy]`` table, as a JSON object) and the shortcuts ``--local-only``,
``--deny-vendor V`` (repeatable) and ``--redact``, merged into it; ``ponder teams policy`` and
``ponder keys policy`` replace it (``--clear`` removes it). Listings summarise it on one line
("local-only; deny vendor=deepseek")."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from ponder.config import PonderConfig
from ponder.config.routing import PolicyRule, PolicySettings
from ponder.errors import ConfigError
from ponder.tenancy import TenancyStore, resolve_database_url
from ponder.tenancy.keys import parse_policy

T = TypeVar("T")


def _run(config: PonderConfig, work: Callable[[TenancyStore], Awaitable[T]]) -> T:
    async def run() -> T:
        store = await TenancyStore.open(resolve_database_url(config))
        try:
            return await work(store)
        finally:
            await store.aclose()

    # A PonderError (an unknown key id, an unreachable database) goes up to the ``ponder``
    # group, which prints it as one line with what to do (ponder.cli.errors).
    return asyncio.run(run())


def _names(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _policy_options(*, clearable: bool = False) -> Callable[[Callable[..., Any]], Any]:
    """``--policy``, ``--local-only``, ``--deny-vendor`` and ``--redact`` (and ``--clear``
    where the command replaces a policy), given to the command as one ``policy`` argument:
    the :class:`PolicySettings` they make, or None."""

    def decorate(command: Callable[..., Any]) -> Any:
        @functools.wraps(command)
        def with_policy(*args: Any, **options: Any) -> Any:
            given = (
                options.pop("policy_json"),
                options.pop("local_only"),
                options.pop("deny_vendor"),
                options.pop("redact"),
            )
            if clearable:
                clear = options.pop("clear")
                if clear == (given[0] is not None or any(given[1:])):
                    raise click.UsageError(
                        "give --policy (or --local-only, --deny-vendor, --redact) or --clear"
                    )
                if clear:
                    return command(*args, policy=None, **options)
            return command(*args, policy=_policy(*given), **options)

        wrapped: Any = with_policy
        options = [
            click.option(
                "--policy",
                "policy_json",
                metavar="JSON",
                help='A routing policy, as a JSON object: {"local_only": true, "rules": '
                '[{"effect": "deny", "vendor": "deepseek"}], ...}.',
            ),
            click.option("--local-only", is_flag=True, help="Only local deployments."),
            click.option(
                "--deny-vendor",
                multiple=True,
                metavar="VENDOR",
                help="Deny a vendor's deployments (repeatable; globs allowed).",
            ),
            click.option(
                "--redact",
                is_flag=True,
                help="Redact personal data before any non-local deployment.",
            ),
        ]
        if clearable:
            options.append(click.option("--clear", is_flag=True, help="Remove the policy."))
        for option in reversed(options):
            wrapped = option(wrapped)
        return wrapped

    return decorate


def _policy(
    policy_json: str | None, local_only: bool, deny_vendor: tuple[str, ...], redact: bool
) -> PolicySettings | None:
    """The policy the options give (None: none); an invalid one is a one-line error."""
    data: Any = {}
    if policy_json is not None:
        try:
            data = json.loads(policy_json)
        except ValueError as error:
            raise click.ClickException(f"--policy is not valid JSON: {error}") from error
        if not isinstance(data, dict):
            raise click.ClickException("--policy must be a JSON object")
    try:
        policy = parse_policy(data, "--policy") or PolicySettings()
    except ConfigError as error:  # the option's mistake, not the configuration file's
        raise click.ClickException(error.message) from error
    denied = tuple(PolicyRule(effect="deny", vendor=v) for v in deny_vendor)
    policy = dataclasses.replace(
        policy,
        local_only=policy.local_only or local_only,
        redact=policy.redact or redact,
        rules=policy.rules + denied,
    )
    return None if policy.empty else policy


def policy_summary(policy: PolicySettings | None) -> str:
    """A policy on one short line: ``"local-only; deny vendor=deepseek"``; "" for none."""
    if policy is None:
        return ""
    parts = []
    if policy.mode == "allow":
        parts.append("allow-list")
    if policy.local_only:
        parts.append("local-only")
    if policy.redact:
        parts.append("redact")
    for rule in policy.rules:
        matches = [
            f"{name}={str(value).lower() if isinstance(value, bool) else value}"
            for name in ("vendor", "model", "region", "local")
            if (value := getattr(rule, name)) is not None
        ]
        parts.append(" ".join([rule.effect, *matches]) if matches else f"{rule.effect} all")
    for name, targets in policy.fallbacks.items():
        parts.append(f"fallback {name}->{','.join(targets)}")
    return "; ".join(parts)


def _table(title: str, columns: list[str], rows: list[list[Any]], *, keep: int = 1) -> None:
    """A table. Its first ``keep`` columns (a key's id and prefix, a team's name) are never
    cut or wrapped, so they can be copied into the next command; the others wrap, and
    fold what is still too long rather than cut it."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    table = Table(title=title)
    for i, column in enumerate(columns):
        if i < keep:
            width = max([len(column), *(len(r[i]) for r in cells)])
            table.add_column(column, no_wrap=True, min_width=width)
        else:
            table.add_column(column, overflow="fold")
    for row in cells:
        table.add_row(*row)
    Console().print(table)


@click.group()
def teams() -> None:
    """Teams: a key belongs to one; permissions and budgets may sit on either."""


@teams.command("create")
@click.argument("name")
@click.option("--models", help="Allowed model globs, comma-separated (default: any).")
@click.option("--strategies", help="Allowed strategies, comma-separated (default: any).")
@click.option("--max-effort", help="Highest reasoning_effort (minimal ... xhigh).")
@_policy_options()
@click.pass_obj
def teams_create(
    config: PonderConfig,
    name: str,
    models: str | None,
    strategies: str | None,
    max_effort: str | None,
    policy: PolicySettings | None,
) -> None:
    team = _run(
        config,
        lambda s: s.create_team(
            name,
            allowed_models=_names(models),
            allowed_strategies=_names(strategies),
            max_effort=max_effort,
            policy=policy,
        ),
    )
    click.echo(f"team {team.name} created" + _policy_note(team.policy))


@teams.command("list")
@click.pass_obj
def teams_list(config: PonderConfig) -> None:
    found = _run(config, lambda s: s.list_teams())
    _table(
        "teams",
        ["name", "models", "strategies", "max effort", "policy", "created"],
        [
            [
                t.name,
                _joined(t.allowed_models),
                _joined(t.allowed_strategies),
                t.max_effort,
                policy_summary(t.policy),
                _when(t.created_at),
            ]
            for t in found
        ],
    )


@teams.command("policy")
@click.argument("name")
@_policy_options(clearable=True)
@click.pass_obj
def teams_policy(config: PonderConfig, name: str, policy: PolicySettings | None) -> None:
    """Replace a team's routing policy (or --clear it)."""
    team = _run(config, lambda s: s.set_policy("team", name, policy))
    click.echo(f"team {team.name}: " + (policy_summary(team.policy) or "no policy"))


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
@_policy_options()
@click.pass_obj
def keys_create(
    config: PonderConfig,
    team: str,
    name: str,
    team_admin: bool,
    models: str | None,
    strategies: str | None,
    max_effort: str | None,
    policy: PolicySettings | None,
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
            policy=policy,
        ),
    )
    click.echo(
        f"key {key.id} ({key.prefix}) for team {key.team}{_policy_note(key.policy)}; "
        "the secret, shown once:"
    )
    click.echo(secret)


@keys.command("list")
@click.option("--team", default=None)
@click.pass_obj
def keys_list(config: PonderConfig, team: str | None) -> None:
    found = _run(config, lambda s: s.list_keys(team))
    _table(
        "API keys",
        ["id", "prefix", "team", "name", "team admin", "policy", "created", "revoked"],
        [
            [
                k.id,
                k.prefix,
                k.team,
                k.name,
                k.team_admin,
                policy_summary(k.policy),
                _when(k.created_at),
                _when(k.revoked_at),
            ]
            for k in found
        ],
        keep=2,
    )


@keys.command("policy")
@click.argument("key_id")
@_policy_options(clearable=True)
@click.pass_obj
def keys_policy(config: PonderConfig, key_id: str, policy: PolicySettings | None) -> None:
    """Replace a key's routing policy (or --clear it)."""
    key = _run(config, lambda s: s.set_policy("key", key_id, policy))
    click.echo(f"key {key.id}: " + (policy_summary(key.policy) or "no policy"))


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


def _policy_note(policy: PolicySettings | None) -> str:
    return f" (policy: {policy_summary(policy)})" if policy is not None else ""


def _joined(names: tuple[str, ...] | None) -> str | None:
    return ",".join(names) if names is not None else None


def _when(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else None


COMMANDS = (teams, keys, budgets, usage)
