"""JSON schemas to llama.cpp grammars (GBNF), for output constrained to a schema.

Besides a whole reply that is one JSON document (``response_format``), a grammar can hold a
reply to tool calls: each call a tagged JSON object ``{"name": ..., "arguments": ...}`` whose
arguments follow that tool's own parameter schema. Such a grammar can be *lazy*: it applies
only from a trigger token on (the model writes freely until it opens a call). llama.cpp
takes the trigger when the sampler is made, so a lazy grammar carries its trigger tokens in
a leading comment line (:func:`lazy_grammar`, read back by :func:`split_lazy`): the text
passes unchanged through the engine's queue, and GBNF ignores comments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from llama_cpp.llama_grammar import SchemaConverter, json_schema_to_gbnf

_LAZY_HEADER = "# ponder-lazy-trigger-tokens:"
_LAZY_LINE = re.compile(rf"^{re.escape(_LAZY_HEADER)}([0-9 ]*)\n")
# What the JSON after a tool's name looks like when its parameters give no schema.
_ANY_OBJECT: Mapping[str, Any] = {"type": "object"}


def schema_grammar(schema: Mapping[str, Any]) -> str:
    return str(json_schema_to_gbnf(json.dumps(schema)))


def tool_call_grammar(
    tools: Sequence[tuple[str, Mapping[str, Any] | None]],
    *,
    open_tag: str,
    close_tag: str,
    separator: str,
    parallel: bool,
) -> str:
    """A grammar for one call (or, when ``parallel``, one or more calls joined by
    ``separator``), each ``open_tag {"name": "<name>", "arguments": <args>} close_tag``, where
    ``<name>`` is one of ``tools`` and ``<args>`` follows that tool's parameter schema.

    The layout (key order, spacing) is the one chat templates render earlier calls in, so the
    model is steered to the form it was trained on. Raises ``ValueError`` (or what llama.cpp's
    converter raises) for a schema the converter does not support."""
    if not tools:
        raise ValueError("no tools to call")
    # The converter is llama-cpp-python's own (untyped), the one json_schema_to_gbnf uses;
    # one converter for every tool, so that JSON's primitive rules are written once.
    converter = SchemaConverter(  # type: ignore[no-untyped-call]
        prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False
    )
    alternatives = []
    for i, (name, schema) in enumerate(tools):
        prefix = f"tool{i}"
        resolved = converter.resolve_refs(_scoped_defs(dict(schema or _ANY_OBJECT), prefix), prefix)
        args = converter.visit(resolved, f"{prefix}-args")  # type: ignore[no-untyped-call]
        head = '{"name": ' + json.dumps(name, ensure_ascii=False) + ', "arguments": '
        alternatives.append(f"{_literal(head)} {args}")
    call = f"{_literal(open_tag)} ( {' | '.join(alternatives)} ) {_literal('}' + close_tag)}"
    root = f"tool-call ( {_literal(separator)} tool-call )*" if parallel else "tool-call"
    # The converter's own rules are named after the tools (tool<i>-...) and JSON's
    # primitives, so these two names are free.
    rules: str = converter.format_grammar()  # type: ignore[no-untyped-call]
    return f"root ::= {root}\ntool-call ::= {call}\n{rules}"


def lazy_grammar(grammar: str, trigger_tokens: Sequence[int]) -> str:
    """``grammar``, applied only once one of ``trigger_tokens`` is sampled (that token's
    text is then the first the grammar reads)."""
    if not trigger_tokens:
        raise ValueError("a lazy grammar needs a trigger token")
    tokens = " ".join(str(int(t)) for t in trigger_tokens)
    return f"{_LAZY_HEADER} {tokens}\n{grammar}"


def split_lazy(grammar: str) -> tuple[str, tuple[int, ...]]:
    """The grammar text and its trigger tokens; no tokens: the grammar applies throughout."""
    match = _LAZY_LINE.match(grammar)
    if match is None:
        return grammar, ()
    return grammar[match.end() :], tuple(int(t) for t in match.group(1).split())


def _literal(text: str) -> str:
    # GBNF string literals take JSON-style escapes for quotes, backslashes and newlines.
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


def _scoped_defs(schema: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The schema with its ``$defs`` / ``definitions`` renamed under ``prefix``: the
    converter names a referenced definition's rule by its last path segment, so two tools
    that each define an ``Item`` would otherwise share one rule."""
    renames: dict[str, str] = {}
    for section in ("$defs", "definitions"):
        defs = schema.get(section)
        if isinstance(defs, Mapping):
            for key in defs:
                renames[f"#/{section}/{key}"] = f"#/{section}/{prefix}-{key}"
            schema[section] = {f"{prefix}-{key}": value for key, value in defs.items()}

    def rewrite(node: Any) -> Any:
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        if isinstance(node, Mapping):
            out = {key: rewrite(value) for key, value in node.items()}
            ref = out.get("$ref")
            if isinstance(ref, str):
                for old, new in renames.items():
                    if ref == old or ref.startswith(old + "/"):
                        out["$ref"] = new + ref[len(old) :]
                        break
            return out
        return node

    result: dict[str, Any] = rewrite(schema)
    return result
