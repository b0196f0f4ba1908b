"""Teams and API keys: rows to values, secrets and their hashes.

A key's secret is ``pk-`` followed by 43 URL-safe random characters (256 bits). Only its
SHA-256 is stored: a lookup hashes the presented secret, finds the row by the hash and
compares the two hashes in constant time. The secret is returned once, when the key is
created or rotated, and cannot be recovered afterwards.

A team's or key's routing policy is stored as JSON (``policy_as_mapping``; NULL, or an empty
policy: none of its own) and read back with ``policy_from_mapping``. A stored policy that
cannot be read fails closed: reading the row raises :class:`StoreUnavailableError` (a 503 on
a request's path), never a record without its restrictions. Setting the policy again
(``TenancyStore.set_policy``) repairs the row.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from typing import Any

from ponder.config.routing import PolicySettings, policy_as_mapping, policy_from_mapping
from ponder.errors import ConfigError, InvalidRequestError, StoreUnavailableError
from ponder.tenancy.models import ApiKey, Team, from_db

SECRET_PREFIX = "pk-"
DISPLAY_CHARS = 8


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[len(SECRET_PREFIX) : len(SECRET_PREFIX) + DISPLAY_CHARS]


def dump_names(names: Sequence[str] | None, what: str) -> str | None:
    """A list of model or strategy names as stored (JSON), ``None`` meaning no restriction."""
    if names is None:
        return None
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
        raise InvalidRequestError(f"{what} must be a list of non-empty names", param=what)
    return json.dumps(list(names))


def load_names(stored: str | None) -> tuple[str, ...] | None:
    return None if stored is None else tuple(json.loads(stored))


def parse_policy(data: Any, where: str) -> PolicySettings | None:
    """A team's or key's policy from its JSON form (as the admin API and the CLI take it):
    ``None`` or an empty policy (``{}``) means none of its own. Raises ConfigError."""
    if data is None:
        return None
    policy = _policy_from_mapping(data, where)
    return None if policy.empty else policy


def dump_policy(policy: PolicySettings | None) -> str | None:
    """A policy as stored (JSON); ``None`` for no policy or an empty one."""
    if policy is None:
        return None
    if not isinstance(policy, PolicySettings):
        raise InvalidRequestError("policy must be a routing policy", param="policy")
    if policy.empty:
        return None
    return json.dumps(policy_as_mapping(policy), separators=(",", ":"), sort_keys=True)


def load_policy(stored: str | None, where: str) -> PolicySettings | None:
    """The stored policy of ``where`` (e.g. ``"team 'acme' policy"``). One that is not valid
    JSON or not a valid policy raises StoreUnavailableError: a corrupt row must not read as
    an unrestricted team or key."""
    if stored is None:
        return None
    try:
        policy = _policy_from_mapping(json.loads(stored), where)
    except ValueError as error:  # json.JSONDecodeError
        raise StoreUnavailableError(
            f"{where} in the database is not valid JSON ({error}); set it again"
        ) from error
    except ConfigError as error:
        raise StoreUnavailableError(
            f"{error.message} (as stored in the database); set it again"
        ) from error
    return None if policy.empty else policy


def _policy_from_mapping(data: Any, where: str) -> PolicySettings:
    try:
        return policy_from_mapping(data, where=where)
    except (TypeError, ValueError) as error:  # a value of the wrong shape (rules: 5)
        raise ConfigError(f"{where} is not a valid policy: {error}") from error


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidRequestError(f"{what} must be a non-empty name of at most 200 characters")
    return name


def team_from_row(row: Any) -> Team:
    return Team(
        name=row.name,
        allowed_models=load_names(row.allowed_models),
        allowed_strategies=load_names(row.allowed_strategies),
        max_effort=row.max_effort,
        created_at=from_db(row.created_at),
        policy=load_policy(row.policy, f"team {row.name!r} policy"),
    )


def key_from_row(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        team=row.team,
        name=row.name,
        prefix=row.prefix,
        team_admin=bool(row.team_admin),
        allowed_models=load_names(row.allowed_models),
        allowed_strategies=load_names(row.allowed_strategies),
        max_effort=row.max_effort,
        created_at=from_db(row.created_at),
        revoked_at=None if row.revoked_at is None else from_db(row.revoked_at),
        policy=load_policy(row.policy, f"key {row.id!r} policy"),
    )
