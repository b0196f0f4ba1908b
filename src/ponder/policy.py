"""Which models and providers a request may reach.

Every backend lookup goes through a :class:`Policy`, including the ones a strategy makes on
its own (``auto`` escalating to a stronger model, ``mixture-of-agents`` proposers), so an
escalation can never reach a vendor that a plain request could not. The gateway will bring
richer rules (per key, per tenant, spend caps); they plug in here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal, Protocol

from ponder.errors import PolicyError

Purpose = Literal["request", "escalation", "proposer"]


class Policy(Protocol):
    def check(self, model: str, *, purpose: Purpose = "request") -> None:
        """Raise :class:`PolicyError` if ``model`` may not be used for ``purpose``."""


@dataclass(frozen=True, slots=True)
class DenyList:
    """Refuse models whose canonical name matches any glob, e.g. ``openai/*`` or ``*gpt-4*``."""

    patterns: Sequence[str] = ()

    def check(self, model: str, *, purpose: Purpose = "request") -> None:
        for pattern in self.patterns:
            if fnmatchcase(model, pattern):
                raise PolicyError(
                    f"model {model!r} is excluded by policy (matches {pattern!r}); "
                    f"refused for this {purpose}",
                    param="model",
                )
