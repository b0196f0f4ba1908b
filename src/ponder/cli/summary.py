"""The line ``ponder ask`` ends with: tokens and what they went on, time, and the decision.

The decision is put in words from what the strategy returned in structured form (its
``details``, and the shape of its trace), never from its free-text progress lines. A
strategy that puts a ``decision`` string in its details is quoted as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ponder.reasoning.base import StrategyResult
from ponder.reasoning.profile import AutoProfile, EffortProfile
from ponder.reasoning.runner import StrategySpec
from ponder.types import Usage

CONFIDENCE_SCALE = (
    "confidence is DeepConf's token confidence: the mean negative log-probability of the "
    "top-k candidate tokens, from 0 up (about 0.7 for a coin toss between two tokens, "
    "7-10 for a model that is sure); higher is surer"
)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def usage_words(usage: Usage) -> str:
    answer = max(usage.completion_tokens - usage.reasoning_tokens, 0)
    return (
        f"tokens: {usage.prompt_tokens} prompt + {usage.completion_tokens} completion "
        f"({usage.reasoning_tokens} reasoning, {answer} answer) = {usage.total_tokens} "
        f"in {plural(usage.calls, 'call')}"
    )


def summary_line(
    result: StrategyResult, spec: StrategySpec, model: str, seconds: float, decision: str | None
) -> str:
    parts = [usage_words(result.hidden_usage), f"{seconds:.1f}s", f"{spec.describe()} on {model}"]
    if decision:
        parts.append(decision)
    return " · ".join(parts)


def decision(spec: StrategySpec, result: StrategyResult, profile: AutoProfile | None) -> str | None:
    """What the strategy decided, in words; None where it says nothing structured."""
    details = result.details
    given = details.get("decision")
    if isinstance(given, str):
        return given
    paths = sum(call.n for call in result.trace.calls)
    if spec.name == "auto" and profile is not None:
        effort_name = details.get("effort")
        effort = profile.efforts.get(effort_name) if isinstance(effort_name, str) else None
        if effort is not None:
            return _auto(details, effort, paths)
    words = _WORDS.get(spec.name)
    if words is not None:
        return words(details, spec.params.model_dump())
    if "votes" in details:
        return _vote(details, {})
    return None


def _auto(details: Mapping[str, Any], effort: EffortProfile, paths: int) -> str:
    stop = details.get("stop")
    rungs = [str(r) for r in details.get("rungs", [])]
    most = 1 + sum(
        r.max_n if r.kind == "vote" else r.n if r.kind == "program" else 1 for r in effort.ladder
    )
    climbed = " -> ".join(rungs)
    if stop == "confident first pass":
        confidence = details.get("first_confidence", 0.0)
        return (
            f"answered from the first pass: its confidence {confidence:.2f} reached "
            f"{effort.accept_confidence:g} (higher is surer)"
        )
    if stop == "vote settled":
        return f"stopped after {paths} of {most} paths ({climbed}): the vote was settled"
    if stop == "budget spent":
        return f"stopped after {paths} of {most} paths ({climbed}): the budget was spent"
    if stop == "escalated":
        return f"escalated to {rungs[-1].removeprefix('escalate:')} after {climbed}"
    if len(rungs) <= 1:
        confidence = details.get("first_confidence", 0.0)
        return (
            f"took the first pass (confidence {confidence:.2f}): this effort has no ladder to climb"
        )
    return f"climbed the whole ladder ({climbed}, {plural(paths, 'path')}) and took the vote"


def _vote(details: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    if "selected" in details:  # universal self-consistency: the model picked one
        return (
            f"the model chose path {int(details['selected']) + 1} of {details.get('paths')} "
            "as the one the others agree with most"
        )
    votes: Mapping[Any, float] = details.get("votes", {})
    paths = int(details.get("paths", sum(votes.values())))
    share = float(details.get("winner_share", 0.0))
    winner = max(votes, key=lambda answer: votes[answer]) if votes else None
    of = f" of {params['max_n']}" if "max_n" in params else ""
    if details.get("stopped_early"):
        return f"stopped after {paths}{of} paths: the vote was settled ({share:.0%} for {winner})"
    return f"{share:.0%} of {plural(paths, 'path')} agreed on {winner}"


def _confidence_vote(details: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    kept, n = details.get("kept", 0), params.get("n", "?")
    cut = details.get("cancelled")
    cancelled = f", {cut} cut off while writing" if cut else ""
    return f"kept {kept} of {n} paths above the confidence threshold{cancelled}; " + _vote(
        details, {}
    )


def _chain(details: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    if details.get("finish_reason") == "length":
        return "one chain of thought, cut off at --max-tokens"
    return "one chain of thought"


_WORDS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], str]] = {
    "cot": _chain,
    "step-back": _chain,
    "self-consistency": _vote,
    "adaptive-consistency": _vote,
    "confidence-vote": _confidence_vote,
    "program-aided": lambda d, p: (
        f"{d.get('executed', 0)} of {plural(int(d.get('programs', 0)), 'program')} ran; "
        + _vote({**d, "paths": d.get("executed", 0)}, {})
    ),
    "best-of-n": lambda d, p: (
        f"the {d.get('verifier')} verifier chose path {int(d.get('chosen', 0)) + 1} "
        f"of {len(d.get('scores', []))}"
    ),
    "beam-search": lambda d, p: f"{plural(int(d.get('finished', 0)), 'beam')} finished",
    "cascade": lambda d, p: f"answered by {d.get('answered_by')} at rung {d.get('rungs')}",
    "verify-refine": lambda d, p: (
        f"{plural(int(d.get('revisions_accepted', 0)), 'revision')} accepted, "
        f"{d.get('revisions_refused', 0)} refused"
    ),
    "thinking-budget": lambda d, p: (
        f"thought for {d.get('thinking_tokens')} tokens "
        f"({plural(int(d.get('extensions', 0)), 'extension')})"
    ),
    "mixture-of-agents": lambda d, p: (
        f"{plural(int(d.get('proposals', 0)), 'proposal')} over "
        f"{plural(int(d.get('layers', 0)), 'layer')}"
    ),
    "plan-solve": lambda d, p: f"followed a plan of {plural(len(d.get('steps', [])), 'step')}",
    "clarify": lambda d, p: (
        "the answers split, so it asked for clarification" if d.get("clarify") else _vote(d, {})
    ),
}
