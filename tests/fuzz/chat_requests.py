"""Hostile ``POST /v1/chat/completions`` requests, as the bytes and headers sent.

:func:`chat_cases` starts from a plausible request (Ponder's own extensions the most often),
makes none, one or two of its fields hostile (the strategies of :mod:`tests.fuzz.chat_fields`),
then encodes it one of several ways or mangles it (invalid JSON, invalid Unicode, nesting
past the parser's recursion limit, a number past Python's digit limit), with odd
``Content-Type``, ``Authorization`` and ``X-Ponder-Local-Only`` headers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import groupby
from types import MappingProxyType
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.chat_fields import (
    EFFORTS,
    HUGE,
    PLAIN_MODELS,
    conversation,
    hostile_messages,
    hostile_models,
    odd_numbers,
    odd_values,
    plausible_forms,
    ponder_specs,
    question,
    texts,
)
from tests.fuzz.server import ADMIN

TOOLS = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": st.sampled_from(["f", "lookup"])},
                optional={"parameters": st.just({"type": "object"})},
            ),
        }
    ),
    min_size=1,
    max_size=2,
)
# Each field: a value it accepts, and odd_values it must refuse (or extremes it must bear).
PLAUSIBLE: Mapping[str, st.SearchStrategy[Any]] = MappingProxyType(
    {
        "model": st.one_of(st.sampled_from(PLAIN_MODELS), plausible_forms()),
        "messages": st.sampled_from([[question()], [question()], conversation()]),
        "ponder": ponder_specs(),
        "reasoning_effort": st.sampled_from(EFFORTS),
        "stream": st.booleans(),
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
        "n": st.integers(1, 3),
        "max_tokens": st.integers(1, 64),
        "max_completion_tokens": st.integers(1, 64),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0.01, 1),
        "seed": st.integers(-(2**63), 2**63 - 1),
        "stop": st.lists(texts(), max_size=3),
        "logprobs": st.booleans(),
        "top_logprobs": st.integers(0, 5),
        "tools": TOOLS,
        "tool_choice": st.sampled_from(["none", "auto", "required"]),
        "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
        "metadata": st.dictionaries(texts(8), texts(8), max_size=2),
        "user": texts(),
        "top_k": st.integers(0, 50),
        "min_p": st.floats(0, 1),
        "repeat_penalty": st.floats(0.5, 2),
        "logit_bias": st.dictionaries(
            st.sampled_from(["1", "42"]), st.floats(-100, 100), max_size=2
        ),
    }
)
COUNTS = st.one_of(st.integers(-1, 9), st.sampled_from(HUGE), odd_numbers, odd_values)
HOSTILE: Mapping[str, st.SearchStrategy[Any]] = MappingProxyType(
    {
        "model": hostile_models(),
        "messages": hostile_messages(),
        "ponder": st.one_of(ponder_specs(6, hostile=True), odd_values),
        "reasoning_effort": st.one_of(texts(), odd_values),
        "stream": odd_values,
        "stream_options": odd_values,
        "n": COUNTS,
        "max_tokens": COUNTS,
        "max_completion_tokens": COUNTS,
        "temperature": st.one_of(odd_numbers, odd_values),
        "top_p": st.one_of(odd_numbers, odd_values),
        "seed": st.one_of(st.sampled_from(HUGE), odd_values),
        "stop": st.one_of(st.lists(texts(), min_size=17, max_size=20), odd_values),
        "logprobs": odd_values,
        "top_logprobs": COUNTS,
        "tools": st.one_of(st.lists(odd_values, min_size=1, max_size=2), odd_values),
        "tool_choice": odd_values,
        "response_format": st.one_of(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["text", "json_object", "json_schema"])},
                optional={"json_schema": odd_values},
            ),
            odd_values,
        ),
        "metadata": odd_values,
        "user": odd_values,
        "top_k": COUNTS,
        "min_p": st.one_of(odd_numbers, odd_values),
        "repeat_penalty": st.one_of(odd_numbers, odd_values),
        "logit_bias": odd_values,
        "models": odd_values,
        "route": odd_values,
        "x_unknown": odd_values,
    }
)
# Ponder's own extensions, and the fields they meet, come up the most often.
OURS = ("model", "ponder", "reasoning_effort", "stream", "n", "max_tokens", "messages")


@st.composite
def bodies(draw: st.DrawFn) -> Any:
    """A request body as JSON data: a plausible request (a model, plain or in the strategy
    form, a question, and some of the other fields, Ponder's own extensions the most often),
    then none, one or two of its fields made hostile; or a body missing ``model`` or
    ``messages``, or not an object at all."""
    shape = draw(st.sampled_from(["object"] * 20 + ["no model", "no messages", "not an object"]))
    if shape == "not an object":
        return draw(odd_values)
    body: dict[str, Any] = {}
    if shape != "no model":
        body["model"] = draw(PLAUSIBLE["model"])
    if shape != "no messages":
        body["messages"] = draw(PLAUSIBLE["messages"])
    names = st.one_of(st.sampled_from(OURS[1:]), st.sampled_from(sorted(PLAUSIBLE)))
    for name in draw(st.lists(names, max_size=3, unique=True)):
        body[name] = draw(PLAUSIBLE[name])
    mutations = draw(st.sampled_from([0, 0, 1, 1, 1, 2]))
    targets = st.one_of(st.sampled_from(OURS), st.sampled_from(sorted(HOSTILE)))
    for name in draw(st.lists(targets, min_size=mutations, max_size=mutations, unique=True)):
        body[name] = draw(HOSTILE[name])
    return body


@dataclass(frozen=True)
class ChatCase:
    """One request, as the bytes and headers sent."""

    body: bytes
    headers: tuple[tuple[str, bytes], ...]
    how: str  # how the body was made: "json", "utf-16", "truncated", "deep nesting", ...

    def reproduction(self, limit: int = 3000) -> str:
        shown = repr(self.body) if len(self.body) <= limit else _long_repr(self.body)
        headers = dict(self.headers)
        return (
            f"# {self.how}\nhttpx.post(PONDER + '/v1/chat/completions', "
            f"headers={headers!r}, content={shown})"
        )


def _long_repr(raw: bytes) -> str:
    """A long body written as the expression that makes it, where it repeats."""
    parts: list[str] = []
    plain = b""
    for byte, run in groupby(raw):
        n = len(list(run))
        if n >= 32:
            if plain:
                parts.append(repr(plain))
                plain = b""
            parts.append(f"{bytes([byte])!r} * {n}")
        else:
            plain += bytes([byte]) * n
    if plain:
        parts.append(repr(plain))
    text = " + ".join(parts)
    return text if len(text) < 6000 else text[:6000] + f" ...  # {len(raw)} bytes in all"


def normal_body() -> dict[str, Any]:
    """A request every server should answer: a plain question to ``m``, a few tokens long."""
    return {"model": "m", "messages": [question()], "max_tokens": 5}


@st.composite
def chat_cases(draw: st.DrawFn) -> ChatCase:
    """A hostile chat request: a body from :func:`bodies`, encoded one of several ways (or
    mangled: cut short, a byte flipped, nested past the parser's recursion limit, a number
    past Python's digit limit), with odd headers."""
    data = draw(bodies())
    how = draw(
        st.sampled_from(
            ["json"] * 30
            + ["utf-8 raw", "utf-16", "utf-32", "bom", "truncated", "flipped byte"]
            + ["deep nesting", "huge number", "empty", "trailing garbage", "duplicate keys"]
        )
    )
    if how == "json":
        raw = json.dumps(data, allow_nan=True).encode()
    elif how == "utf-8 raw":  # lone surrogates become invalid UTF-8
        raw = json.dumps(data, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")
    elif how in ("utf-16", "utf-32"):
        raw = json.dumps(data, allow_nan=True).encode(how)
    elif how == "bom":
        raw = b"\xef\xbb\xbf" + json.dumps(data, allow_nan=True).encode()
    elif how == "truncated":
        full = json.dumps(data, allow_nan=True).encode()
        raw = full[: draw(st.integers(0, max(0, len(full) - 1)))]
    elif how == "flipped byte":
        full = bytearray(json.dumps(data, allow_nan=True).encode())
        at = draw(st.integers(0, len(full) - 1))
        full[at] = draw(st.integers(0, 255))
        raw = bytes(full)
    elif how == "deep nesting":
        depth = draw(st.sampled_from([100, 999, 1001, 5000, 100_000]))
        where = draw(st.sampled_from(["messages", "ponder", "metadata", "x_unknown"]))
        nested = "[" * depth + "]" * depth
        rest = {k: v for k, v in normal_body().items() if k != where}
        raw = (json.dumps(rest)[:-1] + f', "{where}": {nested}}}').encode()
    elif how == "huge number":
        digits = draw(st.sampled_from([20, 400, 4300, 4301, 50_000]))
        where = draw(st.sampled_from(["max_tokens", "n", "seed", "temperature", "x_unknown"]))
        rest = {k: v for k, v in normal_body().items() if k != where}
        raw = (json.dumps(rest)[:-1] + f', "{where}": {"9" * digits}}}').encode()
    elif how == "empty":
        raw = b""
    elif how == "trailing garbage":
        raw = json.dumps(data, allow_nan=True).encode() + draw(
            st.sampled_from([b"x", b"\x00", b"}", b" "])
        )
    else:  # duplicate keys: the last one wins in Python's parser
        raw = (
            (json.dumps(normal_body())[:-1] + ", " + json.dumps(data, allow_nan=True)[1:]).encode()
            if isinstance(data, dict) and data
            else json.dumps(data).encode()
        )
    headers: list[tuple[str, bytes]] = []
    content_type = draw(
        st.sampled_from(
            [b"application/json"] * 40
            + [
                None,
                b"text/plain",
                b"application/json; charset=utf-16",
                b"application/vnd.api+json",
                b"APPLICATION/JSON",
                b"application/x-www-form-urlencoded",
                b"multipart/form-data; boundary=x",
                b"application/json;;;",
                b"application/\xff",
            ]
        )
    )
    if content_type is not None:
        headers.append(("content-type", content_type))
    auth = draw(
        st.sampled_from(
            [f"Bearer {ADMIN}".encode()] * 20
            + [None, b"Bearer wrong", b"Basic Zm9vOmJhcg==", b"Bearer", b"bearer " + ADMIN.encode()]
            + [b"Bearer " + b"x" * 9000, b"Bearer \xff\xfe"]
        )
    )
    if auth is not None:
        headers.append(("authorization", auth))
    local_only = draw(
        st.sampled_from(
            [None] * 20
            + [b"true", b"1", b"yes", b"no", b"false", b"", b"maybe", b"TRUE", b"\xff", b"2"]
            + [b"tru\xc3\xa9", b"true, false"]
        )
    )
    if local_only is not None:
        headers.append(("x-ponder-local-only", local_only))
    return ChatCase(raw, tuple(headers), how)
