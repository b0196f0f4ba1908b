"""JSON schemas to llama.cpp grammars (GBNF), for output constrained to a schema."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from llama_cpp.llama_grammar import json_schema_to_gbnf


def schema_grammar(schema: Mapping[str, Any]) -> str:
    return str(json_schema_to_gbnf(json.dumps(schema)))
