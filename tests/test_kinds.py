"""The request-kind decision and the ambiguity cues: what fires, and what must not."""

from __future__ import annotations

import pytest

from ponder.reasoning.ambiguity import ambiguity_cues
from ponder.reasoning.kinds import classify_request
from ponder.types import Message


def kind(text: str, *earlier: Message) -> str:
    return classify_request((*earlier, Message("user", text))).kind


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        ("How long does it take to get there?", "reference"),
        ("What's the weather like over there?", "reference"),
        ("Can you translate this into French?", "reference"),
        ("Summarise the attached report.", "reference"),
        ("Fix the bug in my code.", "reference"),
        ("Is it safe to eat?", "reference"),
        ("What did she say?", "reference"),
        ("Convert 100 degrees.", "unit"),
        ("How much is 50 in dollars?", "unit"),
        ("What is 30 degrees in Fahrenheit?", "unit"),
        ("How much paint do I need for my room?", "quantity"),
        ("How long will my savings last?", "quantity"),
        ("Tom buys some apples at $2 each and pays with a $20 bill. How much change?", "quantity"),
    ],
)
def test_an_underspecified_request_has_its_cue(text: str, cue: str) -> None:
    cues = ambiguity_cues((Message("user", text),))
    assert [c.kind for c in cues][:1] == [cue], cues
    assert kind(text) == "ambiguous"


@pytest.mark.parametrize(
    "text",
    [
        "How long does it take to drive from Paris to Lyon?",
        "Translate 'Where is the train station?' into Spanish.",
        "Summarize this paragraph: The committee met on Tuesday to review the budget and "
        "agreed to cut travel spending by 10 percent.",
        "Is it possible to learn Spanish in six months?",
        "Is it better to rent or buy a house?",
        "What time is it?",
        "Convert 100 degrees Fahrenheit to Celsius.",
        "How much paint do I need for a 4 m by 3 m room with walls 2.5 m high?",
        "How old do I have to be to vote in the US?",
        "How long should I boil an egg?",
        "What is the score of a perfect game in bowling?",
        "Explain this: E=mc^2",
        "How much is 20 in dollars if it's 20 euros?",
        "What happened in Europe in 1914, 1918 and 1939?",
        "There are 336 books in a library. On Monday, 124 books are taken out. How many books "
        "are there now?",
        "John visits his parents twice a month. It takes him 2 hours to drive there at 70 mph. "
        "How many miles a month does he drive?",
        "Monika went out for the day and spent some money. She went to the mall and spent $250. "
        "Then she watched 3 movies at $24 each. How much did she spend?",
    ],
)
def test_a_clear_request_is_not_asked_about(text: str) -> None:
    assert kind(text) != "ambiguous", ambiguity_cues((Message("user", text),))


def test_an_earlier_turn_supplies_the_antecedent() -> None:
    earlier = (
        Message("user", "I'm flying to Tokyo next week."),
        Message("assistant", "Have a good trip!"),
    )
    assert kind("How long does it take to get there?") == "ambiguous"
    assert kind("How long does it take to get there?", *earlier) != "ambiguous"
    # Any earlier turn may hold what is missing: only a first message is asked about.
    sizes = (Message("user", "My room is 4 m by 5 m."), Message("assistant", "Noted."))
    assert kind("How much paint do I need for my room?") == "ambiguous"
    assert kind("How much paint do I need for my room?", *sizes) != "ambiguous"
    # A system message is the application's, not the user's: it does not count as a turn.
    assert kind("Convert 100 degrees.", Message("system", "Be brief.")) == "ambiguous"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What is the capital of Australia?", "chat"),
        ("Write a two-line poem about autumn.", "chat"),
        ("Explain in one sentence what a mutex is.", "chat"),
        ("What is 17 * 23?", "checkable"),
        ("What is 15% of 80?", "checkable"),
        (
            "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
            "clips in May. How many clips did Natalia sell altogether in April and May?",
            "checkable",
        ),
        ("Write a Python function that reverses a string.", "code"),
        ("How do I reverse a list in Python?", "code"),
        ("What should I see in Java on a 3 day trip?", "chat"),
        ("What happened in Europe in 1914, 1918 and 1939?", "chat"),
        ("```python\ndef add(a, b):\n    pass\n```\nComplete it.", "code"),
    ],
)
def test_the_kind_of_a_clear_request(text: str, expected: str) -> None:
    assert kind(text) == expected


def test_a_format_that_names_a_checkable_answer_wins() -> None:
    messages = (Message("user", "Which is larger, a or b?"),)
    assert classify_request(messages, "choice").kind == "checkable"
    assert classify_request(messages).kind == "chat"


def test_ambiguity_can_be_left_out_of_the_decision() -> None:
    messages = (Message("user", "Convert 100 degrees."),)
    assert classify_request(messages).kind == "ambiguous"
    assert classify_request(messages, detect_ambiguity=False).kind == "checkable"


def test_long_hostile_text_is_classified() -> None:
    # Patterns that backtrack badly would hang here (timings belong in bench/).
    for text in ("a" * 100_000, "how much " * 20_000, "(" * 50_000 + "?", "there " * 30_000):
        assert classify_request((Message("user", text),)).kind in ("chat", "ambiguous")
