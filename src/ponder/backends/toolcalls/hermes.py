"""Hermes tool-call markup, parsed as it streams.

Qwen2.5 / Hermes chat templates ask for each call as
``<tool_call>\\n{"name": …, "arguments": {…}}\\n</tool_call>``. :class:`HermesStream` reads a
sequence's text as it is produced and splits it into the content shown to the client and
OpenAI tool-call *fragments*: a call's first fragment has its ``index``, ``id``, ``type`` and
``function.name`` (with empty arguments), later ones add pieces of ``function.arguments``.
The markup itself never reaches the content. Given the offered tools' names (under
``tool_choice: "auto"``), it also takes a reply that is one call written as bare JSON
(:mod:`ponder.backends.toolcalls.bare`).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection
from typing import Any

from ponder.backends.base import merge_fragments
from ponder.backends.toolcalls.bare import BareCall
from ponder.backends.toolcalls.scan import ValueScanner

OPEN_TAG = "<tool_call>"
CLOSE_TAG = "</tool_call>"
# How a chat template lays out a call inside its tags, and calls one after another.
OPEN_LAYOUT = OPEN_TAG + "\n"
CLOSE_LAYOUT = "\n" + CLOSE_TAG
SEPARATOR = "\n"

# The start of a call's JSON, up to where its arguments begin.
_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*')

Fragment = dict[str, Any]


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


class HermesStream:
    """Incremental parser of one sequence's ``<tool_call>`` markup.

    ``feed`` takes the next piece of text and returns the content to show now and the
    tool-call fragments it completed; ``finish`` returns what was held back. Whitespace
    before a call is dropped with the markup. With ``parallel`` false, everything after the
    first call is dropped. ``bare_names``: the tools a reply may call as bare JSON, the call
    being the whole reply (given under ``tool_choice: "auto"`` only; empty, no such call is
    looked for). Such a reply is held while it may be one; its call comes at ``finish``."""

    def __init__(self, *, parallel: bool = True, bare_names: Collection[str] = ()) -> None:
        self.parallel = parallel
        self.calls = 0  # calls started so far
        self._text = ""  # read, not yet used
        self._in_call = False
        self._done = False
        # The open call, once its head (up to its arguments) was read.
        self._args: ValueScanner | None = None
        self._sent_args = False
        self._quoted = ""  # arguments sent as a JSON string of JSON, held till whole
        # The reply, held while it may still be one bare call.
        self._bare = BareCall(bare_names) if bare_names else None

    def feed(self, text: str) -> tuple[str, list[Fragment]]:
        fragments: list[Fragment] = []
        if self._bare is not None:
            if self._bare.feed(text) == "wait":
                return "", fragments
            text, self._bare = self._bare.text, None  # not a bare call: read as usual
        self._text += text
        content = ""
        while self._text and not self._done:
            if not self._in_call:
                shown, opened = self._read_content()
                content += shown
                if not opened:
                    break
                continue
            progressed, shown = self._read_call(fragments)
            content += shown
            if not progressed:
                break
        if self._done:
            self._text = ""
        return content, fragments

    def finish(self) -> tuple[str, list[Fragment]]:
        """The end of the sequence: content held back, and a call cut short (its arguments
        as far as they got, or, before its name was read, its raw text as content)."""
        content, fragments = "", list[Fragment]()
        if self._bare is not None:
            bare, self._bare = self._bare, None
            if bare.finish() == "call" and bare.call is not None:
                return "", self._bare_call(bare.call)
            content, fragments = self.feed(bare.text)
        if self._in_call and self._args is None:
            parsed = self._whole_call(self._text)
            if parsed is not None:
                fragments.append(parsed)
            else:
                content += OPEN_TAG + self._text
        elif self._in_call and self._quoted:
            fragments.append(self._arguments(self._quoted))
        elif not self._in_call and not self._done and not (self.calls and not self._text.strip()):
            content += self._text
        self._text = ""
        self._in_call = False
        return content, fragments

    def _bare_call(self, call: dict[str, Any]) -> list[Fragment]:
        """A whole reply's bare call, as a streamed call's fragments."""
        self.calls += 1
        return [
            {
                "index": 0,
                "id": new_call_id(),
                "type": "function",
                "function": {"name": call["name"], "arguments": ""},
            },
            {"index": 0, "function": {"arguments": json.dumps(call["arguments"])}},
        ]

    def _read_content(self) -> tuple[str, bool]:
        """Content up to the next call's tag (without the whitespace before it), or up to a
        tail that could still become one."""
        at = self._text.find(OPEN_TAG)
        if at >= 0:
            shown = self._text[:at].rstrip()
            self._text = self._text[at + len(OPEN_TAG) :]
            self._in_call = True
            return shown, True
        keep = len(self._text)
        for start in range(max(0, len(self._text) - len(OPEN_TAG) + 1), len(self._text)):
            if OPEN_TAG.startswith(self._text[start:]):
                keep = start
                break
        # Whitespace is held too: it is dropped if a call follows it.
        keep = len(self._text[:keep].rstrip())
        shown, self._text = self._text[:keep], self._text[keep:]
        return shown, False

    def _read_call(self, fragments: list[Fragment]) -> tuple[bool, str]:
        """Read on in the open call; returns whether any text was used, and content to show
        when it turned out not to be a call."""
        if self._args is None:
            head = _HEAD.match(self._text)
            if head is None:
                # Too little text for the head yet, or another layout: wait for the close.
                end = self._text.find(CLOSE_TAG)
                if end < 0:
                    return False, ""
                body, self._text = self._text[:end], self._text[end + len(CLOSE_TAG) :]
                parsed = self._whole_call(body)
                if parsed is None:
                    self._in_call = False
                    return True, OPEN_TAG + body + CLOSE_TAG
                fragments.append(parsed)
                self._end_call()
                return True, ""
            self._text = self._text[head.end() :]
            self._args, self._sent_args, self._quoted = ValueScanner(), False, ""
            fragments.append(
                {
                    "index": self.calls,
                    "id": new_call_id(),
                    "type": "function",
                    "function": {"name": _decoded(head.group(1)), "arguments": ""},
                }
            )
            self.calls += 1
            return True, ""
        if not self._args.done:
            used = self._args.feed(self._text)
            piece, self._text = self._text[:used], self._text[used:]
            if self._args.first == '"':
                self._quoted += piece
                if self._args.done:
                    fragments.append(self._arguments(self._quoted))
                    self._quoted = ""
            else:
                piece = piece if self._sent_args else piece.lstrip()
                if piece:
                    fragments.append({"index": self.calls - 1, "function": {"arguments": piece}})
                    self._sent_args = True
            return bool(used) or self._args.done, ""
        end = self._text.find(CLOSE_TAG)
        if end < 0:
            return False, ""
        self._text = self._text[end + len(CLOSE_TAG) :]
        self._end_call()
        return True, ""

    def _arguments(self, quoted: str) -> Fragment:
        """Arguments a model wrote as a JSON string: the string's text is the JSON."""
        try:
            decoded = json.loads(quoted)
        except json.JSONDecodeError:
            decoded = quoted.strip()
        text = _valid(decoded) if isinstance(decoded, str) else json.dumps(decoded)
        return {"index": self.calls - 1, "function": {"arguments": text}}

    def _whole_call(self, body: str) -> Fragment | None:
        """A call in another layout than the template's (say, arguments before the name)."""
        try:
            payload = json.loads(body)
        except json.JSONDecodeError:
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
            return None
        arguments = payload.get("arguments", {})
        self.calls += 1
        return {
            "index": self.calls - 1,
            "id": new_call_id(),
            "type": "function",
            "function": {
                "name": _valid(payload["name"]),
                "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
            },
        }

    def _end_call(self) -> None:
        self._in_call = False
        self._args = None
        if not self.parallel:
            self._done = True


def _decoded(escaped: str) -> str:
    """A JSON string's body as text. The model wrote it: a bad escape (``a\\q``) is kept as
    written rather than raised, and a lone surrogate (``\\ud800``) cannot reach the wire."""
    try:
        return _valid(json.loads(f'"{escaped}"'))
    except json.JSONDecodeError:
        return _valid(escaped)


def _valid(text: str) -> str:
    """``text`` with any lone surrogate replaced: it could not be encoded as UTF-8."""
    return text.encode("utf-8", "replace").decode("utf-8")


def parse_hermes(
    text: str, *, bare_names: Collection[str] = ()
) -> tuple[str, list[dict[str, Any]]]:
    """A whole reply's content and tool calls."""
    stream = HermesStream(bare_names=bare_names)
    content, fragments = stream.feed(text)
    tail, more = stream.finish()
    return content + tail, merge_fragments(fragments + more)


def parser_for_template(template: str | None) -> type[HermesStream] | None:
    """The markup a chat template asks tool calls in, if Ponder can read it."""
    if template and OPEN_TAG in template:
        return HermesStream
    return None
