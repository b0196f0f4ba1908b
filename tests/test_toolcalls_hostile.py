"""Tool-call markup is model output, so hostile: a bad escape or a lone surrogate in a call's
name or arguments must parse into text that can go on the wire, never raise."""

from __future__ import annotations

import json

import pytest

from ponder.backends.toolcalls.hermes import HermesStream

CALLS = [
    '<tool_call>\n{"name": "a\\q", "arguments": {"x": 1}}\n</tool_call>',
    '<tool_call>\n{"name": "b\\ud800", "arguments": {"x": "\\udfff"}}\n</tool_call>',
    '<tool_call>\n{"name": "c", "arguments": "{\\"y\\": \\"\\ud800\\"}"}\n</tool_call>',
    '<tool_call>\n{"arguments": {"z": 2}, "name": "d\\ud800"}\n</tool_call>',
]


@pytest.mark.parametrize("markup", CALLS)
def test_a_hostile_call_parses_into_encodable_text(markup: str) -> None:
    stream = HermesStream()
    fragments = []
    for k in range(0, len(markup), 7):  # streamed in pieces, as the engine delivers it
        fragments += stream.feed(markup[k : k + 7])[1]
    fragments += stream.finish()[1]
    assert fragments, "the call was lost"
    # What goes on the wire: JSON, as UTF-8 (a lone surrogate would raise here).
    json.dumps(fragments, ensure_ascii=False).encode("utf-8")
    names = [f["function"]["name"] for f in fragments if "name" in f.get("function", {})]
    assert len(names) == 1 and names[0]
