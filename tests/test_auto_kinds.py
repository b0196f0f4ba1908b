"""``auto`` by kind of request, pinned over a scripted model: chat answered in one pass, code
selected by the request's own tests (run in the real sandbox), an ambiguous request asked
about, and asking switched off."""

from __future__ import annotations

from typing import Any

import pytest

from ponder.backends.scripted import Reply, ScriptedBackend
from ponder.reasoning.base import RunContext, Services, StrategyResult
from ponder.reasoning.profile import (
    AutoProfile,
    ChatEffort,
    CodeEffort,
    EffortProfile,
    Rung,
)
from ponder.reasoning.strategies.auto import Auto, AutoParams
from ponder.reasoning.trace import Trace, TracingBackend
from ponder.types import GenerationRequest, Message, SamplingParams

PROFILE = AutoProfile(
    efforts={
        "low": EffortProfile(accept_confidence=2.0, ladder=(Rung(kind="vote", window=2, max_n=2),)),
        "medium": EffortProfile(
            accept_confidence=2.0, ladder=(Rung(kind="vote", window=2, max_n=2),)
        ),
    },
    chat={"low": ChatEffort(), "medium": ChatEffort(accept_confidence=3.0, samples=2)},
    code={"low": CodeEffort(), "medium": CodeEffort(samples=3)},
)
CODE_REQUEST = '''Complete this Python function.

```python
def add(a, b):
    """Add two numbers.
    >>> add(2, 3)
    5
    >>> add(-1, 1)
    0
    """
```'''
RIGHT = "```python\ndef add(a, b):\n    return a + b\n```"
WRONG = "```python\ndef add(a, b):\n    return abs(a) + b\n```"  # passes add(2, 3) only


def request(text: str, **sampling: Any) -> GenerationRequest:
    return GenerationRequest(messages=(Message("user", text),), sampling=SamplingParams(**sampling))


async def run_auto(backend: ScriptedBackend, text: str, **params: Any) -> StrategyResult:
    trace = Trace("auto")
    ctx = RunContext(backend=TracingBackend(backend, trace), trace=trace, services=Services())
    return await Auto(PROFILE).run(ctx, request(text), AutoParams(**params))


def worst_case(text: str, **params: Any) -> int:
    return Auto(PROFILE).worst_case(AutoParams(**params), request(text), Services())


async def test_a_chat_request_is_one_greedy_pass_with_the_request_as_written() -> None:
    backend = ScriptedBackend.cycle(["Canberra."])
    result = await run_auto(backend, "What is the capital of Australia?", effort="low")
    assert result.text == "Canberra."
    assert result.details["kind"] == "chat" and result.details["rungs"] == ["first"]
    (call,) = backend.calls
    assert call.n == 1 and call.sampling.temperature == 0.0
    assert [m.content for m in call.messages] == ["What is the capital of Australia?"]
    assert result.usage.calls == 1
    assert result.usage.total_tokens <= worst_case(
        "What is the capital of Australia?", effort="low"
    )


async def test_a_confident_chat_answer_stops_even_where_the_level_may_sample() -> None:
    backend = ScriptedBackend.cycle([Reply("Canberra.", [-0.001])])
    result = await run_auto(backend, "What is the capital of Australia?", effort="medium")
    assert len(backend.calls) == 1
    assert result.details["stop"] == "confident direct answer"


async def test_an_unsure_chat_answer_is_chosen_by_meaning_among_samples() -> None:
    def script(call: GenerationRequest, index: int) -> str | Reply:
        if call.messages[-1].content.startswith("I have generated the following responses"):
            return "The most consistent response is Response 2"
        if call.n == 1:
            return Reply("Sydney.", [-0.9])
        return ["Canberra.", "Canberra, the capital."][index]

    backend = ScriptedBackend(script)
    text = "What is the capital of Australia?"
    result = await run_auto(backend, text, effort="medium")
    assert [c.n for c in backend.calls] == [1, 2, 1]
    assert result.text == "Canberra."
    assert result.details["rungs"] == ["first", "samples", "select"]
    assert result.usage.total_tokens <= worst_case(text, effort="medium")


async def test_code_that_passes_the_requests_tests_is_answered_at_once() -> None:
    backend = ScriptedBackend.cycle([RIGHT])
    result = await run_auto(backend, CODE_REQUEST, effort="medium")
    assert result.details["kind"] == "code"
    assert result.details["tests"] == 2 and result.details["passed"] == [2]
    assert len(backend.calls) == 1 and result.text == RIGHT


