"""Secrets in text: vendor API keys and tokens, private keys, passwords, random strings.

Vendor formats come from Yelp's detect-secrets: the compiled ``denylist`` patterns of its
regex plugins (AWS, GitHub, GitLab, Slack, Stripe, OpenAI, SendGrid, PyPI, Twilio,
Mailchimp, Telegram, Discord, Square, Azure storage, credentials in URLs). Those patterns are
used directly rather than through ``analyze_line``, which reads detect-secrets' process-wide
settings and returns values without offsets. Written here, as no maintained library finds
them with offsets in running text: the formats detect-secrets lacks (``sk-``/``sk-proj-``/
``sk-ant-`` keys, Google ``AIza``, ``github_pat_``, Stripe test and webhook keys, Hugging
Face, Slack app tokens) or matches only in part (a JWT without its signature, a private key's
header line), ``password=``/``api_key: ...`` assignments and ``Bearer`` headers, and a
Shannon-entropy test for long random tokens.

A vendor pattern must start a token (detect-secrets' patterns have no left boundary:
``ghs_...`` would match inside ``weighs_programs_...``), and a fixed-length one is widened to
the end of its token, so a key longer than the pattern expects never has its tail left in
clear.

Hexadecimal strings (git SHAs, digests, UUIDs) are not secrets on their entropy alone: they
are everywhere in technical conversations and mostly name public things. A hex string is a
secret only in a vendor format or when assigned to a secret-named key (``api_key=9f86d0...``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise

from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

# How sure a finding is: a vendor format outranks every other kind of finding it overlaps;
# an assignment or a random-looking token yields to any structured kind.
RANK_VENDOR = 60
RANK_ASSIGNMENT = 5
RANK_ENTROPY = 4

# detect-secrets plugins whose patterns are used, and for each the patterns (by position in
# its denylist) whose first group is the secret itself, the rest of the match being context.
_PLUGINS: tuple[tuple[type[RegexBasedDetector], frozenset[int]], ...] = (
    (AWSKeyDetector, frozenset({1})),
    (AzureStorageKeyDetector, frozenset()),
    (BasicAuthDetector, frozenset({0})),
    (DiscordBotTokenDetector, frozenset()),
    (GitHubTokenDetector, frozenset()),
    (GitLabTokenDetector, frozenset()),
    (MailchimpDetector, frozenset()),
    (OpenAIDetector, frozenset()),
    (PypiTokenDetector, frozenset()),
    (SendGridDetector, frozenset()),
    (SlackDetector, frozenset()),
    (SquareOAuthDetector, frozenset()),
    (StripeDetector, frozenset()),
    (TelegramBotTokenDetector, frozenset()),
    (TwilioKeyDetector, frozenset()),
)

# Formats detect-secrets lacks (or matches only in part: its JWT pattern stops before the
# signature, its private-key pattern matches the header line only).
_OWN_VENDOR = (
    # OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-) and Anthropic (sk-ant-api03-...).
    re.compile(r"(?<![\w-])sk-(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,}"),
    re.compile(r"(?<![\w-])AIza[0-9A-Za-z_-]{35}"),  # Google API key
    re.compile(r"(?<![\w-])github_pat_[A-Za-z0-9_]{22,}"),
    re.compile(r"(?<![\w-])gh[pousr]_[A-Za-z0-9]{30,}"),
    re.compile(r"(?<![\w-])(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,}"),  # Stripe
    re.compile(r"(?<![\w-])whsec_[A-Za-z0-9+/=]{20,}"),  # Stripe webhook secret
    re.compile(r"(?<![\w-])hf_[A-Za-z0-9]{30,}"),  # Hugging Face
    re.compile(r"(?<![\w-])xox[abposre]-[A-Za-z0-9-]{10,}"),  # Slack
    re.compile(r"(?<![\w-])xapp-\d-[A-Za-z0-9-]{10,}"),  # Slack app-level token
    re.compile(r"(?<![\w-])(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?![0-9A-Z])"),  # AWS key id
    re.compile(r"(?<![\w-])npm_[A-Za-z0-9]{30,}"),
    re.compile(r"(?<![\w-])glpat-[A-Za-z0-9_-]{20,}"),
)
_JWT = re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_PEM = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY((?: BLOCK)?)-----"
    r"(?:.*?-----END \1PRIVATE KEY\2-----"  # the whole block, or as much as there is of it:
    r"|(?:[ \t]*(?:\r?\n|\\n)[ \t]*(?:[A-Za-z0-9+/=]{8,}|[A-Za-z-]+:[^\n\\]*))*)",
    re.DOTALL,
)
_PUTTY = re.compile(r"PuTTY-User-Key-File-\d:.*?Private-MAC: *[0-9a-fA-F]+", re.DOTALL)
# Password-like keys take any value; other secret-named keys a value that has a digit or
# is long (so that "token: required" or "max_tokens = 256" are not secrets). In prose ("the
# password is ...") the value must have a digit and a letter.
_PASSWORD_KEY = r"(?:pass(?:word|wd|phrase)|pwd)"
_SECRET_KEY = (
    r"(?:secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|client[_-]?secret"
    r"|credentials?|auth[_-]?key|session[_-]?key|signing[_-]?key|encryption[_-]?key)"
)
_KEY = rf"""(?<![A-Za-z0-9])(?:[A-Za-z0-9]*[_.-])*(?P<key>{_PASSWORD_KEY}|{_SECRET_KEY})s?"""
_VALUE = (
    r"""(?:"(?P<dq>[^"\s][^"\n]{3,199})"|'(?P<sq>[^'\s][^'\n]{3,199})'"""
    r"""|(?P<bare>[^\s"'`,;&()<>\[\]{}]{4,}+(?![(\[])))"""
)
_ASSIGNMENT = re.compile(rf"""(?i){_KEY}["']?\]?[ \t]*(?:=|:=|=>|:)[ \t]*{_VALUE}""")
_PROSE = re.compile(rf"""(?i){_KEY}[ \t]+(?:is|was)[ \t]*:?[ \t]+{_VALUE}""")
_BEARER = re.compile(
    r"(?i)\b(?:bearer|basic|token)\s+(?P<value>[A-Za-z0-9._~+/-]{16,}=*)(?![\w.~+/-])"
)
_NOT_VALUES = frozenset(
    {"null", "none", "true", "false", "undefined", "required", "optional", "string", "str",
     "bool", "bytes", "boolean", "number", "object", "secretstr", "changeme", "redacted",
     "secret", "password", "token", "example", "your_api_key", "xxxxxx"}
)  # fmt: skip
# Values that are code, not secrets: dotted names (usage.prompt_tokens), a path's start.
_CODE_NAME = re.compile(
    r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\.?|\.?/.*|(?:os\.environ|env)\b.*"
    r"|[+-]?\d[\d_,]*\.\d*(?:e[+-]?\d+)?"  # a number with a fraction
)
_WORDS = re.compile(r"[a-z_-]+|[A-Z_-]+|(?:[A-Z]?[a-z]+)+")
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/_=.-])[A-Za-z0-9+/_-]{20,}+={0,2}(?![A-Za-z0-9+/_=-])")
_HEX = re.compile(r"[0-9a-fA-F-]+")
_SEPARATORS = re.compile(r"[-_./+]")
_WORD_PART = re.compile(r"[A-Za-z][a-z]*\d{0,2}|[A-Z]+\d*[A-Z]*|[a-z]+\d*[a-z]*|\d+")
_VOWELS = frozenset("aeiouyAEIOUY")
_WORD = re.compile(r"[A-Z]?[a-z]{2,}")
_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str]
    group: bool  # the secret is group 1, not the whole match
    check: Callable[[str], bool] | None = None


