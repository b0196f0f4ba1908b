"""Which tools a request may be offered: the ``allow_tools`` globs of its policies.

Each policy a request is under (the operator's ``[policy]``, its team's, its key's: the
layers of its routing :class:`~ponder.routing.policy.Scope`) may carry ``allow_tools``, a
list of globs on the names the model sees (``python``, ``github__search``). A tool is
offered only if every policy that has such a list matches it, so a key can narrow its
team's tools but never widen them; a policy without one (None) limits nothing, and an empty
list allows no tool at all. A tool that is not allowed is not offered to the model, so it
cannot be called by name either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from typing import TypeVar

from ponder.config.routing import PolicySettings
from ponder.tools.base import Tool

T = TypeVar("T", bound=Tool)


def tool_allowed(name: str, policies: Iterable[PolicySettings]) -> bool:
    """Whether every policy with an ``allow_tools`` list has a glob matching ``name``
    (case-insensitively, as model names are matched)."""
    folded = name.casefold()
    return all(
        policy.allow_tools is None
        or any(fnmatchcase(folded, glob.casefold()) for glob in policy.allow_tools)
        for policy in policies
    )


def allowed_tools(tools: Iterable[T], policies: Iterable[PolicySettings]) -> list[T]:
    """The tools of ``tools`` that every policy allows, in their order."""
    layers: Sequence[PolicySettings] = tuple(policies)  # read once per tool below
    return [tool for tool in tools if tool_allowed(tool.name, layers)]
