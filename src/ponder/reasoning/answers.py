"""Final-answer extraction and normalisation, so that votes compare like with like.

Voting is only as good as extraction: "$1,080.00", "1080" and "\\boxed{1080}" must be one
vote. :func:`extract_answer` reads the answer a completion commits to, in a given format
(number, multiple-choice letter, yes/no or free text), and returns it normalised.
"""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction

from ponder.reasoning.base import AnswerFormat

_ANSWER_IS = re.compile(
    r"(?:final answer|the answer)\s*(?:is|:)\s*:?\s*(.+?)(?:\n|$)", re.IGNORECASE
)
_BOXED = re.compile(r"\\boxed\s*\{")
_NUMBER = re.compile(r"-?\$?\s*\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?%?")
_CHOICE_OPTIONS = re.compile(r"(?:^|\s|\()([A-E])[\).:]\s", re.MULTILINE)
_CHOICE = re.compile(r"(?:^|[\s(\[*])([A-E])(?:$|[\s).\]*:,])")
_YES_NO_QUESTION = re.compile(
    r"^\s*(is|are|was|were|do|does|did|can|could|will|would|should|has|have|had)\b", re.IGNORECASE
)
_YES = re.compile(r"\b(yes|true|correct)\b", re.IGNORECASE)
_NO = re.compile(r"\b(no|false|incorrect)\b", re.IGNORECASE)


def boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{…}``, with nested braces."""
    matches = list(_BOXED.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i].strip()
    return None


def final_answer_text(text: str) -> str | None:
    """The span a model marked as its answer: ``\\boxed{}``, then "The answer is …"."""
    inside = boxed(text)
    if inside is not None:
        return inside
    found = _ANSWER_IS.findall(text)
    if found:
        return str(found[-1]).strip().rstrip(".").strip()
    return None


def normalize_number(text: str) -> str | None:
    """The last number in ``text`` as a canonical string: commas, currency, percent and
    fractions removed; "1,234.50" -> "1234.5", "3/4" -> "0.75"."""
    cleaned = text.replace("\\$", "$").replace("\\%", "%").replace("\\!", "")
    cleaned = re.sub(r"\\d?frac\{(-?\d+)\}\{(\d+)\}", r"\1/\2", cleaned)
    matches = _NUMBER.findall(cleaned)
    if not matches:
        return None
    raw = matches[-1].replace("$", "").replace(",", "").replace(" ", "").rstrip("%")
    try:
        value = Fraction(raw)
    except (ValueError, ZeroDivisionError):
        return None
    if value.denominator == 1:
        return str(value.numerator)
    return format(float(value), ".10g")


def extract_number(text: str) -> str | None:
    """The numeric final answer of a worked solution, or None."""
    marked = final_answer_text(text)
    if marked is not None:
        number = normalize_number(marked)
        if number is not None:
            return number
    return normalize_number(text)


def extract_choice(text: str) -> str | None:
    """A multiple-choice letter A-E: the marked answer first, else the last standalone letter."""
    marked = final_answer_text(text)
    for span in ([marked] if marked else []) + [text]:
        found = _CHOICE.findall(span)
        if found:
            return str(found[-1]).upper()
    return None


def extract_yes_no(text: str) -> str | None:
    marked = final_answer_text(text) or text
    for span in (marked, text):
        yes = [m.start() for m in _YES.finditer(span)]
        no = [m.start() for m in _NO.finditer(span)]
        if yes or no:
            return "yes" if max(yes, default=-1) > max(no, default=-1) else "no"
    return None


def normalize_text(text: str) -> str:
    """Case-, accent-, punctuation- and whitespace-insensitive form of a free-form answer."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    folded = re.sub(r"[^\w\s]", " ", folded)
    folded = re.sub(r"\b(a|an|the)\b", " ", folded)
    return " ".join(folded.split())


def extract_text(text: str) -> str | None:
    marked = final_answer_text(text)
    if marked is None:
        lines = [line for line in text.strip().splitlines() if line.strip()]
        if not lines:
            return None
        marked = lines[-1]
    normalized = normalize_text(marked)
    return normalized or None


def detect_format(question: str) -> AnswerFormat:
    """Guess what kind of answer a question wants: choice, yes/no, else number."""
    if len(set(_CHOICE_OPTIONS.findall(question))) >= 2:
        return "choice"
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", question.strip()) if s]
    if sentences and _YES_NO_QUESTION.match(sentences[-1]):
        return "yes_no"
    return "number"


_EXTRACTORS = {
    "number": extract_number,
    "choice": extract_choice,
    "yes_no": extract_yes_no,
    "text": extract_text,
}


def extract_answer(text: str, answer_format: AnswerFormat, question: str = "") -> str | None:
    """The normalised answer ``text`` commits to, in ``answer_format`` ("auto" guesses it
    from the question)."""
    if answer_format != "auto":
        return _EXTRACTORS[answer_format](text)
    fmt = detect_format(question)
    found = _EXTRACTORS[fmt](text)
    if found is None and fmt == "number":
        # Not every question wants a number; fall back to the free-form answer.
        return extract_text(text)
    return found
