"""Personal data and secrets in text: where they are, and of which kind.

:class:`Detector` finds spans of six kinds:

- ``email``: a pattern (libraries such as email-validator check an address, but none finds
  addresses in running text);
- ``phone``: Google's libphonenumber (the ``phonenumbers`` package): ``PhoneNumberMatcher``
  finds international numbers (``+44 20 7946 0958``) for any country and national ones
  (``(201) 555-0123``) for the default region; a number counts if it is valid in its
  country's numbering plan, or written with a country code and of a possible length;
- ``card``: 12 to 19 digits, grouped by spaces or dashes or not, that pass the Luhn check
  (``stdnum.luhn``) and start like a card network's numbers;
- ``iban``: validated by ``stdnum.iban``: the country's length and format, and the ISO 7064
  mod 97 check digits (not the national ones: a number with a slip in its account part is
  still redacted);
- ``ip``: IPv4 and IPv6 addresses that the standard ``ipaddress`` module accepts (so
  ``999.1.1.1`` is not one, and neither is ``1.2.3.4.5``; ``1.2.3.4`` is, even when it was
  meant as a version number);
- ``secret``: see :mod:`ponder.privacy.credentials`.

Person names are not detected: no maintained detector installs from PyPI alone. Presidio and
spaCy need an English model that spaCy publishes outside PyPI (the ``en-core-web-*`` names on
PyPI are third-party re-uploads or dependency-confusion stubs); GLiNER, Stanza and Flair
download their weights from a model hub at run time, and NLTK's chunker its data; a list of
first names (names-dataset) cannot tell "Will", "May" or "Grant" from English words.

Overlapping findings become one, covering all of them, of the most specific kind among them
(a vendor key, then IBAN, card, e-mail, IP, phone, then a secret found by its assignment or
its entropy), so no part of a value is ever left in clear. A placeholder that
:mod:`ponder.privacy.redact` writes (``<EMAIL_1>``) is never detected as anything.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn

from ponder.privacy.credentials import SecretFinder

Kind = Literal["email", "phone", "card", "iban", "ip", "secret"]
KINDS: Final[tuple[Kind, ...]] = ("email", "phone", "card", "iban", "ip", "secret")
# Kinds with a checkable structure (a checksum, a grammar, a numbering plan).
STRUCTURED: Final[tuple[Kind, ...]] = ("email", "phone", "card", "iban", "ip")

_RANK: Final = MappingProxyType({"iban": 50, "card": 40, "email": 30, "ip": 20, "phone": 10})

_ATOM = r"[\w%+-]+"
_EMAIL = re.compile(
    rf"(?<![\w.%+-])(?=\w){_ATOM}(?:\.{_ATOM})*"
    r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}(?![\w-])"
)
_DIGIT_RUN = re.compile(r"(?<![\w.,/-])\d+(?:[ -]\d+)*(?![\w])")
_IDD_00 = re.compile(r"(?<![\w+])(?<!\d[ -])00(?=[1-9])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,32}")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?"
    r"(?:%[A-Za-z0-9_.]+)?(?![\w:])"
)


@dataclass(frozen=True, slots=True)
class Finding:
    """A span ``text[start:end]`` of one kind."""

    kind: Kind
    start: int
    end: int
    text: str


class Detector:
    """Finds personal data and secrets in text (see the module's docstring).

    ``region`` is the country assumed for phone numbers written without ``+`` and a country
    code (ISO 3166 alpha-2, or None for international numbers only). ``kinds`` limits what
    is looked for. ``entropy`` turns the random-token test for secrets on or off.
    """

    def __init__(
        self,
        *,
        region: str | None = "US",
        kinds: tuple[Kind, ...] = KINDS,
        entropy: bool = True,
    ) -> None:
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown kinds: {sorted(unknown)}")
        self.region = region
        self.kinds = kinds
        self._secrets = SecretFinder(entropy=entropy)

    def find(self, text: str) -> list[Finding]:
        """Every finding in ``text``, in order, none overlapping another."""
        if not text:
            return []
        spans: list[tuple[int, int, int, Kind]] = []
        if "email" in self.kinds and "@" in text:
            spans += [(m.start(), m.end(), _RANK["email"], "email") for m in _EMAIL.finditer(text)]
        if "phone" in self.kinds:
            spans += [(s, e, _RANK["phone"], "phone") for s, e in self._phones(text)]
        if "card" in self.kinds:
            spans += [(s, e, _RANK["card"], "card") for s, e in _cards(text)]
        if "iban" in self.kinds:
            spans += [(s, e, _RANK["iban"], "iban") for s, e in _ibans(text)]
        if "ip" in self.kinds:
            spans += [(s, e, _RANK["ip"], "ip") for s, e in _ips(text)]
        if "secret" in self.kinds:
            spans += [(s, e, rank, "secret") for s, e, rank in self._secrets.find(text)]
        return _merge(text, spans)

    def _phones(self, text: str) -> Iterator[tuple[int, int]]:
        # "0049 30 901820": 00 is the international prefix of most countries but not of the
        # default region's; written as " +" (same length, same offsets) libphonenumber
        # reads it as a country code.
        scanned = _IDD_00.sub(" +", text)
        matcher = phonenumbers.PhoneNumberMatcher(
            scanned,
            self.region,
            leniency=phonenumbers.Leniency.POSSIBLE,
            # The default gives up after 65535 candidates that are not numbers; a long
            # table of figures must not end the search before a real number.
            max_tries=2**62,
        )
        for match in matcher:
            start, end = match.start, match.end
            if start > 0 and text[start - 1 : start + 1] == "00":
                start -= 1
            # A number valid in its country's numbering plan; or one written with its
            # country code (+44..., 0044..., 011 44...) and a possible length, which is a
            # phone number even when the plan has changed since or the range is unused.
            international = match.raw_string.startswith(("+", "011"))
            significant = phonenumbers.national_significant_number(match.number)
            national = phonenumbers.is_valid_number(match.number) and not _inside_code(
                text, start, end
            )
            if national or (international and len(significant) >= 7):
                yield start, end


def _merge(text: str, spans: list[tuple[int, int, int, Kind]]) -> list[Finding]:
    """One finding per group of overlapping spans: their union, of the best kind."""
    out: list[Finding] = []
    spans = sorted(s for s in spans if s[1] > s[0])
    i = 0
    while i < len(spans):
        start, end, rank, kind = spans[i]
        best = (rank, end - start)
        j = i + 1
        while j < len(spans) and spans[j][0] < end:
            s, e, r, k = spans[j]
            end = max(end, e)
            if (r, e - s) > best:
                best, kind = (r, e - s), k
            j += 1
        out.append(Finding(kind, start, end, text[start:end]))
        i = j
    return out


def _inside_code(text: str, start: int, end: int) -> bool:
    """Whether a national-format number is part of a longer code (``INV-2024-000123``)."""
    before = text[start - 1 : start]
    after = text[end : end + 2]
    return (bool(before) and (before.isalnum() or before in "-/#_.")) or (
        len(after) == 2 and after[0] in "-/." and after[1].isdigit()
    )


# -- payment cards ------------------------------------------------------------------------
def _card_network(digits: str) -> bool:
    """Whether ``digits`` has the length and leading digits of a card network's numbers."""
    n = len(digits)
    p2, p3, p4, p6 = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    return (
        (digits[0] == "4" and n in (13, 16, 19))  # Visa
        or ((51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16)  # Mastercard
        or (p2 in (34, 37) and n == 15)  # American Express
        or ((300 <= p3 <= 305 or p2 in (36, 38, 39) or p4 == 3095) and 14 <= n <= 19)  # Diners
        or (3528 <= p4 <= 3589 and 16 <= n <= 19)  # JCB
        or (2200 <= p4 <= 2204 and 16 <= n <= 19)  # Mir
        or ((p4 == 6011 or 644 <= p3 <= 649 or p2 == 65 or 622126 <= p6 <= 622925) and n >= 16)
        or (p2 == 62 and 16 <= n <= 19)  # UnionPay
        or ((p2 == 50 or 56 <= p2 <= 69) and 12 <= n <= 19)  # Maestro, RuPay
    )


def _cards(text: str) -> Iterator[tuple[int, int]]:
    """Runs of digit groups; in each, left to right, the longest windows of whole groups
    that are cards (``4111 1111 1111 1111 12/29``; two cards side by side). A 12-digit
    number counts only on its own, not cut from a longer run."""
    for run in _DIGIT_RUN.finditer(text):
        groups = [(m.start(), m.end()) for m in re.finditer(r"\d+", run.group())]
        i = 0
        while i < len(groups):
            last, size = i, 0
            while last < len(groups) and size + groups[last][1] - groups[last][0] <= 19:
                size += groups[last][1] - groups[last][0]
                last += 1
            for j in range(last, i, -1):
                digits = "".join(run.group()[s:e] for s, e in groups[i:j])
                whole = i == 0 and j == len(groups)
                if (
                    (13 <= len(digits) <= 19 or (len(digits) == 12 and whole))
                    and _card_network(digits)
                    and luhn.is_valid(digits)
                ):
                    yield run.start() + groups[i][0], run.start() + groups[j - 1][1]
                    i = j
                    break
            else:
                i += 1


# -- IBANs --------------------------------------------------------------------------------
def _ibans(text: str) -> Iterator[tuple[int, int]]:
    position = 0
    while True:
        match = _IBAN.search(text, position)
        if match is None:
            return
        candidate = match.group()
        # The candidate may run on into the words after it: try its alphanumeric ends,
        # longest first.
        ends = [k + 1 for k, c in enumerate(candidate) if c != " "]
        for end in reversed(ends):
            compact = candidate[:end].replace(" ", "")
            if len(compact) >= 15 and stdnum_iban.is_valid(compact, check_country=False):
                yield match.start(), match.start() + end
                position = match.start() + end
                break
        else:
            position = match.start() + 1


# -- IP addresses -------------------------------------------------------------------------
def _ips(text: str) -> Iterator[tuple[int, int]]:
    if "." in text:
        for match in _IPV4.finditer(text):
            try:
                ipaddress.IPv4Address(match.group())
            except ValueError:
                continue
            yield match.start(), match.end()
    if ":" in text:
        for match in _IPV6.finditer(text):
            candidate = match.group()
            # "a::b" and "dead::beef" read as words; an address in text has a digit.
            if not any(c.isdigit() for c in candidate.split("%")[0]):
                continue
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            yield match.start(), match.end()
