"""The strategy registry: names to strategy classes, and parameter validation."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from ponder.errors import InvalidRequestError
from ponder.reasoning.adaptive_consistency import AdaptiveConsistency
from ponder.reasoning.auto import Auto
from ponder.reasoning.base import Strategy, StrategyParams
from ponder.reasoning.beam_search import BeamSearch
from ponder.reasoning.best_of_n import BestOfN
from ponder.reasoning.clarify import Clarify
from ponder.reasoning.confidence_vote import ConfidenceVote
from ponder.reasoning.cot import ChainOfThought
from ponder.reasoning.mixture_of_agents import MixtureOfAgents
from ponder.reasoning.plan_solve import PlanSolve
from ponder.reasoning.program_aided import ProgramAided
from ponder.reasoning.self_consistency import SelfConsistency
from ponder.reasoning.thinking_budget import ThinkingBudget
from ponder.reasoning.verify_refine import VerifyRefine

STRATEGIES: Mapping[str, type[Strategy]] = MappingProxyType(
    {
        cls.name: cls
        for cls in (
            ChainOfThought,
            SelfConsistency,
            AdaptiveConsistency,
            ConfidenceVote,
            BestOfN,
            VerifyRefine,
            PlanSolve,
            ProgramAided,
            BeamSearch,
            MixtureOfAgents,
            ThinkingBudget,
            Clarify,
            Auto,
        )
    }
)


def strategy_class(name: str) -> type[Strategy]:
    try:
        return STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise InvalidRequestError(
            f"unknown strategy {name!r}; known: {known}", param="ponder.strategy"
        ) from None


def parse_params(name: str, raw: Mapping[str, Any]) -> StrategyParams:
    """Validate a strategy's parameters; bad ones are a 400 that names the field."""
    cls = strategy_class(name)
    try:
        return cls.Params.model_validate(dict(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidRequestError(
            f"{name}: {where + ': ' if where else ''}{first.get('msg', 'invalid parameter')}",
            param=f"ponder.{where}" if where else "ponder",
        ) from exc
