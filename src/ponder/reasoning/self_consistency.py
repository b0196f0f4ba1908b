"""Self-consistency (Wang et al. 2022): sample N reasoning paths, majority-vote the answers."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ponder.reasoning.base import RunContext, StrategyParams, StrategyResult
from ponder.reasoning.paths import Path, question_of, sample_paths
from ponder.reasoning.semantic import usc_select
from ponder.reasoning.voting import Vote, majority_vote
from ponder.types import GenerationRequest


class SelfConsistencyParams(StrategyParams):
    n: int = Field(default=8, ge=1, le=64)
    # How to vote: "answers" compares extracted answers as strings; "usc" asks the model
    # which response agrees most with the others (for free-form answers).
    selector: Literal["answers", "usc"] = "answers"


def result_from_vote(
    ctx: RunContext, paths: list[Path], vote: Vote, **details: object
) -> StrategyResult:
    """The final response is the first path that reached the winning answer."""
    chosen = next((p for p in paths if p.answer == vote.winner), paths[0]) if paths else None
    ctx.trace.note("vote", tally=vote.tally, winner=vote.winner, tied=vote.tied, **details)
    ctx.progress(f"vote: {_tally_line(vote)} -> {vote.winner}")
    return StrategyResult(
        text=chosen.text if chosen else "",
        answer=vote.winner,
        reasoning=chosen.text if chosen else "",
        usage=ctx.trace.usage,
        trace=ctx.trace,
        details={
            "votes": vote.tally,
            "winner_share": round(vote.share, 4),
            "paths": len(paths),
            **details,
        },
        shown_tokens=chosen.completion_tokens if chosen else 0,
    )


def _tally_line(vote: Vote) -> str:
    ranked = sorted(vote.tally.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{answer}×{count:g}" for answer, count in ranked) or "no answers"


class SelfConsistency:
    name: ClassVar[str] = "self-consistency"
    Params: ClassVar[type[StrategyParams]] = SelfConsistencyParams

    async def run(
        self, ctx: RunContext, request: GenerationRequest, params: SelfConsistencyParams
    ) -> StrategyResult:
        paths = await sample_paths(ctx, request, params, n=params.n, temperature=0.7)
        if params.selector == "usc":
            chosen = await usc_select(ctx, question_of(request), [p.text for p in paths])
            ctx.progress(f"universal self-consistency selected path {chosen + 1}")
            pick = paths[chosen]
            return StrategyResult(
                text=pick.text,
                answer=pick.answer,
                reasoning=pick.text,
                usage=ctx.trace.usage,
                trace=ctx.trace,
                details={"selector": "usc", "selected": chosen, "paths": len(paths)},
                shown_tokens=pick.completion_tokens,
            )
        return result_from_vote(ctx, paths, majority_vote([p.answer for p in paths]))
