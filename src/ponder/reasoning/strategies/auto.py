"""``auto``: spend only the compute a request needs, decided by what kind of request it is.

The kind is read from the request's text before any token is spent
(:mod:`ponder.reasoning.kinds`), and each kind is answered its own way:

- **ambiguous** (it leaves out a place, a unit, a quantity, or what "it" means): one short
  clarifying question comes back as the answer, with ``details.clarify = true`` and what
  was missing in ``details.readings``. ``"clarify": false`` turns asking off; the request
  is then answered as its other kind and the cues are kept in ``details.ambiguity``;
- **chat and free-form**: one direct greedy answer (:mod:`ponder.reasoning.freeform`);
- **code**: a greedy program checked against the request's own tests, more sampled and
  selected by tests passed where it fails (:mod:`ponder.reasoning.testdriven`);
- **checkable** (a number, a choice, yes or no): the calibrated ladder of
  :mod:`ponder.reasoning.ladder`: a confident first pass, else votes, programs, a stronger model.

Each kind's knobs per effort level come from the profile that ``ponder calibrate`` fits;
``kind`` overrides the decision. Every call is sized to fit the budget.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from pydantic import Field

from ponder.reasoning import asking, freeform, testdriven
from ponder.reasoning.asking import ask_back
from ponder.reasoning.base import (
    ModelUse,
    RunContext,
    Services,
    Strategy,
    StrategyParams,
    StrategyResult,
)
from ponder.reasoning.freeform import answer_directly
from ponder.reasoning.kinds import KindDecision, classify_request
from ponder.reasoning.ladder import Budget, solve_checkable, without_programs
from ponder.reasoning.profile import AutoProfile, EffortProfile, builtin_profile
from ponder.reasoning.prompts import PAL_SYSTEM
from ponder.reasoning.testdriven import solve_code
from ponder.types import GenerationRequest


class AutoParams(StrategyParams):
    effort: str = "medium"
    budget_tokens: int | None = Field(default=None, ge=1)  # overrides the profile's
    budget_usd: float | None = Field(default=None, gt=0.0)
    # Dollars per million tokens, for a budget in money (from the gateway's price table).
    price_prompt: float = Field(default=0.0, ge=0.0)
    price_completion: float = Field(default=0.0, ge=0.0)
    # Ask back when the request leaves out what only the user knows; false: best guess.
    clarify: bool = True
    # What kind of request this is; "auto" decides from its text.
    kind: Literal["auto", "chat", "checkable", "code"] = "auto"


Solver = Callable[
    [RunContext, GenerationRequest, AutoParams, AutoProfile, Budget, int | None],
    Awaitable[StrategyResult],
]


async def _checkable(
    ctx: RunContext,
    request: GenerationRequest,
    params: AutoParams,
    profile: AutoProfile,
    budget: Budget,
    cap: int | None,
) -> StrategyResult:
    effort = profile.effort(params.effort)
    if cap is not None:
        effort = effort.model_copy(update={"max_tokens": min(effort.max_tokens, cap)})
    sandbox = await ctx.services.sandbox.status()
    if not sandbox.available:
        effort = without_programs(effort)
        ctx.trace.note("programs off", why=sandbox.detail)
    result = await solve_checkable(ctx, request, params, effort, budget)
    if not sandbox.available:
        result.details["programs"] = f"off: {sandbox.detail}"
    return result


async def _chat(
    ctx: RunContext,
    request: GenerationRequest,
    params: AutoParams,
    profile: AutoProfile,
    budget: Budget,
    cap: int | None,
) -> StrategyResult:
    effort = profile.chat_effort(params.effort)
    return await answer_directly(ctx, request, effort, budget, cap or effort.max_tokens)


async def _code(
    ctx: RunContext,
    request: GenerationRequest,
    params: AutoParams,
    profile: AutoProfile,
    budget: Budget,
    cap: int | None,
) -> StrategyResult:
    effort = profile.code_effort(params.effort)
    return await solve_code(ctx, request, effort, budget, cap or effort.max_tokens)


SOLVERS: Mapping[str, Solver] = MappingProxyType(
    {"checkable": _checkable, "chat": _chat, "code": _code}
)


def decide(request: GenerationRequest, params: AutoParams) -> tuple[KindDecision, str]:
    """The request's kind as read from its text, and the kind that answers it ("ask" when it
    is ambiguous and asking is on)."""
    if params.kind != "auto":
        return KindDecision(params.kind, ("named by the request",)), params.kind
    decision = classify_request(request.messages, params.answer_format)
    if decision.kind != "ambiguous":
        return decision, decision.kind
    if params.clarify:
        return decision, "ask"
    return decision, classify_request(
        request.messages, params.answer_format, detect_ambiguity=False
    ).kind


class Auto(Strategy):
    name: ClassVar[str] = "auto"
    Params: ClassVar[type[StrategyParams]] = AutoParams
    example: ClassVar[Mapping[str, Any]] = {"effort": "low"}

    def __init__(self, profile: AutoProfile | None = None) -> None:
        self.profile = profile

    def worst_case(self, params: AutoParams, request: GenerationRequest, services: Services) -> int:
        """The decided kind's calls at full width, or the token budget if smaller."""
        profile = self.profile or services.auto_profile or builtin_profile()
        effort = profile.effort(params.effort)
        cap = params.max_tokens or request.sampling.max_tokens
        decision, answered_as = decide(request, params)
        if answered_as == "ask":
            total = asking.worst_case(request, decision.missing, cap)
        elif answered_as == "chat":
            chat = profile.chat_effort(params.effort)
            total = freeform.worst_case(request, chat, cap or chat.max_tokens)
        elif answered_as == "code":
            code = profile.code_effort(params.effort)
            total = testdriven.worst_case(request, code, cap or code.max_tokens)
        else:
            # The longest system prompt the ladder adds is the program one.
            total = _ladder_worst_case(effort, request.prompt_token_bound(PAL_SYSTEM), cap)
        budget = params.budget_tokens or effort.budget_tokens
        return min(total, budget) if budget else total

    def models(self, params: AutoParams, services: Services) -> tuple[ModelUse, ...]:
        """The stronger models the level's ladder may escalate to; one that policy denies
        or nobody serves is left out, and that rung is skipped."""
        profile = self.profile or services.auto_profile or builtin_profile()
        effort = profile.effort(params.effort)  # an unknown level: 400 before any work
        names = [r.model for r in effort.ladder if r.model is not None]
        return tuple(ModelUse(name, "escalation", required=False) for name in dict.fromkeys(names))

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: AutoParams
    ) -> StrategyResult:
        profile = self.profile or ctx.services.auto_profile or builtin_profile()
        effort = profile.effort(params.effort)
        # The caller's cap on a call (the parameter, else the request's) bounds every call.
        cap = params.max_tokens or request.sampling.max_tokens
        budget = Budget(
            params.budget_tokens or effort.budget_tokens,
            params.budget_usd,
            (params.price_prompt, params.price_completion),
            _deployed_price(ctx, request, effort),
        )
        decision, answered_as = decide(request, params)
        ctx.trace.note(
            "kind", request_kind=decision.kind, cues=list(decision.cues), answered_as=answered_as
        )
        # No progress line yet: a stream's first byte must wait until the solver has checked
        # that the budget pays for its first call (a refusal is then a 4xx, not a stream).
        if answered_as == "ask":
            result = await ask_back(ctx, request, decision.missing, budget, cap)
        else:
            result = await SOLVERS[answered_as](ctx, request, params, profile, budget, cap)
            if decision.kind == "ambiguous":
                result.details.update(
                    clarify=False,
                    ambiguity={
                        "cues": list(decision.cues),
                        "readings": [c.missing for c in decision.missing],
                    },
                )
        result.details.update(
            kind=decision.kind,
            answered_as=answered_as,
            cues=list(decision.cues),
            effort=params.effort,
        )
        return result


def _ladder_worst_case(effort: EffortProfile, prompt: int, cap: int | None) -> int:
    """Every rung of the level's ladder at full width."""
    max_tokens = min(effort.max_tokens, cap) if cap else effort.max_tokens
    total = prompt + max_tokens
    for rung in effort.ladder:
        if rung.kind == "vote":
            windows = -(-rung.max_n // rung.window)
            total += windows * prompt + rung.max_n * max_tokens
        elif rung.kind == "program":
            total += prompt + 128 + rung.n * min(max_tokens, 512)
        else:
            total += prompt + max_tokens
    return total


def _deployed_price(
    ctx: RunContext, request: GenerationRequest, effort: EffortProfile
) -> tuple[float, float] | None:
    """The highest prompt and completion prices among the models this run may call, from
    their deployments; None if the gateway gave no prices or one model has none."""
    price_of = ctx.services.price_of
    if price_of is None or request.model is None:
        return None
    names = [request.model, *(r.model for r in effort.ladder if r.model in ctx.backends)]
    prices = [price_of(name) for name in names if name is not None]
    if not prices or any(p is None for p in prices):
        return None
    known = [p for p in prices if p is not None]
    return max(p[0] for p in known), max(p[1] for p in known)
