"""What kind of request this is, decided from its text before any token is spent.

``auto`` answers each kind its own way (see :mod:`ponder.reasoning.strategies.auto`):

- ``ambiguous``: the request leaves out what only the user knows (the cues of
  :mod:`ponder.reasoning.ambiguity`); ask one question back;
- ``code``: a program is asked for, or given; check candidates against the request's own tests;
- ``checkable``: a question with one right answer that can be compared (a number, a choice,
  yes or no); vote and compute;
- ``chat``: everything else; one direct answer.

The decision costs microseconds and no tokens; ``details.kind`` and ``details.cues`` report it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ponder.reasoning.ambiguity import Cue, ambiguity_cues
from ponder.types import Message

# Only the start of a long message is read: what decides the kind shows early, and the cost
# of the decision stays bounded whatever a request carries.
CLASSIFIED_CHARS = 20_000

RequestKind = Literal["chat", "checkable", "code", "ambiguous"]
KINDS: tuple[RequestKind, ...] = ("chat", "checkable", "code", "ambiguous")

_CODE_GIVEN = re.compile(
    r"```|^[ \t]*+(?:def|class|import|from\s++\S+\s++import|async\s++def)\s|^[ \t]*+>>>\s",
    re.MULTILINE,
)
_CODE_ASKED = re.compile(
    r"\b(?:write|implement|complete|create|code|generate|give\s++me)\s++(?:\w+\s++){0,3}?"
    r"(?:function|program|script|class|method|regex|regular\s++expression|sql\s++query|"
    r"query|unit\s++tests?|snippet|code|decorator|generator|one-liner|algorithm)\b|"
    r"\b(?:python|javascript|typescript|rust|bash)\s++(?:function|script|program|code|class)\b",
    re.IGNORECASE,
)
_IN_LANGUAGE = re.compile(
    r"\bin\s++(?:python|javascript|typescript|java|rust|go|c\+\+|c#|sql|bash|ruby)\b", re.IGNORECASE
)
_CODE_WORD = re.compile(
    r"\b(?:function|code|program|script|implement|class|method|loop|list|lists|string|strings|"
    r"array|dict|dictionary|reverse|sort|parse|regex|error|exception|compile|library|module|"
    r"variable|file|files|json|api|query|recursion|iterate|print)\b",
    re.IGNORECASE,
)
# Arithmetic words that a question over several numbers needs before it counts as maths:
# "What happened in 1914, 1918 and 1939?" has numbers and asks nothing to compute.
_MATH_WORD = re.compile(
    r"\$|%|\b(?:total|each|per|more|less|fewer|times|cost|costs|price|pay|pays|paid|percent|half|"
    r"twice|remaining|left|altogether|spend|spends|spent|earn|earns|sum|average|how\s++many|"
    r"how\s++much|how\s++long|how\s++far|difference|divided|split|share|rate|speed|percentage|"
    r"weight|distance|age|older|younger|final|original|number|double|triple|quadruples?)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(
    r"\d+(?:[.,]\d+)*|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"twenty|thirty|forty|fifty|hundred|thousand|half|twice|double|triple|third|quarter|fifth|"
    r"dozen)\b",
    re.IGNORECASE,
)
_ARITHMETIC = re.compile(
    r"\d\s*+[-+*/×÷^%]\s*+\d|\d\s*+(?:%|percent)\s++of\s++\$?\d|\bsquare\s++root\b|\bfactorial\b",
    re.IGNORECASE,
)
_ASKS_FOR_AMOUNT = re.compile(
    r"\bhow\s++(?:much|many|long|far|fast|old|tall|heavy|often)\b|\bwhat\s++(?:is|was|are|were)\s++"
    r"(?:the\s++)?(?:new\s++)?(?:total|sum|difference|height|distance|age|weight|length|width|"
    r"product|average|mean|median|ratio|percentage|"
    r"probability|area|volume|perimeter|speed|cost|price|value|remainder|number)\b|"
    r"\b(?:calculate|compute|solve|evaluate|simplify|convert|find\s++the|what\s++percent|"
    r"how\s++much\s++more)\b",
    re.IGNORECASE,
)


_QUESTION = re.compile(r"\?|\b(?:how|what|which|find|determine)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class KindDecision:
    kind: RequestKind
    cues: tuple[str, ...]  # why, in a few words each
    missing: tuple[Cue, ...] = ()  # for ``ambiguous``: what the request leaves out

    def as_details(self) -> dict[str, object]:
        return {"kind": self.kind, "cues": list(self.cues)}


def classify_request(
    messages: Sequence[Message], answer_format: str = "auto", *, detect_ambiguity: bool = True
) -> KindDecision:
    """The request's kind from its last user message (and whether it is a first turn)."""
    text = next((m.content for m in reversed(messages) if m.role == "user"), "")[:CLASSIFIED_CHARS]
    missing = ambiguity_cues(messages) if detect_ambiguity else ()
    if missing:
        return KindDecision("ambiguous", tuple(f"{c.kind}: {c.span}" for c in missing), missing)
    if answer_format in ("number", "choice", "yes_no"):
        return KindDecision("checkable", (f"answer_format={answer_format}",))
    if _CODE_GIVEN.search(text):
        return KindDecision("code", ("code in the request",))
    asked = _CODE_ASKED.search(text) or (_IN_LANGUAGE.search(text) and _CODE_WORD.search(text))
    if asked:
        return KindDecision("code", (f"asks for code: {asked.group(0)}",))
    if _ARITHMETIC.search(text):
        return KindDecision("checkable", ("arithmetic",))
    amount = _ASKS_FOR_AMOUNT.search(text)
    if amount and _NUMBER.search(text):
        return KindDecision("checkable", (f"a number asked from numbers: {amount.group(0)}",))
    numbers = _NUMBER.findall(text)
    if len(numbers) >= 2 and _QUESTION.search(text) and _MATH_WORD.search(text):
        return KindDecision("checkable", (f"a question over {len(numbers)} numbers",))
    return KindDecision("chat", ("no program, tests or numbers to check",))