def _vendor_rules() -> tuple[_Rule, ...]:
    rules: list[_Rule] = []
    for plugin, grouped in _PLUGINS:
        for i, pattern in enumerate(plugin().denylist):
            rules.append(_Rule(pattern, i in grouped))
    rules += [_Rule(pattern, False) for pattern in _OWN_VENDOR]
    # detect-secrets' npm pattern (//.+/:_authToken=...) takes quadratic time on long lines.
    rules.append(_Rule(re.compile(r"_authToken\s*=\s*[\"']?([^\s\"']{8,})"), True))
    rules.append(_Rule(_JWT, False, JwtTokenDetector.is_formally_valid))
    return tuple(rules)


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text``'s own character distribution."""
    if not text:
        return 0.0
    size = len(text)
    return -sum(n / size * math.log2(n / size) for n in Counter(text).values())


def expected_entropy(length: int, alphabet: int) -> float:
    """The mean of :func:`shannon_entropy` over uniformly random strings of ``length``
    characters from ``alphabet`` symbols (each symbol's count is Binomial(length, 1/A))."""
    length = min(length, 256)
    p = 1.0 / alphabet
    mean_n_log_n = sum(
        math.comb(length, n) * p**n * (1 - p) ** (length - n) * n * math.log2(n)
        for n in range(2, length + 1)
    )
    return math.log2(length) - alphabet * mean_n_log_n / length


