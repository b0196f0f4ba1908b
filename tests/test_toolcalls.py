"""Tool-call markup of local models becomes OpenAI tool_calls."""

from __future__ import annotations

import json

from ponder.backends.toolcalls import parse_hermes, parser_for_template


def test_hermes_tool_call_is_parsed() -> None:
    text = 'Let me check.\n<tool_call>\n{"name": "weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    content, calls = parse_hermes(text)
    assert content == "Let me check."
    assert calls[0]["function"]["name"] == "weather"
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Oslo"}
    assert calls[0]["id"].startswith("call_")


def test_malformed_tool_call_is_left_as_text() -> None:
    text = "<tool_call>{not json}</tool_call>"
    assert parse_hermes(text) == (text, [])


def test_parser_is_chosen_from_the_template() -> None:
    assert parser_for_template("... <tool_call> ...") is parse_hermes
    assert parser_for_template("no tools here") is None
    assert parser_for_template(None) is None
