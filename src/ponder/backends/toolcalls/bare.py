"""A tool call written as bare JSON at the very start of a reply.

Under ``tool_choice: "auto"`` small models (the bundled Qwen2.5 0.5B among them) often
answer with ``{"name": …, "arguments": {…}}``, sometimes inside a ```json fence, instead of
the ``<tool_call>`` tags their template asks for; llama.cpp's own Hermes parser takes that
as a call too. :class:`BareCall` reads the start of a reply and decides, as early as it
can, whether it is such a call:

* it is one only when the whole reply is, after optional whitespace and an optional
  ```json or ``` fence, an object that starts ``{"name": "<an offered tool>", "arguments":
  {`` and parses, its ``arguments`` an object, followed by nothing but whitespace and the
  fence's close;
* the moment the text cannot become that (another first character, another first key, a
  name no offered tool has or starts with, text after the object), it is content, and
  everything held is released at once. Only a reply that still looks like a call is held.

Requiring ``name`` first, as llama.cpp does, lets ordinary JSON answers be released after a
few characters instead of at their end. Requiring the call to be the whole reply keeps out
what this model writes after a tool's result: its earlier call again, then the result
echoed, which is an answer (however poor), not a second call.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any, Literal

from ponder.backends.toolcalls.scan import ValueScanner

Verdict = Literal["wait", "content", "call"]  # "call": only from finish()
FENCE = "```"
_FENCE_LANGUAGE = "json"
# The head a call must start with, between the object's "{" and its arguments' "{"; None
# marks where the tool's name goes.
_HEAD: tuple[str | None, ...] = ('"name"', ":", None, ",", '"arguments"', ":", "{")


class BareCall:
    """Reads one reply: :meth:`feed` says ``wait`` while it may be a call, ``content`` once
    it cannot be; :meth:`finish`, at the reply's end, whether it was one."""

    def __init__(self, names: Collection[str]) -> None:
        self.names = frozenset(names)
        self.text = ""  # everything read (all of it held while waiting)
        self.fenced = False  # the call came inside a ``` fence
        self.call: dict[str, Any] | None = None  # {"name": …, "arguments": {…}} once read
        self._start = -1  # where the object's "{" is, once found
        self._head = False  # the head was read and names an offered tool
        self._scanner = ValueScanner()
        self._scanned = 0  # characters of text the scanner has seen

    def feed(self, text: str) -> Verdict:
        self.text += text
        if self.call is not None:
            return self._after_call()
        if self._start < 0:
            found = _object_start(self.text)
            if not isinstance(found, tuple):
                return found
            self._start, self.fenced = found
            self._scanned = self._start
        if not self._head:
            head = _read_head(self.text[self._start :], self.names)
            if head != "call":
                return head
            self._head = True
        used = self._scanner.feed(self.text[self._scanned :])
        self._scanned += used
        if not self._scanner.done:
            return "wait"
        try:
            payload = json.loads(self.text[self._start : self._scanned])
        except json.JSONDecodeError:
            return "content"
        if not (
            isinstance(payload, dict)
            and payload.get("name") in self.names
            and isinstance(payload.get("arguments"), dict)
        ):
            return "content"
        self.call = payload
        return self._after_call()

    def finish(self) -> Verdict:
        """At the reply's end: ``call`` if it was one, else ``content``."""
        return "call" if self.call is not None and self._after_call() == "wait" else "content"

    def _after_call(self) -> Verdict:
        """What follows the call's object: whitespace, and the fence's close if it opened
        one, may still come (``wait``); anything else makes the whole reply content."""
        rest = self.text[self._scanned :].strip()
        if not rest or (self.fenced and FENCE.startswith(rest)):
            return "wait"
        return "content"


def _object_start(text: str) -> Verdict | tuple[int, bool]:
    """Where the reply's object starts (and whether inside a fence), or the verdict when
    there is none yet."""
    at = len(text) - len(text.lstrip())
    if at == len(text):
        return "wait"
    fenced = False
    if text.startswith(FENCE, at):
        fenced, at = True, at + len(FENCE)
        tail = text[at : at + len(_FENCE_LANGUAGE)]
        if text.startswith(_FENCE_LANGUAGE, at):
            at += len(_FENCE_LANGUAGE)
        elif tail and _FENCE_LANGUAGE.startswith(tail) and at + len(tail) == len(text):
            return "wait"  # "```js": the language is still being written
        at += len(text[at:]) - len(text[at:].lstrip())
        if at == len(text):
            return "wait"
    elif FENCE.startswith(text[at:]):
        return "wait"  # "`" or "``": maybe a fence
    return (at, fenced) if text[at] == "{" else "content"


def _read_head(obj: str, names: frozenset[str]) -> Verdict:
    """Whether ``obj`` (from its "{") starts ``{"name": "<tool>", "arguments": {``: ``call``
    once it does, ``content`` once it cannot, ``wait`` until then."""
    at = 1
    for part in _HEAD:
        at += len(obj[at:]) - len(obj[at:].lstrip())
        if at == len(obj):
            return "wait"
        if part is not None:
            if not obj.startswith(part, at):
                return "wait" if part.startswith(obj[at:]) else "content"
            at += len(part)
            continue
        end = _string_end(obj, at)
        if end is None:
            # A name being written: held only while some offered tool starts with it.
            partial = obj[at + 1 :]
            if obj[at] != '"' or ("\\" not in partial and not _prefix_of_any(partial, names)):
                return "content"
            return "wait"
        try:
            name = json.loads(obj[at:end])
        except json.JSONDecodeError:
            return "content"
        if name not in names:
            return "content"
        at = end
    return "call"


def _string_end(text: str, at: int) -> int | None:
    """The end of the JSON string at ``at`` (after its closing quote); None if it has not
    closed yet, or there is no string there."""
    if text[at] != '"':
        return None
    escaped = False
    for k in range(at + 1, len(text)):
        ch = text[k]
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            return k + 1
    return None


def _prefix_of_any(partial: str, names: frozenset[str]) -> bool:
    return any(name.startswith(partial) for name in names)
