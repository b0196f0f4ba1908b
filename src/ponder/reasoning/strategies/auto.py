"""``auto``: answer easy questions in one pass, climb a ladder only where it pays.

1. First pass: one greedy chain of thought, or one greedy program that runs in the sandbox
   (the profile's ``first_pass``), with top-k logprobs. Where the sandbox cannot run, every
   level falls back to a chain-of-thought first pass and a ladder without programs. Its answer is accepted at once if it
   was extracted and its token confidence reaches the profile's threshold.
2. Otherwise climb the profile's ladder: more sampled paths in windows until a Beta test
   says the vote is settled (``vote``), program-aided solutions that join the vote
   (``program``), then a stronger model or provider (``escalate``), routed and policy-checked
   like any request.
3. Stop when the vote is settled, the ladder ends, or the budget cannot pay for the next
   call's worst case. Every call is sized so that the budget is never exceeded: prompt
   tokens plus ``n · max_tokens`` must fit what is left.

The reply reports which rungs ran (``details.rungs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field

from ponder.errors import InvalidRequestError
from ponder.reasoning.base import (
    ModelUse,
    RunContext,
    Services,
    Strategy,
    StrategyParams,
    StrategyResult,
)
from ponder.reasoning.confidence import mean_confidence
from ponder.reasoning.paths import Path, sample_paths
from ponder.reasoning.profile import AutoProfile, EffortProfile, Rung, builtin_profile
from ponder.reasoning.programs import with_answer, write_and_run
from ponder.reasoning.prompts import COT_SYSTEM, PAL_SYSTEM
from ponder.reasoning.stopping import beta_stop_probability
from ponder.reasoning.voting import weighted_vote
from ponder.types import GenerationRequest

MIN_PATH_TOKENS = 64  # a path shorter than this cannot hold a worked answer


class AutoParams(StrategyParams):
    effort: str = "medium"
    budget_tokens: int | None = Field(default=None, ge=1)  # overrides the profile's
    budget_usd: float | None = Field(default=None, gt=0.0)
    # Dollars per million tokens, for a budget in money (from the gateway's price table).
    price_prompt: float = Field(default=0.0, ge=0.0)
    price_completion: float = Field(default=0.0, ge=0.0)


class Budget:
    """What is left to spend, in tokens (a money budget is turned into a token bound)."""

    def __init__(
        self,
        params: AutoParams,
        effort: EffortProfile,
        deployed: tuple[float, float] | None = None,
    ) -> None:
        self.tokens = params.budget_tokens or effort.budget_tokens
        self.usd = params.budget_usd
        self.price_prompt = params.price_prompt
        self.price_completion = params.price_completion
        if self.price_prompt == 0.0 and self.price_completion == 0.0 and deployed is not None:
            # Unset: the dearest deployment the run's models may reach (the gateway's).
            self.price_prompt, self.price_completion = deployed
        if self.usd is not None and self.price_prompt == 0.0 and self.price_completion == 0.0:
            raise InvalidRequestError("a budget in money needs prices", param="ponder.budget_usd")

    def fits(self, spent_prompt: int, spent_completion: int, prompt: int, completion: int) -> bool:
        total_prompt, total_completion = spent_prompt + prompt, spent_completion + completion
        if self.tokens is not None and total_prompt + total_completion > self.tokens:
            return False
        if self.usd is not None:
            cost = (
                total_prompt * self.price_prompt + total_completion * self.price_completion
            ) / 1e6
            if cost > self.usd:
                return False
        return True

    def largest(
        self, spent_prompt: int, spent_completion: int, prompt: int, n: int, max_tokens: int
    ) -> tuple[int, int]:
        """The widest (n, max_tokens) call, at most the asked one, whose worst case fits."""
        floor = min(MIN_PATH_TOKENS, max_tokens)
        for width in range(n, 0, -1):
            tokens = max_tokens
            while tokens >= floor and not self.fits(
                spent_prompt, spent_completion, prompt, width * tokens
            ):
                tokens //= 2
            if tokens >= floor:
                return width, tokens
        return 0, 0


@dataclass(slots=True)
class _Votes:
    """The answers gathered so far, their weights, and a worked text for each answer."""

    answers: list[str | None] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    texts: dict[str | None, Path] = field(default_factory=dict)
    rungs: list[str] = field(default_factory=lambda: ["first"])

    def add(self, path_or_answer: Path | str | None, weight: float = 1.0) -> None:
        if isinstance(path_or_answer, Path):
            self.answers.append(path_or_answer.answer)
            self.texts.setdefault(path_or_answer.answer, path_or_answer)
        else:
            self.answers.append(path_or_answer)
        self.weights.append(weight)

    def settled(self) -> float:
        """P(leader beats runner-up) under Beta(a+1, b+1) on the weighted counts."""
        tally = sorted(weighted_vote(self.answers, self.weights).tally.values(), reverse=True)
        if not tally:
            return 0.0
        return beta_stop_probability(round(tally[0]), round(tally[1]) if len(tally) > 1 else 0)


def without_programs(effort: EffortProfile) -> EffortProfile:
    """The level's ladder for a server whose sandbox cannot run programs: a greedy chain
    of thought first, and no program rungs."""
    return effort.model_copy(
        update={
            "first_pass": "cot",
            "ladder": tuple(rung for rung in effort.ladder if rung.kind != "program"),
        }
    )


class Auto(Strategy):
    name: ClassVar[str] = "auto"
    Params: ClassVar[type[StrategyParams]] = AutoParams
    example: ClassVar[Mapping[str, Any]] = {"effort": "low"}

    def __init__(self, profile: AutoProfile | None = None) -> None:
        self.profile = profile

    def worst_case(self, params: AutoParams, request: GenerationRequest, services: Services) -> int:
        """Every rung of the level's ladder at full width, or its token budget if smaller."""
        profile = self.profile or services.auto_profile or builtin_profile()
        effort = profile.effort(params.effort)
        cap = params.max_tokens or request.sampling.max_tokens
        max_tokens = min(effort.max_tokens, cap) if cap else effort.max_tokens
        prompt = request.prompt_token_bound(PAL_SYSTEM)  # the longer of the two systems
        total = prompt + max_tokens
        for rung in effort.ladder:
            if rung.kind == "vote":
                windows = -(-rung.max_n // rung.window)
                total += windows * prompt + rung.max_n * max_tokens
            elif rung.kind == "program":
                total += prompt + 128 + rung.n * min(max_tokens, 512)
            else:
                total += prompt + max_tokens
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
        if cap is not None:
            effort = effort.model_copy(update={"max_tokens": min(effort.max_tokens, cap)})
        budget = Budget(params, effort, _deployed_price(ctx, request, effort))
        votes = _Votes()
        sandbox = await ctx.services.sandbox.status()
        if not sandbox.available:
            effort = without_programs(effort)
            ctx.trace.note("programs off", why=sandbox.detail)

        # A first pass the budget cannot pay for is refused before anything is spent. The
        # prompt's length in characters bounds its token count from above.
        system = PAL_SYSTEM if effort.first_pass == "program" else COT_SYSTEM
        prompt_bound = sum(len(m.content) for m in request.messages) + len(system) + 64
        width, tokens = budget.largest(0, 0, prompt_bound, 1, effort.max_tokens)
        if width == 0:
            raise InvalidRequestError(
                "the budget cannot pay for a single answer", param="ponder.budget_tokens"
            )
        first, confidence = await self._first_pass(ctx, request, params, effort, tokens)
        prompt_tokens = ctx.trace.usage.prompt_tokens  # the first pass is the only call yet
        votes.add(first, effort.first_weight)
        ctx.trace.note("first", answer=first.answer, confidence=round(confidence, 4))
        ctx.progress(f"first pass: {first.answer} (confidence {confidence:.2f})")
        stop_reason = "ladder ended"
        if first.answer is not None and confidence >= effort.accept_confidence:
            stop_reason = "confident first pass"
        else:
            for rung in effort.ladder:
                done, reason = await self._climb(
                    ctx, request, params, effort, rung, budget, prompt_tokens, votes
                )
                if done:
                    stop_reason = reason
                    break
        vote = weighted_vote(votes.answers, votes.weights)
        chosen = votes.texts.get(vote.winner) or first
        ctx.trace.note("rungs", rungs=votes.rungs, stop=stop_reason, votes=vote.tally)
        ctx.progress(f"auto: {' -> '.join(votes.rungs)}; {stop_reason}; answer {vote.winner}")
        return StrategyResult(
            text=chosen.text,
            answer=vote.winner,
            reasoning=chosen.text,
            usage=ctx.trace.usage,
            trace=ctx.trace,
            details={
                "rungs": votes.rungs,
                "stop": stop_reason,
                "votes": vote.tally,
                "first_pass": effort.first_pass,
                "first_confidence": round(confidence, 4),
                "effort": params.effort,
                **({} if sandbox.available else {"programs": f"off: {sandbox.detail}"}),
            },
            shown_tokens=chosen.completion_tokens,
        )

    async def _first_pass(
        self,
        ctx: RunContext,
        request: GenerationRequest,
        params: AutoParams,
        effort: EffortProfile,
        max_tokens: int,
    ) -> tuple[Path, float]:
        """One greedy answer and its token confidence."""
        if effort.first_pass == "program":
            (run,) = await write_and_run(
                ctx,
                request,
                n=1,
                temperature=0.0,
                max_tokens=max_tokens,
                answer_format=params.answer_format,
                top_logprobs=effort.top_logprobs,
                refuser=self.name,
            )
            text = with_answer(run.text, run.answer)
            path = Path(
                index=0,
                text=text,
                answer=run.answer,
                completion_tokens=run.completion_tokens,
                finish_reason=run.finish_reason,
            )
            return path, run.confidence
        (path,) = await sample_paths(
            ctx,
            request,
            params.model_copy(update={"max_tokens": max_tokens}),
            n=1,
            temperature=0.0,
            top_logprobs=effort.top_logprobs,
            label="first pass",
        )
        return path, mean_confidence(path.logprobs)

    async def _climb(
        self,
        ctx: RunContext,
        request: GenerationRequest,
        params: AutoParams,
        effort: EffortProfile,
        rung: Rung,
        budget: Budget,
        prompt_tokens: int,
        votes: _Votes,
    ) -> tuple[bool, str]:
        """Run one rung; returns (stop, why)."""

        def spent() -> tuple[int, int]:
            usage = ctx.trace.usage
            return usage.prompt_tokens, usage.completion_tokens

        if rung.kind == "vote":
            drawn = 0
            while drawn < rung.max_n:
                want = min(rung.window, rung.max_n - drawn)
                width, tokens = budget.largest(*spent(), prompt_tokens, want, effort.max_tokens)
                if width == 0:
                    return True, "budget spent"
                if "vote" not in votes.rungs:
                    votes.rungs.append("vote")
                window = await sample_paths(
                    ctx,
                    request,
                    params.model_copy(update={"max_tokens": tokens}),
                    n=width,
                    temperature=0.7,
                    offset=1 + drawn,
                    label=f"vote window {drawn // rung.window + 1}",
                )
                drawn += width
                for path in window:
                    votes.add(path)
                if votes.settled() >= effort.stop_probability:
                    return True, "vote settled"
            return False, ""
        if rung.kind == "program":
            # The program prompt is longer than the chain-of-thought one; bound it generously.
            width, tokens = budget.largest(
                *spent(), prompt_tokens + 128, rung.n, min(effort.max_tokens, 512)
            )
            if width == 0:
                return True, "budget spent"
            votes.rungs.append("program")
            # Program-aided decodes greedily at n=1; after a greedy program first pass that
            # would pay for the same program twice, so a rung clipped to one program samples.
            temperature = 0.7 if effort.first_pass == "program" or width > 1 else 0.0
            runs = await write_and_run(
                ctx,
                request,
                n=width,
                temperature=temperature,
                max_tokens=tokens,
                answer_format=params.answer_format,
                refuser=self.name,
            )
            for run in runs:
                votes.add(run.answer, rung.weight)
            return votes.settled() >= effort.stop_probability, "vote settled"
        # escalate: a stronger model answers once; its vote carries the rung's weight.
        if rung.model is None or rung.model not in ctx.backends:
            ctx.trace.note("escalation skipped", model=rung.model)
            return False, ""
        width, tokens = budget.largest(*spent(), prompt_tokens, 1, effort.max_tokens)
        if width == 0:
            return True, "budget spent"
        votes.rungs.append(f"escalate:{rung.model}")
        stronger = RunContext(
            backend=ctx.backends[rung.model], trace=ctx.trace, on_progress=ctx.on_progress
        )
        (path,) = await sample_paths(
            stronger,
            request,
            params.model_copy(update={"max_tokens": tokens}),
            n=1,
            temperature=0.0,
            label=f"escalate to {rung.model}",
        )
        votes.add(path, rung.weight)
        votes.texts[path.answer] = path
        return True, "escalated"


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
