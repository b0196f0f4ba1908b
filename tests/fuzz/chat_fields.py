"""Hypothesis strategies for the fields of a chat request, plausible and hostile.

Aimed at Ponder's own extensions: the ``ponder`` field (strategies named right and wrong,
parameters in and out of their range, non-finite and huge numbers, nested ``over`` chains,
unknown keys), the model-name strategy form ``ponder/<strategy>;k=v/<model>``, and odd
messages; under them, text with lone surrogates and control characters, and numbers and
JSON-like values at the edges. :mod:`tests.fuzz.chat_requests` puts them together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal, get_args, get_origin

from hypothesis import strategies as st

from ponder.reasoning.registry import BUILTIN

STRATEGY_NAMES = tuple(sorted(BUILTIN))
PARAM_NAMES = tuple(sorted({n for cls in BUILTIN.values() for n in cls.Params.model_fields}))
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
LITERALS = (
    *EFFORTS,
    "auto",
    "number",
    "choice",
    "yes_no",
    "text",
    "vote",
    "judge",
    "checker",
    "answers",
    "usc",
    "offline",
    "online",
    "beta",
    "dirichlet",
    "esc",
    "logprob",
)
SURROGATES = ("\ud800", "\udbff", "\udc00", "\udfff")
ODD_TEXT = (
    "",
    " ",
    "\x00",
    "null",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "ponder/",
    "/",
    ";",
    "=",
    "#",
    "%00",
    "\u202e",
    "\ufeff",
    "😀",
    "é",
    *SURROGATES,
)


def texts(max_size: int = 24) -> st.SearchStrategy[str]:
    """Text with lone surrogates, control characters and every plane."""
    alphabet = st.one_of(st.characters(), st.sampled_from((*SURROGATES, "\x00", "\n", '"')))
    return st.one_of(st.sampled_from(ODD_TEXT), st.text(alphabet, max_size=max_size))


def long_text() -> st.SearchStrategy[str]:
    return st.builds(
        lambda n, c: c * n, st.sampled_from([257, 1025, 5000, 70_000]), st.sampled_from("mé😀")
    )


HUGE = (0, -1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, 10**300)
odd_numbers = st.one_of(
    st.integers(-3, 70),
    st.sampled_from(HUGE),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, 1e-320, 1e308, -0.0, float("nan"), float("inf"), -float("inf")]),
)
odd_scalars = st.one_of(st.none(), st.booleans(), odd_numbers, texts())
odd_values = st.recursive(
    odd_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(texts(8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _bounds(info: Any) -> tuple[float | None, float | None, bool, bool]:
    """A parameter's (low, high, low exclusive, high exclusive) from its field metadata."""
    low = high = None
    low_open = high_open = False
    for item in info.metadata:
        if getattr(item, "ge", None) is not None:
            low = item.ge
        if getattr(item, "gt", None) is not None:
            low, low_open = item.gt, True
        if getattr(item, "le", None) is not None:
            high = item.le
        if getattr(item, "lt", None) is not None:
            high, high_open = item.lt, True
    return low, high, low_open, high_open


def _plausible(info: Any) -> st.SearchStrategy[Any]:
    """A value a parameter accepts, small where it is a count (so that a strategy that runs
    stays cheap against the fake endpoint)."""
    annotation = info.annotation
    args = [a for a in get_args(annotation) if a is not type(None)]
    low, high, low_open, high_open = _bounds(info)
    if get_origin(annotation) is Literal:
        return st.sampled_from(get_args(annotation))
    if annotation is int or int in args:
        start = int(low) if low is not None else 1
        stop = start + 2 if high is None else min(int(high), start + 2)
        return st.integers(start, stop)
    if annotation is float or float in args:
        return st.floats(
            min_value=low if low is not None else 0.0,
            max_value=high if high is not None else 2.0,
            exclude_min=low_open,
            exclude_max=high_open,
        )
    if get_origin(annotation) is list or any(get_origin(a) is list for a in args):
        return st.lists(st.sampled_from(["m", "l", "remote/m"]), min_size=1, max_size=2)
    return st.sampled_from(["Wait", "medium", "m", "Check the arithmetic."])