async def test_failing_code_is_replaced_by_the_sample_that_passes_most_tests() -> None:
    def script(call: GenerationRequest, index: int) -> str:
        if call.n == 1:
            return WRONG
        return [WRONG, "```python\ndef add(a, b):\n    while True: pass\n```", RIGHT][index]

    backend = ScriptedBackend(script)
    result = await run_auto(backend, CODE_REQUEST, effort="medium")
    assert [c.n for c in backend.calls] == [1, 3]
    assert backend.calls[1].sampling.temperature == 0.8
    assert result.details["passed"] == [1, 1, 0, 2]  # the loop timed out
    assert result.details["chosen"] == 3 and result.text == RIGHT
    assert result.usage.total_tokens <= worst_case(CODE_REQUEST, effort="medium")


async def test_code_without_tests_or_samples_is_one_pass() -> None:
    backend = ScriptedBackend.cycle([WRONG])
    plain = await run_auto(backend, "Write a Python function that adds two numbers.")
    assert plain.details["stop"] == "the request has no tests" and len(backend.calls) == 1
    low = await run_auto(backend, CODE_REQUEST, effort="low")
    assert low.details["stop"] == "no samples at this level" and len(backend.calls) == 2


async def test_an_ambiguous_request_gets_one_question_back() -> None:
    def script(call: GenerationRequest, index: int) -> str:
        assert "leaves out the unit to convert to" in call.messages[-1].content
        return "Which unit should I convert the 100 degrees to?\n"

    backend = ScriptedBackend(script)
    result = await run_auto(backend, "Convert 100 degrees.")
    assert result.text == "Which unit should I convert the 100 degrees to?"
    assert result.details["clarify"] is True and result.details["kind"] == "ambiguous"
    assert result.details["readings"] == ["the unit to convert to (and from)"]
    assert result.answer is None and result.usage.calls == 1
    assert result.usage.total_tokens <= worst_case("Convert 100 degrees.")


async def test_asking_switched_off_answers_with_the_ambiguity_noted() -> None:
    backend = ScriptedBackend.cycle(
        [Reply("100 degrees Celsius is 212 F.\nThe answer is: 212", [-0.001] * 9)]
    )
    result = await run_auto(backend, "Convert 100 degrees.", clarify=False)
    assert result.details["clarify"] is False
    assert result.details["kind"] == "ambiguous" and result.details["answered_as"] == "checkable"
    assert result.details["ambiguity"]["readings"] == ["the unit to convert to (and from)"]
    assert result.answer == "212"


async def test_a_named_kind_overrides_the_decision() -> None:
    backend = ScriptedBackend.cycle(["Canberra."])
    result = await run_auto(backend, "Convert 100 degrees.", kind="chat", effort="low")
    assert result.details["kind"] == "chat" and "clarify" not in result.details
    assert [m.content for m in backend.calls[0].messages] == ["Convert 100 degrees."]


async def test_an_unknown_level_is_refused_for_every_kind() -> None:
    from ponder.errors import InvalidRequestError

    for text in ("What is the capital of Australia?", CODE_REQUEST, "Convert 100 degrees."):
        with pytest.raises(InvalidRequestError):
            await run_auto(ScriptedBackend.cycle(["x"]), text, effort="nope")


@pytest.mark.parametrize(
    "text", ["What is the capital of Australia?", CODE_REQUEST, "Convert 100 degrees."]
)
async def test_a_budget_too_small_for_one_answer_is_refused_before_any_call(text: str) -> None:
    from ponder.errors import InvalidRequestError

    backend = ScriptedBackend.cycle(["x"])
    with pytest.raises(InvalidRequestError):
        await run_auto(backend, text, budget_tokens=20)
    assert backend.calls == []
    assert worst_case(text, budget_tokens=20) == 20


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        ("What is the capital of Australia?", 700),  # the first answer fits; the samples do not
        (CODE_REQUEST, 1400),
        ("Convert 100 degrees.", 400),
    ],
)
async def test_every_kind_stays_inside_its_budget(text: str, budget: int) -> None:
    def script(call: GenerationRequest, index: int) -> str | Reply:
        return Reply(" ".join(["word"] * 30), [-0.9] * 30)  # unsure, so levels climb

    backend = ScriptedBackend(script)
    result = await run_auto(backend, text, effort="medium", budget_tokens=budget)
    assert result.usage.total_tokens <= budget
    for call in backend.calls:  # every call was sized so its worst case fit
        assert call.sampling.max_tokens is not None
