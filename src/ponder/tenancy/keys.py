"""Teams and API keys: rows to values, secrets and their hashes.

A key's secret is ``pk-`` followed by 43 URL-safe random characters (256 bits). Only its
SHA-256 is stored: a lookup hashes the presented secret, finds the row by the hash and
compares the two hashes in constant time. The secret is returned once, when the key is
created or rotated, and cannot be recovered afterwards.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from typing import Any

from ponder.errors import InvalidRequestError
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
    )