def _hostile_for(info: Any) -> st.SearchStrategy[Any]:
    """A value a parameter should refuse: out of its range, non-finite, huge, mistyped; or
    an in-range extreme (the most work a request may ask for)."""
    low, high, _, _ = _bounds(info)
    edges = [v for v in (low, high) if v is not None]
    outside = [*(e - 1 for e in edges[:1]), *(e + 1 for e in edges[1:])]
    return st.one_of(
        st.sampled_from(outside or [-1]),
        st.sampled_from(edges or [0]),
        st.sampled_from(HUGE),
        st.sampled_from([float("nan"), float("inf"), -float("inf"), "1", "", None, True, [], {}]),
        odd_values,
    )


# Each strategy's parameters, by name.
PARAMS = MappingProxyType(
    {name: MappingProxyType(dict(cls.Params.model_fields)) for name, cls in BUILTIN.items()}
)
# Cheap enough to run many times against the fake endpoint (no judge, no program, no
# proposers on other models).
CHEAP = ("cot", "self-consistency", "best-of-n", "step-back", "plan-solve", "adaptive-consistency")


@st.composite
def ponder_specs(draw: st.DrawFn, depth: int = 2, hostile: bool = False) -> Any:
    """The ``ponder`` field. Plausible: a known strategy with parameters it accepts, small
    counts, ``over`` at most ``depth`` deep. Hostile: any name (wrong case, unknown, not a
    string, missing), parameters out of range, non-finite, huge or mistyped, unknown keys,
    and ``over`` chains past the server's bound of 4."""
    if hostile:
        name = draw(
            st.one_of(
                st.sampled_from(STRATEGY_NAMES),
                st.sampled_from(STRATEGY_NAMES).map(str.upper),
                texts(),
                odd_values,
                st.none(),
            )
        )
    else:
        name = draw(st.sampled_from(CHEAP * 3 + tuple(STRATEGY_NAMES)))
    spec: dict[str, Any] = {} if name is None else {"strategy": name}
    fields: Mapping[str, Any] = PARAMS.get(name, {}) if isinstance(name, str) else {}
    chosen = st.lists(st.sampled_from(sorted(fields) or ["n"]), max_size=2, unique=True)
    for param in draw(chosen):
        info = fields.get(param)
        if info is None:
            spec[param] = draw(odd_values)
        elif hostile and draw(st.booleans()):
            spec[param] = draw(_hostile_for(info))
        else:
            spec[param] = draw(_plausible(info))
    if hostile and draw(st.sampled_from([False] * 3 + [True])):  # a key no strategy has
        spec[draw(st.one_of(st.sampled_from(PARAM_NAMES), texts(10)))] = draw(odd_values)
    if depth > 0 and draw(st.sampled_from([False, False, True])):
        inner = ponder_specs(depth - 1, hostile=hostile)
        spec["over"] = draw(st.one_of(inner, odd_values) if hostile else inner)
    return spec


def _form_value(value: Any) -> str:
    """A value as the model-name form writes it (``n=3``, ``models=m,l``)."""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return json.dumps(value) if not isinstance(value, str) else value


@st.composite
def plausible_forms(draw: st.DrawFn) -> str:
    """``ponder/<strategy>[;k=v...]/<model>`` as a client would write it."""
    name = draw(st.sampled_from(CHEAP * 3 + tuple(STRATEGY_NAMES)))
    fields = PARAMS[name]
    pairs = []
    for param in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2, unique=True)):
        pairs.append(f";{param}={_form_value(draw(_plausible(fields[param])))}")
    model = draw(st.sampled_from(["m", "m", "l", "remote/m", "m#tag"]))
    return f"ponder/{name}{''.join(pairs)}/{model}"


