"""Final-answer extraction and number normalisation."""

from __future__ import annotations

import pytest

from ponder.reasoning.answers import boxed, extract_number, final_answer_text, normalize_number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,234", "1234"),
        ("$1,234.50", "1234.5"),
        ("\\$18", "18"),
        ("45%", "45"),
        ("3/4", "0.75"),
        ("\\frac{3}{4}", "0.75"),
        ("-7", "-7"),
        ("12.0", "12"),
        ("about 5 apples and 6 pears", "6"),
        ("no digits", None),
    ],
)
def test_normalize_number(text: str, expected: str | None) -> None:
    assert normalize_number(text) == expected


def test_boxed_with_nested_braces() -> None:
    assert boxed("so \\boxed{\\frac{1}{2}} done") == "\\frac{1}{2}"
    assert boxed("first \\boxed{1} then \\boxed{2}") == "2"
    assert boxed("none") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Steps...\nThe answer is: 72", "72"),
        ("Steps... The final answer is $1,080.", "1080"),
        ("We get \\boxed{18} in total.\nThe answer is 18", "18"),
        ("48/2 = 24 and 48 + 24 = 72", "72"),
    ],
)
def test_extract_number(text: str, expected: str) -> None:
    assert extract_number(text) == expected


def test_final_answer_text_prefers_the_last_statement() -> None:
    assert final_answer_text("The answer is 3.\nWait.\nThe answer is 4.") == "4"
