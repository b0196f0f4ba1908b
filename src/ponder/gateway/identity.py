"""Who is calling, and what they may use.

A :class:`Caller` is resolved once per request from its bearer token: the operator's admin
key (``PONDER_ADMIN_KEY``), an API key from the tenancy store, or, on a server with no keys at
all, the single local user. Permissions set on a key win over its team's; a key or team may
restrict the strategies and the highest ``reasoning_effort`` it may use, and carries a
routing policy (:mod:`ponder.routing.policy`): its allowed models (globs, matched on the
deployment a name resolves to) and its own rules, checked at every hop of its requests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ponder.config import PolicyRule, PolicySettings
from ponder.errors import PolicyError
from ponder.routing.policy import Scope
from ponder.tenancy.models import ApiKey, Team

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


@dataclass(frozen=True, slots=True)
class Caller:
    key: ApiKey | None = None  # None: the admin, or the single local user
    team: Team | None = None
    admin: bool = False

    @staticmethod
    def local() -> Caller:
        """The one user of a server that has no keys (it listens on loopback only)."""
        return Caller(admin=True)

    @property
    def key_id(self) -> str | None:
        return self.key.id if self.key is not None else None

    @property
    def team_name(self) -> str | None:
        return self.key.team if self.key is not None else None

    @property
    def label(self) -> str:
        return f"key {self.key.prefix}" if self.key is not None else "admin"

    def sees(self, key_id: str | None, team: str | None) -> bool:
        """Whether this caller may read what ``key_id`` (of ``team``) made."""
        if self.admin:
            return True
        if self.key is None:
            return False
        if key_id == self.key.id:
            return True
        return self.key.team_admin and team is not None and team == self.key.team

    def scope(self, base: Scope, *, local_only: bool = False) -> Scope:
        """The policies this caller's requests are under: ``base`` (the operator's), then
        its team's and its key's own (their policy, and their allowed models as an
        allow-list), then the request's local-only mark."""
        scope = base
        if self.key is not None and not self.admin:
            if self.team is not None:
                label = f"team {self.team.name}"
                scope = scope.with_layer(label, self.team.policy)
                scope = scope.with_layer(label, _allow_list(self.team.allowed_models))
            label = f"key {self.key.prefix}"
            scope = scope.with_layer(label, self.key.policy)
            scope = scope.with_layer(label, _allow_list(self.key.allowed_models))
        if local_only:
            scope = scope.with_layer("request", PolicySettings(local_only=True))
        return scope

    def check_strategies(self, strategies: Iterable[str]) -> None:
        allowed = self._allowed_strategies()
        if allowed is None:
            return
        for name in strategies:
            if name not in allowed:
                raise PolicyError(
                    f"{self.label} may not use the strategy {name!r}", param="ponder.strategy"
                )

    def check_effort(self, effort: str | None) -> None:
        ceiling = self._ceiling()
        if effort is None or ceiling is None or effort not in EFFORTS:
            return
        if EFFORTS.index(effort) > EFFORTS.index(ceiling):
            raise PolicyError(
                f"{self.label} may use reasoning_effort up to {ceiling!r}, not {effort!r}",
                param="reasoning_effort",
            )

    def _allowed_strategies(self) -> tuple[str, ...] | None:
        if self.admin or self.key is None:
            return None
        if self.key.allowed_strategies is not None:
            return self.key.allowed_strategies
        return self.team.allowed_strategies if self.team is not None else None

    def _ceiling(self) -> str | None:
        if self.admin or self.key is None:
            return None
        if self.key.max_effort is not None:
            return self.key.max_effort
        return self.team.max_effort if self.team is not None else None


def _allow_list(models: tuple[str, ...] | None) -> PolicySettings | None:
    """A key's or team's allowed models (globs) as an allow-mode policy."""
    if models is None:
        return None
    rules = tuple(PolicyRule(effect="allow", model=glob) for glob in models)
    return PolicySettings(mode="allow", rules=rules)
