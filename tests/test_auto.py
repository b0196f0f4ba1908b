"""The adaptive controller's decisions, pinned over a scripted backend."""

from __future__ import annotations

import pytest

from ponder.backends.scripted import Reply, ScriptedBackend
from ponder.errors import InvalidRequestError
from ponder.reasoning.base import RunContext
from ponder.reasoning.profile import AutoProfile, EffortProfile, Rung, builtin_profile
from ponder.reasoning.prompts import PAL_SYSTEM
from ponder.reasoning.strategies.auto import Auto, AutoParams
from ponder.reasoning.trace import Trace, TracingBackend
from ponder.types import GenerationRequest
from tests.strategy_helpers import ask, solution

PROFILE = AutoProfile(
    efforts={
        "test": EffortProfile(
            accept_confidence=2.0,
            ladder=(
                Rung(kind="vote", window=2, max_n=6),
                Rung(kind="escalate", model="big", weight=3.0),
            ),
            max_tokens=256,
            top_logprobs=2,
        )
    }
)


def confident(answer: object) -> Reply:
    return Reply(solution(answer), [-0.001] * 20)  # alternatives near-impossible: confidence ~7


def unsure(answer: object) -> Reply:
    return Reply(solution(answer), [-0.7] * 20)  # confidence below 1


async def run_auto(
    backend: ScriptedBackend, backends: dict[str, ScriptedBackend] | None = None, **params: object
):  # type: ignore[no-untyped-def]
    trace = Trace("auto")
    ctx = RunContext(
        backend=TracingBackend(backend, trace),
        trace=trace,
        backends={k: TracingBackend(v, trace) for k, v in (backends or {}).items()},
    )
    return await Auto(PROFILE).run(ctx, ask(), AutoParams(effort="test", **params))  # type: ignore[arg-type]


async def test_confident_first_pass_stops_at_once() -> None:
    backend = ScriptedBackend.cycle([confident(7)])
    result = await run_auto(backend)
    assert result.answer == "7"
    assert result.details["rungs"] == ["first"]
    assert result.details["stop"] == "confident first pass"
    assert len(backend.calls) == 1
    assert (
        backend.calls[0].sampling.temperature == 0.0 and backend.calls[0].sampling.top_logprobs == 2
    )


async def test_unsure_first_pass_escalates_and_stops_on_agreement() -> None:
    backend = ScriptedBackend.cycle([unsure(7)])
    result = await run_auto(backend)
    # First pass + one window of 2 agreeing paths: Beta(4, 1) gives P = 15/16 < 0.95, so a
    # second window is drawn; 5 agreeing votes give 63/64 and the vote is settled.
    assert result.details["rungs"] == ["first", "vote"]
    assert result.details["stop"] == "vote settled"
    assert [c.n for c in backend.calls] == [1, 2, 2]
    assert result.answer == "7"


async def test_disagreement_climbs_to_the_stronger_model() -> None:
    small = ScriptedBackend.cycle([unsure(1), unsure(2), unsure(3)])
    big = ScriptedBackend.cycle([confident(2)])
    result = await run_auto(small, {"big": big})
    assert result.details["rungs"] == ["first", "vote", "escalate:big"]
    assert result.details["stop"] == "escalated"
    assert len(big.calls) == 1
    assert result.answer == "2"  # the stronger model's weighted vote breaks the tie
    assert result.usage.calls == 1 + 3 + 1


@pytest.mark.parametrize("budget", [400, 500, 700, 1000, 1500, 3000])
async def test_token_budget_is_never_exceeded(budget: int) -> None:
    small = ScriptedBackend.cycle([unsure(1), unsure(2)])
    big = ScriptedBackend.cycle([confident(2)])
    result = await run_auto(small, {"big": big}, budget_tokens=budget)
    assert result.usage.total_tokens <= budget
    # Every call was sized so that its worst case fit what was left.
    assert all(
        c.sampling.max_tokens is not None and c.sampling.max_tokens >= 64 for c in small.calls
    )
    assert result.details["stop"] in {"budget spent", "escalated"}


async def test_a_tight_budget_stops_the_climb() -> None:
    long_unsure = [Reply(solution(a, words=55), [-0.7] * 70) for a in (1, 2)]
    small = ScriptedBackend.cycle(long_unsure)
    big = ScriptedBackend.cycle([confident(2)])
    result = await run_auto(small, {"big": big}, budget_tokens=400)
    assert result.usage.total_tokens <= 400
    assert result.details["stop"] == "budget spent"
    assert "escalate:big" not in result.details["rungs"]
    assert big.calls == []


async def test_money_budget_needs_prices_and_is_respected() -> None:
    backend = ScriptedBackend.cycle([unsure(1), unsure(2)])
    with pytest.raises(InvalidRequestError, match="prices"):
        await run_auto(backend, budget_usd=0.01)
    result = await run_auto(backend, budget_usd=0.001, price_prompt=1.0, price_completion=1.0)
    assert result.usage.total_tokens <= 335


