"""Underspecified requests, found from the text alone before any token is spent.

Each cue names one way a request leaves out what only the user knows. They are read from the
last user message; an earlier turn of the conversation can supply what a cue misses (a place
for "there", a text for "translate this"), so those cues only fire on a conversation's first
request:

- ``reference``: a word that points at something never given: "get there", "translate this",
  "the attached report", "Is it safe to eat?";
- ``unit``: a conversion with no target or no source unit: "Convert 100 degrees.",
  "How much is 50 in dollars?";
- ``quantity``: a number asked about the user's own situation with no number given ("How
  much paint do I need for my room?"), or a word problem that counts "some" apples and asks
  for a total.

The rules favour precision: asking about a clear request costs the user a turn, so a cue fires
only on a pattern that almost never occurs in a request that can be answered as written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ponder.types import Message

_WORDS_OF_NUMBER = r"(?:\d|\bone\b|\btwo\b|\bthree\b|\bfour\b|\bfive\b|\bsix\b|\bseven\b|\beight\b|\bnine\b|\bten\b|\bhalf\b|\btwice\b|\bdozen\b|\bhundred\b|\bthousand\b)"
_HAS_NUMBER = re.compile(_WORDS_OF_NUMBER, re.IGNORECASE)
_NUMBERS = re.compile(r"\d+(?:[.,]\d+)*", re.IGNORECASE)
_FENCE_OR_QUOTE = re.compile(r"```|\"[^\"]{12,}\"|“[^”]{12,}”|:[ \t]*+\n|\n[ \t]*+\n|:\s++\S.{24,}")

# "there"/"here" as a place the user never named; "there is/are" is existential, not a place.
_PLACE = re.compile(
    r"\b(?:get|getting|go|going|drive|driving|fly|flying|walk|walking|travel|travelling|"
    r"traveling|ride|commute|ship|send|move|moving|arrive|stay|staying)\s++(?:back\s++)?there\b|"
    r"\b(?:it|time|weather|temperature)\s++(?:is\s++)?(?:over\s++)?there\b|"
    r"\bover there\b|\bfrom here\b|\b(?:near|around|close to) here\b",
    re.IGNORECASE,
)
# An action on a text or object the message never includes.
_ACTION_ON_NOTHING = re.compile(
    r"\b(?:translate|summari[sz]e|proofread|rewrite|paraphrase|shorten|edit|fix|debug|review|"
    r"correct|explain|reword|format|sort|reverse|check|improve|simplify|refactor|optimi[sz]e|"
    r"grade|rate|analy[sz]e)\s++(?:this|that|these|those|it|them|the\s++(?:attached|above|following|"
    r"previous|last|same|list|file|document|report|text|paragraph|email|essay|code|bug|error|"
    r"function|script|data|table|spreadsheet|article|chapter|contract|letter|message|sentence|"
    r"passage)|my\s++(?:code|essay|email|letter|text|paragraph|document|report|cv|resume|"
    r"résumé|script|function|program|list|data|spreadsheet|query|sql|draft|article|post|code's))\b",
    re.IGNORECASE,
)
_ATTACHED = re.compile(
    r"\b(?:the|this|that)\s++(?:attached|enclosed|uploaded|linked)\b|\bthe\s++(?:above|previous)\s++"
    r"(?:text|email|message|code|paragraph|document|report|answer|list)\b|"
    r"\bthe\s++(?:file|document|report|screenshot|image|photo|picture|link|pdf)\s++I\s++"
    r"(?:sent|shared|attached|uploaded|gave)\b|\b(?:attached|enclosed)\s++(?:file|report|document)\b",
    re.IGNORECASE,
)
# A sentence that opens on a pronoun with nothing before it to refer to ("Is it safe to eat?",
# "How much does it cost?", "What did she say?"); "it" followed by "to <verb> <object>" or by
# weather and time words is a dummy subject and says nothing missing.
_PRONOUN_OPENING = re.compile(
    r"^\s*+(?:(?:is|was|does|did|will|would|can|could|should|has|are|were|do)\s++"
    r"(?P<a>it|they|he|she|this|that|these|those|them)\b|"
    r"(?:how|what|when|where|why|who|which)\s++(?:\w+\s++){0,3}?"
    r"(?:is|was|does|did|will|would|can|could|should|are|were|do|has)\s++"
    r"(?P<b>it|they|he|she|this|that|these|those)\b)(?P<rest>[^.?!]*)",
    re.IGNORECASE,
)
_DUMMY_IT = re.compile(
    r"^\s*+(?:raining|snowing|sunny|cold|hot|warm|windy|cloudy|late|early|dark|possible|"
    r"true|necessary|normal|legal|okay|ok|better|best|worth|time|a\s++good\s++idea|"
    r"the\s++case|mean|called|spelled|spelt|pronounced|go)\b",
    re.IGNORECASE,
)
_TO_VERB_OBJECT = re.compile(r"\bto\s++\w+\s++\w+", re.IGNORECASE)
_TIME_OF_DAY = re.compile(r"^\s*+what time is it\s*+\??\s*+$", re.IGNORECASE)

# Conversions: a number with a unit and no target, or a target with no source unit.
_CONVERT_NO_TARGET = re.compile(
    r"\bconvert\s++(?:[\d.,]+|a|an|one)\s*+[a-zA-Z°]*\s*+[.?!]?\s*+$", re.IGNORECASE
)
_BARE_DEGREES = re.compile(
    r"\b\d+(?:\.\d+)?\s*+degrees?\b(?!\s*+(?:c|f|k|celsius|fahrenheit|kelvin|centigrade|north|south|east|west|angle|of|in\s++radians|to\s++radians)\b)",
    re.IGNORECASE,
)
_CURRENCY_NO_SOURCE = re.compile(
    r"\b(?:how much is|what is|what's|convert)\s++(?:[\d.,]+)\s++(?:in|to|into)\s++"
    r"(?:dollars|euros|pounds|yen|yuan|rupees|francs|pesos|usd|eur|gbp|jpy|cad|aud)\b",
    re.IGNORECASE,
)
_CURRENCY_WORD = re.compile(
    r"\b(?:dollars?|euros?|pounds?|yen|yuan|rupees?|francs?|pesos?|usd|eur|gbp|jpy|cad|aud)\b|[$€£¥]",
    re.IGNORECASE,
)
_CONVERSION_ASKED = re.compile(
    r"\bconvert|\b(?:in|to|into)\s++(?:celsius|fahrenheit|kelvin|centigrade)\b", re.IGNORECASE
)
_SENTENCE = re.compile(r"(?<=[.?!])\s++")

# A quantity asked about the user's own situation, with no number anywhere in the message.
_QUANTITY_QUESTION = re.compile(
    r"\b(?:how\s++(?:much|many|long|far|big|large|often|old|heavy)|what\s++size|what\s++dose|"
    r"what\s++percentage|at\s++what\s++age|when\s++will\s++I|how\s++soon)\b",
    re.IGNORECASE,
)
# The user's own things ("my room", "our savings"): "I" alone asks about people in general
# ("How long should I boil an egg?").
_OWN_SITUATION = re.compile(r"\b(?:my|our)\b", re.IGNORECASE)
# A word problem that counts something vaguely and then asks for an exact number.
_VAGUE_COUNT = re.compile(
    r"\b(?:buys|bought|has|had|sells|sold|picks|picked|makes|made|gets|got|earns|earned|"
    r"saves|saved|spends|spent|pays|paid|reads|read|eats|ate|collects|collected|takes|took)\s++"
    r"(?:some|several|a\s++few|a\s++number\s++of|a\s++bunch\s++of|lots\s++of|many|a\s++lot\s++of)\s++"
    r"(?!of\b)\w+",
    re.IGNORECASE,
)
_EXACT_ASK = re.compile(
    r"\bhow\s++(?:much|many)\b|\bwhat\s++is\s++the\s++total\b|\bhow\s++much\s++change\b",
    re.IGNORECASE,
)
_UNKNOWN_IS_THE_VAGUE_ONE = re.compile(
    r"\b(?:at\s++first|originally|initially|to\s++(?:begin|start)\s++with|in\s++the\s++beginning|"
    r"start(?:ed)?\s++with)\b|\bhow\s++many\s++(?:\w+\s++){0,3}did\s++(?:\w+\s++){0,3}(?:buy|have|"
    r"start|begin|sell|pick|make|get|eat|read|collect|take|save|spend|earn)\b|"
    r"\bhow\s++much\s++did\s++(?:\w+\s++){0,3}(?:spend|pay|save|earn)\b",
    re.IGNORECASE,
)


# "there" as a place: not existential ("there is", "are there", "there's").
_THERE_PLACE = re.compile(
    r"(?<!\bis\s)(?<!\bare\s)(?<!\bwas\s)(?<!\bwere\s)(?<!\bbe\s)(?<!\bbeen\s)"
    r"\bthere\b(?!\s*+(?:is|are|was|were|'s|will|would|should|must|might|may|can|could|"
    r"seems?|be|has|have|had|exists?|remains?|used|lived|goes|comes)\b)(?!')",
    re.IGNORECASE,
)
# A person or thing the user points at as an object: "telling him", "take it with".
_OBJECT_PRONOUN = re.compile(
    r"\b(?:tell|telling|ask|asking|email|emailing|call|calling|text|texting|remind|reminding|"
    r"thank|thanking|invite|inviting|meet|meeting|reply\s++to|write\s++to|message)\s++(?:him|her)\b|"
    r"\b(?:take|taking|eat|eating|mix|mixing|drink|drinking|give|giving|freeze|freezing|"
    r"store|storing|wash|washing|plant|planting)\s++(?:it|them)\s++(?:with|together|after|before|"
    r"if|when|on|in|to|at)\b",
    re.IGNORECASE,
)
# Asking why one's own artefact misbehaves, without showing it.
_OWN_ARTEFACT = re.compile(
    r"\b(?:why|what)\s++(?:\w+\s++){0,2}(?:does|is|did|do|'s)\s++(?:wrong\s++with\s++)?my\s++"
    r"(?:code|program|script|function|query|app|formula|macro|regex|build|test|page|site)\b",
    re.IGNORECASE,
)
# An event named only by "the", with nothing in the message to say which one.
_BARE_EVENT = re.compile(
    r"\bthe\s++(?:election|game|match|season|race|final|finals|playoffs?|tournament|"
    r"championship|show|concert|episode|latest\s++version|new\s++version|latest\s++update|"
    r"new\s++update|latest\s++release|final\s++score|deadline|vote|referendum)\b",
    re.IGNORECASE,
)
# How a request to an assistant opens (a word problem opens on its subject instead).
_ASKING_OPENER = re.compile(
    r"^\s*+(?:please\s++)?(?:draft|write|send|tell|help|can|could|would|should|will|is|are|do|"
    r"does|did|how|what|when|where|why|which|who|remind|compose|reply|answer|give|make|let|"
    r"i\s++need|i\s++want|i'd\s++like)\b",
    re.IGNORECASE,
)
_SPECIFIER = re.compile(r"\d|(?<!^)(?<![.?!]\s)\b[A-Z][a-z]+|\b[A-Z]{2,}\b")

# A number that should carry a unit and carries none.
_BARE_MEASURE = re.compile(
    r"\bhow\s++many\s++\w+\s++(?:is|are|in|make)\s++(?:a\s++)?\d[\d.,]*\s*+\??\s*+$|"
    r"\b(?:weighs?|weighed|weighing)\s++(?:about\s++|around\s++)?\d[\d.,]*\b(?!\s*+(?:kg|kilo|"
    r"kilos|kilograms?|pounds?|lbs?|g\b|grams?|ounces?|oz|st\b|stone|tons?|tonnes?|times|more|less|"
    r"fewer|percent|%))|"
    r"\b(?:ran|run|walked|cycled|biked|drove|swam|hiked|rode)\s++(?:about\s++)?\d[\d.,]*\b(?!\s*+"
    r"(?:km|k\b|kilomet|miles?|mi\b|m\b|meters?|metres?|laps?|times|minutes|hours|yards|"
    r"steps|blocks|%))|"
    r"\b(?:bake|baking|roast|roasting|heat|preheat|cook|cooking)\s++(?:\w+\s++)?at\s++\d{2,3}\b"
    r"(?!\s*+(?:°|degrees|c\b|f\b|celsius|fahrenheit))|"
    r"\b(?:salary|income|wage|rent|budget)\s++(?:of\s++)?(?<![$€£¥])\d[\d,.]*k?\b"
    r"(?!\s*+(?:[a-zA-Z$€£¥%]))",
    re.IGNORECASE,
)

# A computation about the user's own money or trip that gives rates but no base amount.
_OWN_BASE = re.compile(
    r"\bmy\s++(?:monthly\s++)?(?:payment|payments|savings|loan|mortgage|investment|investments|"
    r"portfolio|debt|balance|road\s++trip|trip|drive|journey|commute|pension|retirement)\b",
    re.IGNORECASE,
)
_NUMBER_WITH_SUFFIX = re.compile(
    r"\d[\d,.]*\s*+(%|percent\b|-year\b|years?\b|months?\b|km/h|mph|kph|per\b|/h\b|/hr\b|"
    r"an\s++hour\b|a\s++year\b)?",
    re.IGNORECASE,
)
# Vague amounts in a word problem that asks for an exact one.
_VAGUE_AMOUNT = re.compile(
    r"\b(?:a\s++few|several|some|a\s++lot\s++of|lots\s++of|a\s++bunch\s++of)\s++"
    r"(?:years|more|less|fewer|times|hours|minutes|days|weeks|dollars|flour|sugar|water|"
    r"people|workers|friends)\b|\bat\s++a\s++discount\b|\bon\s++sale\b(?!\s++(?:for|at)\s)",
    re.IGNORECASE,
)


CUED_CHARS = 4_000  # an underspecified request is short; a long one is read this far


@dataclass(frozen=True, slots=True)
class Cue:
    """One thing the request leaves out: which rule saw it, and what is missing."""

    kind: str  # reference, unit or quantity
    missing: str  # in words, for the clarifying prompt and ``details.readings``
    span: str  # the words that triggered it


def ambiguity_cues(messages: Sequence[Message]) -> tuple[Cue, ...]:
    """What the last user message leaves out, if anything. Only a conversation's first
    message is read: any earlier user, assistant or tool turn may already hold what a cue
    misses (the place, the text, the sizes), and asking again would cost the user a turn."""
    users = [m for m in messages if m.role == "user"]
    if not users or any(m.role in ("user", "assistant", "tool") for m in messages[:-1]):
        return ()
    text = users[-1].content[:CUED_CHARS]
    return (*_reference_cues(text), *_unit_cues(text), *_quantity_cues(text))


def _reference_cues(text: str) -> list[Cue]:
    # Only the opening sentence: a later "there" or "it" in a word problem points back at
    # something the earlier sentences named.
    opening_sentence = _SENTENCE.split(text.strip(), maxsplit=1)[0]
    cues: list[Cue] = []
    place = _PLACE.search(opening_sentence)
    if place:
        cues.append(Cue("reference", "which place 'there' or 'here' means", place.group(0)))
    carries_content = bool(_FENCE_OR_QUOTE.search(text)) or len(text.split()) > 40
    action = _ACTION_ON_NOTHING.search(opening_sentence)
    # "Translate this" points at nothing; "... the tap leaks; ask them to fix it" points back.
    given_after = action is not None and text[action.end() :].lstrip(" \t")[:1] in (
        ":",
        '"',
        "'",
        "“",
        "\n",
    )
    if (
        action
        and not carries_content
        and not given_after
        and len(opening_sentence[: action.start()].split()) <= 3
    ):
        cues.append(
            Cue("reference", "the text or thing to work on, which was not given", action.group(0))
        )
    attached = _ATTACHED.search(opening_sentence)
    if attached and not carries_content and not action:
        cues.append(Cue("reference", "the attachment, which Ponder cannot see", attached.group(0)))
    there = _THERE_PLACE.search(opening_sentence) if not place else None
    if there and len(text.split()) <= 25:
        cues.append(Cue("reference", "which place 'there' means", there.group(0)))
    pointed = _OBJECT_PRONOUN.search(opening_sentence)
    if (
        pointed
        and _ASKING_OPENER.match(opening_sentence)
        and not _SPECIFIER.search(opening_sentence.strip()[1:])
    ):
        cues.append(Cue("reference", "who or what the pronoun refers to", pointed.group(0)))
    artefact = _OWN_ARTEFACT.search(opening_sentence)
    if artefact and not carries_content:
        cues.append(
            Cue("reference", "the code or thing itself, which was not given", artefact.group(0))
        )
    event = _BARE_EVENT.search(text)
    if event and len(text.split()) <= 15 and not _SPECIFIER.search(text.strip()[1:]):
        cues.append(Cue("reference", f"which {event.group(0)[4:]} is meant", event.group(0)))
    opening = _PRONOUN_OPENING.search(opening_sentence)
    if opening and not _TIME_OF_DAY.match(text):
        pronoun = (opening.group("a") or opening.group("b") or "").lower()
        rest = opening.group("rest") or ""
        dummy = pronoun == "it" and (_DUMMY_IT.match(rest) or _TO_VERB_OBJECT.search(rest))
        if not dummy:
            cues.append(Cue("reference", f"what '{pronoun}' refers to", opening.group(0).strip()))
    return cues


def _unit_cues(text: str) -> list[Cue]:
    cues: list[Cue] = []
    convert = _CONVERT_NO_TARGET.search(text)
    if convert:
        cues.append(Cue("unit", "the unit to convert to (and from)", convert.group(0).strip()))
    degrees = _BARE_DEGREES.search(text)
    if degrees and not convert and _CONVERSION_ASKED.search(text):
        cues.append(Cue("unit", "which temperature scale the degrees are in", degrees.group(0)))
    measure = _BARE_MEASURE.search(text)
    if measure and _short(text, words=30, sentences=2):
        cues.append(Cue("unit", "the unit the number is in", measure.group(0).strip()))
    currency = _CURRENCY_NO_SOURCE.search(text)
    if currency and len(_CURRENCY_WORD.findall(text)) < 2:  # "20 in dollars if it's 20 euros"
        cues.append(Cue("unit", "which currency or unit the amount is in", currency.group(0)))
    return cues


def _quantity_cues(text: str) -> list[Cue]:
    cues: list[Cue] = []
    question = _QUANTITY_QUESTION.search(text)
    if question and _OWN_SITUATION.search(text) and not _HAS_NUMBER.search(text):
        cues.append(
            Cue("quantity", "the sizes or amounts of the user's own case", question.group(0))
        )
    base = _OWN_BASE.search(text)
    if base and "?" in text and _HAS_NUMBER.search(text):
        suffixes = [m.group(1) for m in _NUMBER_WITH_SUFFIX.finditer(text)]
        if suffixes and all(suffixes):  # only rates and durations: the amount itself is missing
            cues.append(
                Cue("quantity", "the amount itself (only rates or times were given)", base.group(0))
            )
    vague = _VAGUE_COUNT.search(text) or _VAGUE_AMOUNT.search(text)
    numbers = len(_NUMBERS.findall(text))
    asked = _SENTENCE.split(text.strip())[-1].lower()
    if (
        vague
        and vague.group(0).split()[-1].lower()[:4] not in asked  # the "some" is the unknown
        and 1 <= numbers <= 2  # a longer problem counts the "some" elsewhere
        and _short(text, words=35, sentences=3)
        and _EXACT_ASK.search(text)
        and not _UNKNOWN_IS_THE_VAGUE_ONE.search(text)
    ):
        cues.append(
            Cue("quantity", "how many there are: the problem says only 'some'", vague.group(0))
        )
    return cues


def _short(text: str, *, words: int, sentences: int) -> bool:
    return len(text.split()) <= words and len(_SENTENCE.split(text.strip())) <= sentences