def looks_random(token: str) -> bool:
    """Whether ``token`` is more likely a random key than a word, identifier or number."""
    core = token.rstrip("=")
    if len(core) < 20 or _HEX.fullmatch(core):
        return False
    lower = any(c.islower() for c in core)
    upper = any(c.isupper() for c in core)
    digit = any(c.isdigit() for c in core)
    if not digit or not (lower or upper):
        return False
    alphabet = 10 + 26 * (lower + upper) + 2 * any(c in "+/" for c in core)
    alphabet += 2 * any(c in "-_" for c in core)
    margin = max(0.25, 2.0 / math.sqrt(len(core)))
    if shannon_entropy(core) < expected_entropy(len(core), alphabet) - margin:
        return False
    parts = [p for p in _SEPARATORS.split(core) if p]
    if len(parts) > 1 and all(_WORD_PART.fullmatch(p) for p in parts):
        return False  # HTTP_401_UNAUTHORIZED, x86_64-linux-gnu
    if sum(ord(b) - ord(a) == 1 for a, b in pairwise(core)) >= len(core) * 0.3:
        return False  # ABCDEFGH...0123456789
    # Identifiers and file names are made of words and change between letters and digits
    # rarely; random tokens do so every third to fifth character.
    words = [w for w in _WORD.findall(core) if len(w) >= 3 and not _VOWELS.isdisjoint(w)]
    wordy = sum(len(w) for w in words) / len(core)
    switches = sum(
        (a.isdigit() and b.isalpha()) or (a.isalpha() and b.isdigit()) for a, b in pairwise(core)
    )
    return wordy < 0.5 or switches >= len(core) / 5


def _secret_value(value: str, key: str, prose: bool) -> bool:
    """Whether ``value``, assigned to ``key`` (or said to be it, in ``prose``), is a secret
    rather than a placeholder, a name from code or a path."""
    if not value or value.lower() in _NOT_VALUES or set(value) <= set("*xX.-_#"):
        return False
    if value[0] in "/~$%":
        return False
    digit = any(c.isdigit() for c in value)
    letter = any(c.isalpha() for c in value)
    if prose:
        return digit and letter and len(value) >= 6
    if _CODE_NAME.fullmatch(value) or key.lower() in value.lower():
        return False  # code, or a variable named after its key (password=ssl_password)
    if re.fullmatch(_PASSWORD_KEY, key, re.IGNORECASE):
        return len(value) >= 4
    if any(c.isspace() for c in value):
        return False
    if value.isdigit():
        return len(value) >= 12
    return len(value) >= 8 and (digit or (len(value) >= 16 and not _WORDS.fullmatch(value)))


class SecretFinder:
    """Finds secrets; :meth:`find` yields ``(start, end, rank)``."""

    def __init__(self, *, entropy: bool = True) -> None:
        self._rules = _vendor_rules()
        self._entropy = entropy

    def find(self, text: str) -> Iterator[tuple[int, int, int]]:
        for rule in self._rules:
            for match in rule.pattern.finditer(text):
                if rule.group and match.lastindex:
                    if match.group(1):
                        yield match.start(1), match.end(1), RANK_VENDOR
                    continue
                start = match.start()
                if start > 0 and text[start - 1].isalnum():
                    continue  # "ghs_..." inside "weighs_programs_..."
                if rule.check is not None and not rule.check(match.group()):
                    continue
                yield start, _widen(text, match.end()), RANK_VENDOR
        for pattern in (_PEM, _PUTTY):
            for match in pattern.finditer(text):
                yield match.start(), match.end(), RANK_VENDOR
        for pattern in (_ASSIGNMENT, _PROSE):
            for match in pattern.finditer(text):
                group = next(g for g in ("dq", "sq", "bare") if match.group(g) is not None)
                start, end = match.span(group)
                if group == "bare":  # not the full stop after it
                    end = start + len(match.group(group).rstrip(".:"))
                if _secret_value(text[start:end], match.group("key"), pattern is _PROSE):
                    yield start, end, RANK_ASSIGNMENT
        for match in _BEARER.finditer(text):
            value = match.group("value")
            classes = (str.islower, str.isupper, str.isdigit)
            if sum(any(test(c) for c in value) for test in classes) >= 2:
                yield match.start("value"), match.end("value"), RANK_ASSIGNMENT
        if self._entropy:
            for match in _TOKEN.finditer(text):
                if looks_random(match.group()):
                    yield match.start(), match.end(), RANK_ENTROPY


def _widen(text: str, end: int) -> int:
    """The end of the key-like token that a match ending at ``end`` is the start of."""
    while end < len(text) and _TOKEN_CHAR.match(text[end]):
        end += 1
    while end < len(text) and text[end] == "=":
        end += 1
    return end
