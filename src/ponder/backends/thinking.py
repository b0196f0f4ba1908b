"""Separating thinking from the answer in streamed text.

Thinking models put their deliberation in ``<think>…</think>`` inside the content (DeepSeek-R1
distills, Qwen3, QwQ via llama.cpp without a reasoning parser). This splitter routes text to
``reasoning`` or ``content`` incrementally, holding back partial tags that span chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

OPEN = "<think>"
CLOSE = "</think>"


@dataclass(slots=True)
class Split:
    content: str = ""
    reasoning: str = ""


class ThinkSplitter:
    """Incremental splitter. ``implicit_open`` handles templates that put ``<think>`` in the
    prompt, so the output starts inside the thought and only ``</think>`` appears."""

    def __init__(self, *, implicit_open: bool = False) -> None:
        self._inside = implicit_open
        self._seen_any = implicit_open
        self._buffer = ""

    def feed(self, text: str) -> Split:
        self._buffer += text
        out = Split()
        while self._buffer:
            if self._inside:
                end = self._buffer.find(CLOSE)
                if end >= 0:
                    out.reasoning += self._buffer[:end]
                    self._buffer = self._buffer[end + len(CLOSE) :]
                    self._inside = False
                    continue
                keep = _partial_suffix(self._buffer, CLOSE)
                out.reasoning += self._buffer[: len(self._buffer) - keep]
                self._buffer = self._buffer[len(self._buffer) - keep :]
                break
            if not self._seen_any:
                stripped = self._buffer.lstrip()
                if stripped.startswith(OPEN):
                    self._buffer = stripped[len(OPEN) :]
                    self._inside = True
                    self._seen_any = True
                    continue
                if OPEN.startswith(stripped):
                    break  # could still become "<think>"
                self._seen_any = True
            out.content += self._buffer
            self._buffer = ""
        return out

    def flush(self) -> Split:
        rest, self._buffer = self._buffer, ""
        return Split(reasoning=rest) if self._inside else Split(content=rest)


def split_thinking(text: str) -> Split:
    """Split a whole text at once."""
    splitter = ThinkSplitter()
    first = splitter.feed(text)
    last = splitter.flush()
    return Split(content=first.content + last.content, reasoning=first.reasoning + last.reasoning)


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0
