"""A strategy's result: the first path that reached a vote's winner, or one chosen reply."""

from __future__ import annotations

from ponder.reasoning.base import RunContext, StrategyResult
from ponder.reasoning.paths import Path
from ponder.reasoning.voting import Vote
from ponder.types import Choice


def result_from_choice(
    ctx: RunContext, choice: Choice, details: dict[str, object]
) -> StrategyResult:
    """One chosen reply as the answer, shown as written (no answer is extracted)."""
    return StrategyResult(
        text=choice.text,
        answer=None,
        reasoning="",
        usage=ctx.trace.usage,
        trace=ctx.trace,
        details=details,
        shown_tokens=choice.completion_tokens,
    )


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