async def test_a_budget_too_small_for_one_answer_is_refused() -> None:
    backend = ScriptedBackend.cycle([confident(1)])
    with pytest.raises(InvalidRequestError, match="single answer"):
        await run_auto(backend, budget_tokens=50)
    assert backend.calls == []


PROGRAM_FIRST = AutoProfile(
    efforts={
        "test": EffortProfile(
            first_pass="program",
            accept_confidence=2.0,
            ladder=(Rung(kind="vote", window=2, max_n=4),),
            max_tokens=256,
            top_logprobs=2,
        )
    }
)


def program_then_paths(program: str, program_logprob: float) -> ScriptedBackend:
    """Programs for the program prompt; unsure chain-of-thought paths answering 9 otherwise."""

    def reply(request: GenerationRequest, index: int) -> Reply:
        if request.messages[0].content == PAL_SYSTEM:
            return Reply(f"```python\n{program}\n```", [program_logprob] * 12)
        return unsure(9)

    return ScriptedBackend(reply)


async def run_program_first(backend: ScriptedBackend):  # type: ignore[no-untyped-def]
    trace = Trace("auto")
    ctx = RunContext(backend=TracingBackend(backend, trace), trace=trace)
    return await Auto(PROGRAM_FIRST).run(ctx, ask(), AutoParams(effort="test"))


async def test_a_confident_program_first_pass_is_run_and_accepted() -> None:
    backend = program_then_paths("print(3 + 4)", -0.001)
    result = await run_program_first(backend)
    assert result.answer == "7"  # what the program printed when it ran in the sandbox
    assert result.details["first_pass"] == "program"
    assert result.details["stop"] == "confident first pass"
    (call,) = backend.calls
    assert call.messages[0].content == PAL_SYSTEM
    assert call.n == 1 and call.sampling.temperature == 0.0 and call.sampling.top_logprobs == 2


async def test_a_program_that_fails_climbs_even_when_confident() -> None:
    backend = program_then_paths("raise SystemExit(1)", -0.001)
    result = await run_program_first(backend)
    assert result.details["rungs"] == ["first", "vote"]
    assert result.answer == "9"  # the failed program cast no vote; the paths decided
    assert [c.n for c in backend.calls] == [1, 2, 2]


async def test_an_unsure_program_joins_the_vote_it_escalates_to() -> None:
    backend = program_then_paths("print(9)", -0.7)
    result = await run_program_first(backend)
    # The program's 9 and a window of two agreeing paths: Beta(4, 1) gives 15/16 < 0.95, so a
    # second window is drawn and five agreeing votes settle it.
    assert result.details["rungs"] == ["first", "vote"]
    assert result.details["votes"] == {"9": 5.0}
    assert result.answer == "9"


@pytest.mark.parametrize(("first_weight", "winner"), [(1.0, "9"), (3.0, "7")])
async def test_the_first_pass_votes_with_its_profile_weight(
    first_weight: float, winner: str
) -> None:
    profile = AutoProfile(
        efforts={
            "test": EffortProfile(
                first_pass="program",
                first_weight=first_weight,
                accept_confidence=2.0,
                ladder=(Rung(kind="vote", window=2, max_n=2),),
                max_tokens=256,
            )
        }
    )
    backend = program_then_paths("print(7)", -0.7)  # unsure program: 7; both paths: 9
    trace = Trace("auto")
    ctx = RunContext(backend=TracingBackend(backend, trace), trace=trace)
    result = await Auto(profile).run(ctx, ask(), AutoParams(effort="test"))
    assert result.details["votes"] == {"7": first_weight, "9": 2.0}
    assert result.answer == winner


async def test_a_one_program_rung_samples_instead_of_repeating_the_first_program() -> None:
    # A rung of one program, as a tight budget clips a wider one to: program-aided would
    # decode it greedily and pay for the first program again.
    profile = AutoProfile(
        efforts={
            "test": EffortProfile(
                first_pass="program",
                accept_confidence=2.0,
                ladder=(Rung(kind="program", n=1),),
                max_tokens=256,
                top_logprobs=2,
            )
        }
    )
    backend = program_then_paths("print(9)", -0.7)
    trace = Trace("auto")
    ctx = RunContext(backend=TracingBackend(backend, trace), trace=trace)
    result = await Auto(profile).run(ctx, ask(), AutoParams(effort="test"))
    assert result.details["rungs"] == ["first", "program"]
    first, rung = backend.calls
    assert first.n == 1 and first.sampling.temperature == 0.0
    assert rung.n == 1 and rung.sampling.temperature == 0.7


def test_shipped_profile_loads_with_every_effort() -> None:
    profile = builtin_profile()
    assert set(profile.efforts) >= {"minimal", "low", "medium", "high"}
    assert profile.effort("minimal").ladder == ()


async def test_unknown_effort() -> None:
    # The request named a level the profile lacks: its mistake, a 400.
    with pytest.raises(InvalidRequestError, match="no effort level"):
        await Auto(PROFILE).run(
            RunContext(
                backend=TracingBackend(ScriptedBackend.cycle(["x"]), Trace("a")), trace=Trace("a")
            ),
            GenerationRequest(messages=()),
            AutoParams(effort="nope"),
        )
