"""Parsers that turn a local model's tool-call markup into OpenAI ``tool_calls``.

Registered by name; the embedded backend picks one from the model's chat template.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

ToolCallParser = Callable[[str], tuple[str, list[dict[str, Any]]]]

_HERMES = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)


def parse_hermes(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Qwen2.5 / Hermes style: ``<tool_call>{"name": …, "arguments": {…}}</tool_call>``."""
    calls: list[dict[str, Any]] = []
    for match in _HERMES.finditer(text):
        try:
            payload = json.loads(match.group(1))
        except json.JSONDecodeError:
            continue
        if not isinstance(payload, dict) or "name" not in payload:
            continue
        arguments = payload.get("arguments", {})
        calls.append(
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {
                    "name": str(payload["name"]),
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                },
            }
        )
    if not calls:
        return text, []
    return _HERMES.sub("", text).strip(), calls


TOOL_CALL_PARSERS: Mapping[str, ToolCallParser] = {"hermes": parse_hermes}


def parser_for_template(template: str | None) -> ToolCallParser | None:
    if template and "<tool_call>" in template:
        return TOOL_CALL_PARSERS["hermes"]
    return None
