"""The admin HTTP API: teams, keys, budgets and rate limits, for the ``PONDER_ADMIN_KEY``
holder (``ponder keys ...`` does the same from the command line, on the database directly).
A key's secret is returned once, when it is created or rotated.

A team or key may carry a routing policy of its own: ``"policy"`` in its create body, or
``PUT .../policy`` with the policy itself as the body (``null`` or ``{}`` clears it), in the
form of the configuration's ``[policy]`` table (``ponder.config.policy_from_mapping``); an
invalid one is a 400 with ``param: "policy"``. Listings show it as ``policy_as_mapping``
gives it, or null."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field

from ponder.config.routing import PolicySettings, policy_as_mapping
from ponder.errors import ConfigError, InvalidRequestError, StoreUnavailableError
from ponder.server.errors import ERROR_RESPONSES
from ponder.server.routes import caller_of, gateway_of, require_admin
from ponder.tenancy import TenancyStore
from ponder.tenancy.keys import parse_policy
from ponder.tenancy.models import ApiKey, Team

router = APIRouter(prefix="/v1/admin", responses=ERROR_RESPONSES)

T = TypeVar("T")
# The body of PUT .../policy: the policy itself (a JSON object), or null.
PolicyBody = Annotated[dict[str, Any] | None, Body()]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TeamBody(_Body):
    name: str = Field(min_length=1, max_length=128)
    allowed_models: list[str] | None = None
    allowed_strategies: list[str] | None = None
    max_effort: str | None = None
    policy: dict[str, Any] | None = None


class KeyBody(_Body):
    team: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=128)
    team_admin: bool = False
    allowed_models: list[str] | None = None
    allowed_strategies: list[str] | None = None
    max_effort: str | None = None
    policy: dict[str, Any] | None = None


class BudgetBody(_Body):
    scope: Literal["key", "team"]
    owner: str
    unit: Literal["usd", "tokens"]
    period: Literal["daily", "monthly", "total"]
    limit: float = Field(ge=0)


class RateLimitBody(_Body):
    scope: Literal["key", "team"]
    owner: str
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)


async def _store(http: Request) -> TenancyStore:
    require_admin(await caller_of(http))
    accounts = gateway_of(http).accounts
    if accounts.store is None:
        raise StoreUnavailableError("the server has no database open")
    return accounts.store


async def _change(http: Request, change: Callable[[TenancyStore], Awaitable[T]]) -> T:
    """Make an admin change; what this process cached about keys is dropped after it, so
    the change takes effect here at once (other replicas within the cache's seconds)."""
    done = await change(await _store(http))
    gateway_of(http).accounts.forget()
    return done


def _policy(data: Any) -> PolicySettings | None:
    """A policy from a request body: None or ``{}`` for none; an invalid one is a 400."""
    try:
        return parse_policy(data, "policy")
    except ConfigError as error:
        raise InvalidRequestError(error.message, param="policy") from error


def _policy_view(policy: PolicySettings | None) -> dict[str, Any] | None:
    return (policy_as_mapping(policy) or None) if policy is not None else None


def team_view(team: Team) -> dict[str, Any]:
    return {
        "name": team.name,
        "allowed_models": team.allowed_models,
        "allowed_strategies": team.allowed_strategies,
        "max_effort": team.max_effort,
        "policy": _policy_view(team.policy),
        "created_at": team.created_at.isoformat(),
    }


def key_view(key: ApiKey, secret: str | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": key.id,
        "team": key.team,
        "name": key.name,
        "prefix": key.prefix,
        "team_admin": key.team_admin,
        "allowed_models": key.allowed_models,
        "allowed_strategies": key.allowed_strategies,
        "max_effort": key.max_effort,
        "policy": _policy_view(key.policy),
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }
    if secret is not None:
        view["key"] = secret  # shown once
    return view


@router.post("/teams")
async def create_team(http: Request, body: TeamBody) -> dict[str, Any]:
    policy = _policy(body.policy)
    team = await _change(
        http,
        lambda s: s.create_team(
            body.name,
            allowed_models=body.allowed_models,
            allowed_strategies=body.allowed_strategies,
            max_effort=body.max_effort,
            policy=policy,
        ),
    )
    return team_view(team)


@router.get("/teams")
async def list_teams(http: Request) -> dict[str, Any]:
    found = await (await _store(http)).list_teams()
    return {"object": "list", "data": [team_view(t) for t in found]}


@router.put("/teams/{name}/policy")
async def set_team_policy(http: Request, name: str, body: PolicyBody = None) -> dict[str, Any]:
    """Replace the team's routing policy (the body is the policy; null or {} clears it)."""
    policy = _policy(body)
    team = await _change(http, lambda s: s.set_policy("team", name, policy))
    return team_view(team)


@router.post("/keys")
async def create_key(http: Request, body: KeyBody) -> dict[str, Any]:
    policy = _policy(body.policy)
    key, secret = await _change(
        http,
        lambda s: s.create_key(
            body.team,
            body.name,
            team_admin=body.team_admin,
            allowed_models=body.allowed_models,
            allowed_strategies=body.allowed_strategies,
            max_effort=body.max_effort,
            policy=policy,
        ),
    )
    return key_view(key, secret)


@router.get("/keys")
async def list_keys(http: Request, team: str | None = None) -> dict[str, Any]:
    keys = await (await _store(http)).list_keys(team)
    return {"object": "list", "data": [key_view(k) for k in keys]}


@router.post("/keys/{key_id}/rotate")
async def rotate_key(http: Request, key_id: str) -> dict[str, Any]:
    key, secret = await _change(http, lambda s: s.rotate_key(key_id))
    return key_view(key, secret)


@router.put("/keys/{key_id}/policy")
async def set_key_policy(http: Request, key_id: str, body: PolicyBody = None) -> dict[str, Any]:
    """Replace the key's routing policy (the body is the policy; null or {} clears it)."""
    policy = _policy(body)
    key = await _change(http, lambda s: s.set_policy("key", key_id, policy))
    return key_view(key)


@router.delete("/keys/{key_id}")
async def revoke_key(http: Request, key_id: str) -> dict[str, Any]:
    await _change(http, lambda s: s.revoke_key(key_id))
    return {"id": key_id, "revoked": True}


@router.put("/budgets")
async def set_budget(http: Request, body: BudgetBody) -> dict[str, Any]:
    budget = await _change(
        http,
        lambda s: s.set_budget(
            body.scope, body.owner, unit=body.unit, period=body.period, limit=body.limit
        ),
    )
    return {
        "scope": budget.scope,
        "owner": budget.owner,
        "unit": budget.unit,
        "period": budget.period,
        "limit": budget.limit,
        "spent": budget.spent,
        "reserved": budget.reserved,
    }


@router.put("/rate_limits")
async def set_rate_limit(http: Request, body: RateLimitBody) -> dict[str, Any]:
    await _change(
        http, lambda s: s.set_rate_limit(body.scope, body.owner, rpm=body.rpm, tpm=body.tpm)
    )
    return body.model_dump()
