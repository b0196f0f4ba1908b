"""A request's spending cap holds on every call: what finished calls spent plus the worst
case of calls in flight never passes the reservation, whatever the strategy does."""

from __future__ import annotations

import pytest

from ponder.backends.scripted import ScriptedBackend
from ponder.errors import BudgetExceededError
from ponder.gateway.guard import GuardedBackend, SpendingCap, worst_case
from ponder.metering import CallLog, recording
from ponder.reasoning.paths import path_request
from ponder.reasoning.runner import StrategySpec, run_strategy
from tests.strategy_helpers import ask, solution


def test_the_worst_case_bounds_what_a_call_can_spend() -> None:
    request = ask(max_tokens=50).replace(n=3)
    bound = worst_case(request, default_max_tokens=999)
    assert bound == request.prompt_token_bound() + 3 * 50
    assert request.prompt_token_bound() >= len(request.messages[0].content.split())


async def test_a_strategy_that_would_overspend_is_stopped_at_the_cap() -> None:
    backend = ScriptedBackend.cycle([solution(a, words=30) for a in (1, 2, 3)])  # never settled
    log = CallLog()
    request = ask(max_tokens=40)
    spec = StrategySpec.parse({"strategy": "adaptive-consistency", "window": 4, "max_n": 16})
    window = path_request(request, spec.params, n=4, temperature=0.7)
    # Room for one window of four paths, not for a second one on top of what it spent.
    cap = SpendingCap(tokens=worst_case(window, 40) + 10, default_max_tokens=40, log=log)
    with recording(log), pytest.raises(BudgetExceededError, match="reservation has"):
        await run_strategy(spec, GuardedBackend(backend, cap), request)
    assert log.usage.total_tokens <= cap.tokens  # what was spent stayed inside the cap
    assert len(backend.calls) == 1  # the second window was refused before it started
    assert cap.in_flight == 0


async def test_streams_hold_their_worst_case_until_they_end() -> None:
    log = CallLog()
    cap = SpendingCap(tokens=10_000, default_max_tokens=64, log=log)
    guarded = GuardedBackend(ScriptedBackend.cycle(["a b c"]), cap)
    with recording(log):
        stream = guarded.stream(ask(max_tokens=64))
        assert cap.in_flight > 0
        async for _ in stream:
            pass
    assert cap.in_flight == 0
    assert log.usage.completion_tokens == 3


@pytest.mark.parametrize(
    ("raw", "replies"),
    [
        ({"strategy": "cot"}, [solution(7)]),
        ({"strategy": "self-consistency", "n": 3}, [solution(7)]),
        ({"strategy": "program-aided", "n": 2}, ["```python\nprint(7)\n```"]),
        ({"strategy": "step-back"}, [solution(7)]),
    ],
)
@pytest.mark.parametrize("system", [None, "Be brief."])
async def test_a_strategy_fits_the_worst_case_it_declares(
    raw: dict[str, object], replies: list[str], system: str | None
) -> None:
    """A reservation of exactly the declared worst case lets the strategy run: each call's
    own worst case, as the cap computes it, is inside the declared bound."""
    from ponder.reasoning.base import Services
    from ponder.types import Message

    request = ask(max_tokens=64)
    if system is not None:
        request = request.replace(messages=(Message("system", system), *request.messages))
    spec = StrategySpec.parse(raw)
    bound = spec.strategy().worst_case(spec.params, request, Services())
    assert bound is not None
    log = CallLog()
    cap = SpendingCap(tokens=bound, default_max_tokens=64, log=log)
    backend = ScriptedBackend.cycle(replies)
    with recording(log):
        await run_strategy(spec, GuardedBackend(backend, cap), request)
    assert log.usage.total_tokens <= bound
