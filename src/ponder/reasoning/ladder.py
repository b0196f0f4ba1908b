"""The ladder for questions with a checkable answer: a greedy first pass, accepted when its
token confidence reaches the profile's threshold, else more sampled paths in windows until a
Beta test says the vote is settled (``vote``), program-aided solutions that join the vote
(``program``), then a stronger model or provider (``escalate``).

Every call is sized so that the budget is never exceeded: prompt tokens plus
``n · max_tokens`` must fit what is left (:class:`Budget`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ponder.errors import InvalidRequestError
from ponder.reasoning.base import RunContext, StrategyParams, StrategyResult
from ponder.reasoning.confidence import mean_confidence
from ponder.reasoning.paths import Path, sample_paths
from ponder.reasoning.profile import EffortProfile, Rung
from ponder.reasoning.programs import with_answer, write_and_run
from ponder.reasoning.prompts import COT_SYSTEM, PAL_SYSTEM
from ponder.reasoning.stopping import beta_stop_probability
from ponder.reasoning.voting import weighted_vote
from ponder.types import GenerationRequest, Usage

MIN_PATH_TOKENS = 64  # a path shorter than this cannot hold a worked answer


class Budget:
    """What is left to spend, in tokens (a money budget is turned into a token bound)."""

    def __init__(
        self,
        tokens: int | None,
        usd: float | None = None,
        prices: tuple[float, float] = (0.0, 0.0),
        deployed: tuple[float, float] | None = None,
    ) -> None:
        self.tokens = tokens
        self.usd = usd
        self.price_prompt, self.price_completion = prices
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

    def first_call(
        self, spent: Usage, prompt: int, max_tokens: int, what: str = "a single answer"
    ) -> int:
        """The ``max_tokens`` a solver's first call may have, at most the asked one; a budget
        that cannot pay for it is the request's mistake, refused before anything is spent."""
        width, tokens = self.largest(
            spent.prompt_tokens, spent.completion_tokens, prompt, 1, max_tokens
        )
        if width == 0:
            raise InvalidRequestError(
                f"the budget cannot pay for {what}", param="ponder.budget_tokens"
            )
        return tokens

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
class Votes:
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


async def solve_checkable(
    ctx: RunContext,
    request: GenerationRequest,
    params: StrategyParams,
    effort: EffortProfile,
    budget: Budget,
) -> StrategyResult:
    """The first pass, then the ladder, within ``budget``; ``details.rungs`` says what ran."""
    votes = Votes()
    # A first pass the budget cannot pay for is refused before anything is spent. The
    # prompt's length in characters bounds its token count from above.
    system = PAL_SYSTEM if effort.first_pass == "program" else COT_SYSTEM
    prompt_bound = sum(len(m.content) for m in request.messages) + len(system) + 64
    tokens = budget.first_call(Usage(), prompt_bound, effort.max_tokens)
    spent_before = ctx.trace.usage.prompt_tokens
    first, confidence = await first_pass(ctx, request, params, effort, tokens)
    prompt_tokens = ctx.trace.usage.prompt_tokens - spent_before
    votes.add(first, effort.first_weight)
    ctx.trace.note("first", answer=first.answer, confidence=round(confidence, 4))
    ctx.progress(f"first pass: {first.answer} (confidence {confidence:.2f})")
    stop_reason = "ladder ended"
    if first.answer is not None and confidence >= effort.accept_confidence:
        stop_reason = "confident first pass"
    else:
        for rung in effort.ladder:
            done, reason = await climb(
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
        },
        shown_tokens=chosen.completion_tokens,
    )


async def first_pass(
    ctx: RunContext,
    request: GenerationRequest,
    params: StrategyParams,
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
            refuser="auto",
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


async def climb(
    ctx: RunContext,
    request: GenerationRequest,
    params: StrategyParams,
    effort: EffortProfile,
    rung: Rung,
    budget: Budget,
    prompt_tokens: int,
    votes: Votes,
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
            refuser="auto",
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