def hostile_forms() -> st.SearchStrategy[str]:
    """The model-name form with odd keys, values and models."""
    key = st.one_of(st.sampled_from(PARAM_NAMES), texts(8))
    value = st.one_of(
        st.sampled_from(
            [
                "1",
                "0",
                "-1",
                "64",
                "65",
                "NaN",
                "Infinity",
                "-Infinity",
                "1e999",
                "99999999999999999999999",
                "9" * 5000,
                "true",
                "null",
                "[1,2]",
                "{}",
                '{"strategy":"cot"}',
                "a,b,",
                ",",
                '"x"',
                "",
                "m,l",
                "\\ud800",
                '"\\ud800"',
                "[" * 3000,
            ]
        ),
        st.sampled_from(LITERALS),
        texts(12),
    )
    pair = st.one_of(
        st.builds(lambda k, v: f"{k}={v}", key, value),
        texts(6),
        st.sampled_from(["=1", "k", ""]),
    )
    name = st.one_of(st.sampled_from(STRATEGY_NAMES), texts(12))
    base = st.one_of(st.sampled_from(["m", "l", "nope", "remote/m", "", "m/x"]), texts(12))
    return st.builds(
        lambda n, pairs, b: f"ponder/{n}{''.join(';' + p for p in pairs)}/{b}",
        name,
        st.lists(pair, max_size=3),
        base,
    )


PLAIN_MODELS = ("m", "m", "m", "l", "m#tag", "remote/m", "onprem/l")
ODD_MODELS = (
    "nope",
    "M",
    " m",
    "m#",
    "ponder",
    "ponder/",
    "ponder//m",
    "ponder/cot/",
    "ponder/cot",
    "/",
    "#",
)


def hostile_models() -> st.SearchStrategy[Any]:
    return st.one_of(
        hostile_forms(),
        st.sampled_from(ODD_MODELS),
        texts(),
        long_text(),
        long_text().map(lambda t: f"ponder/cot/{t}"),
        long_text().map(lambda t: f"ponder/{t}/m"),
        long_text().map(lambda t: f"m#{t}"),
        odd_values,
    )


def content_parts() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries({"type": st.just("text"), "text": texts()}),
        st.fixed_dictionaries(
            {
                "type": st.just("image_url"),
                "image_url": st.one_of(st.fixed_dictionaries({"url": texts()}), odd_values),
            }
        ),
        st.dictionaries(
            st.sampled_from(["type", "text", "image_url", "input_audio"]), odd_values, max_size=3
        ),
        odd_values,
    )


def tool_calls() -> st.SearchStrategy[Any]:
    call = st.fixed_dictionaries(
        {
            "id": texts(),
            "type": st.one_of(st.just("function"), texts()),
            "function": st.one_of(
                st.fixed_dictionaries(
                    {
                        "name": texts(),
                        "arguments": st.one_of(texts(), st.just('{"a": 1}'), odd_values),
                    }
                ),
                odd_values,
            ),
        }
    )
    return st.one_of(st.lists(call, max_size=2), odd_values)


def question() -> dict[str, Any]:
    """The user's message of a normal request."""
    return {"role": "user", "content": "What is 6 times 7?"}


def conversation() -> list[dict[str, Any]]:
    """A conversation with a system prompt, a tool call and its result, and content parts."""
    return [
        {"role": "system", "content": "Be brief."},
        question(),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        {"role": "user", "content": [{"type": "text", "text": "So?"}]},
    ]


def hostile_messages() -> st.SearchStrategy[Any]:
    """Messages with odd roles, content of every type, tool calls right and wrong, keys
    nobody knows; or not a list of messages at all."""
    role = st.one_of(
        st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"]),
        st.sampled_from(["", "User", "bot", "ipython"]),
        odd_values,
    )
    content = st.one_of(texts(), st.none(), st.lists(content_parts(), max_size=3), odd_values)
    message = st.fixed_dictionaries(
        {"role": role, "content": content},
        optional={
            "name": st.one_of(texts(), odd_values),
            "tool_calls": tool_calls(),
            "tool_call_id": st.one_of(texts(), odd_values),
            "reasoning_content": st.one_of(texts(), odd_values),
            "extra": odd_values,
        },
    )
    return st.one_of(st.lists(st.one_of(message, odd_values), min_size=1, max_size=4), odd_values)
