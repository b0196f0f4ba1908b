"""Where one JSON value ends, in text that arrives piece by piece."""

from __future__ import annotations


class ValueScanner:
    """Finds where one JSON value ends in text fed piece by piece (strings and escapes
    aware), so that a call's arguments can be streamed before the call is closed."""

    def __init__(self) -> None:
        self.first = ""  # the value's first character
        self.depth = 0
        self.in_string = False
        self.escaped = False
        self.done = False

    def feed(self, text: str) -> int:
        """How many characters of ``text`` belong to the value; ``done`` once it ended."""
        for i, ch in enumerate(text):
            if not self.first:
                if ch.isspace():
                    continue
                self.first = ch
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif ch == "\\":
                    self.escaped = True
                elif ch == '"':
                    self.in_string = False
                    if self.depth == 0:
                        self.done = True
                        return i + 1
                continue
            if ch == '"':
                self.in_string = True
            elif ch in "{[":
                self.depth += 1
            elif ch in "}]":
                self.depth -= 1
                if self.depth <= 0:
                    self.done = True
                    return i + 1
            elif self.depth == 0 and (ch.isspace() or ch in ",}"):
                # A bare scalar (a number, true, null) ends at a delimiter.
                self.done = True
                return i
        return len(text)
