"""Model names, normalised before they are looked up or matched.

A name a client sends is untrusted text: ``openai/GPT-4o``, ``gpt‐4o`` (U+2010, a Unicode
hyphen), a full-width ``ｇｐｔ-4o`` or a zero-width space inside it must not slip past a rule
written as ``*gpt-4*``. Normalising is NFKC (full-width and compatibility forms), removing
format characters (category Cf: zero-width spaces, joiners, direction marks), mapping every
dash punctuation (category Pd) and every slash-like character to its ASCII form, removing
whitespace, and case folding. A ``#tag`` suffix only labels usage and is cut off first.

Normalising is convenience, not the safety: rules match the deployment a name resolves to,
and a name that resolves to nothing is refused.
"""

from __future__ import annotations

import unicodedata

# Slash-like characters NFKC leaves alone: fraction slash, division slash, big solidus.
_SLASHES = {"\u2044": "/", "\u2215": "/", "\u29f8": "/", "\uff0f": "/"}


def strip_tag(name: str) -> tuple[str, str]:
    """``"m#tag"`` -> ``("m", "tag")``: the tag labels usage and takes no part in routing."""
    head, _, tag = name.partition("#")
    return head, tag


def normalise(name: str) -> str:
    """The form names and rule globs are compared in."""
    if name.isascii() and name.isprintable() and " " not in name:
        return name.lower()  # the common case, and the same result: NFKC keeps ASCII as is
    text = unicodedata.normalize("NFKC", name)
    out: list[str] = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Cf" or char.isspace():
            continue
        if category == "Pd":
            out.append("-")
        else:
            out.append(_SLASHES.get(char, char))
    return "".join(out).casefold()
