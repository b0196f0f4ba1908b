"""Tool-call markup of local models becomes OpenAI tool_calls."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from ponder.backends.base import ChoiceBuilder, collect
from ponder.backends.embedded import _PostProcessor
from ponder.backends.openai_wire import chat_params
from ponder.backends.remote import RemoteBackend, RemoteConfig
from ponder.backends.toolcalls import (
    HermesStream,
    merge_fragments,
    parse_hermes,
    parser_for_template,
    plan_tools,
    template_messages,
)
from ponder.engine.grammar import lazy_grammar, split_lazy, tool_call_grammar
from ponder.errors import InvalidRequestError
from ponder.protocol.chat import ChatCompletionRequest
from ponder.server.convert import to_generation_request
from ponder.types import Delta, GenerationRequest, Message
from tests.fake_openai import make_app, serve_app


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
    assert parser_for_template("... <tool_call> ...") is HermesStream
    assert parser_for_template("no tools here") is None
    assert parser_for_template(None) is None


# -- streaming: the parser on synthetic deltas ----------------------------------------

TWO_CALLS = (
    "Let me check.\n<tool_call>\n"
    '{"name": "weather", "arguments": {"city": "Os}lo\\"", "days": [1, {"a": 2}]}}'
    '\n</tool_call>\n<tool_call>\n{"name": "clock", "arguments": {}}\n</tool_call>'
)


def _pieces(text: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        k = rng.randint(1, 7)
        out.append(text[i : i + k])
        i += k
    return out


def _run(
    pieces: list[str], parallel: bool = True, bare_names: tuple[str, ...] = ()
) -> tuple[str, list[dict[str, Any]]]:
    stream = HermesStream(parallel=parallel, bare_names=bare_names)
    content, fragments = "", []
    for piece in pieces:
        shown, more = stream.feed(piece)
        assert "<" not in shown or "<tool_call>" not in content + shown
        content += shown
        fragments += more
    shown, more = stream.finish()
    return content + shown, fragments + more


@pytest.mark.parametrize("seed", range(40))
def test_calls_split_anywhere_stream_as_fragments(seed: int) -> None:
    content, fragments = _run(_pieces(TWO_CALLS, seed))
    assert content == "Let me check."
    # Each call's first fragment names it; its arguments come after, in pieces.
    firsts = [f for f in fragments if "id" in f]
    assert [(f["index"], f["function"]["name"]) for f in firsts] == [(0, "weather"), (1, "clock")]
    assert all(f["function"]["arguments"] == "" and f["type"] == "function" for f in firsts)
    assert all("id" not in f and "name" not in f["function"] for f in fragments if f not in firsts)
    calls = merge_fragments(fragments)
    assert json.loads(calls[0]["function"]["arguments"]) == {
        "city": 'Os}lo"',
        "days": [1, {"a": 2}],
    }
    assert calls[1]["function"]["arguments"] == "{}"


def test_content_streams_before_the_markup_and_a_partial_tag_is_held() -> None:
    stream = HermesStream()
    assert stream.feed("Checking <tool") == ("Checking", [])
    # "<tool" might open a call: held; it did not, so it is shown once that is known.
    assert stream.feed("s> are fun") == (" <tools> are fun", [])
    assert stream.finish() == ("", [])


def test_parallel_false_drops_what_follows_the_first_call() -> None:
    content, fragments = _run([TWO_CALLS])
    assert len(merge_fragments(fragments)) == 2
    content, fragments = _run([TWO_CALLS], parallel=False)
    assert content == "Let me check."
    assert [c["function"]["name"] for c in merge_fragments(fragments)] == ["weather"]


def test_other_layouts_and_cut_calls() -> None:
    content, calls = parse_hermes('<tool_call>{"arguments": {"a": 1}, "name": "x"}</tool_call>')
    assert content == "" and calls[0]["function"] == {"name": "x", "arguments": '{"a": 1}'}
    # Arguments written as a JSON string of JSON are sent as that JSON.
    _, calls = parse_hermes('<tool_call>{"name": "x", "arguments": "{\\"a\\": 1}"}</tool_call>')
    assert calls[0]["function"]["arguments"] == '{"a": 1}'
    # Cut short (max_tokens) after the name: the call, with its arguments as far as they got.
    content, calls = parse_hermes('<tool_call>\n{"name": "x", "arguments": {"a": ')
    assert content == "" and calls[0]["function"] == {"name": "x", "arguments": '{"a": '}
    # Cut before the name: not a call, shown as it was.
    assert parse_hermes('<tool_call>\n{"na') == ('<tool_call>\n{"na', [])


def test_the_post_processor_ends_a_call_reply_with_tool_calls() -> None:
    pieces = _pieces(TWO_CALLS, 3)
    deltas = [Delta(index=0, text=p) for p in pieces[:-1]]
    deltas.append(Delta(index=0, text=pieces[-1], finish_reason="stop", completion_tokens=40))
    streamed = _PostProcessor(1, True, False, whole_calls=False)
    out = [d for d in map(streamed, deltas) if d is not None]
    assert "".join(d.text for d in out) == "Let me check."
    assert out[-1].finish_reason == "tool_calls" and out[-1].completion_tokens == 40
    fragments = [f for d in out for f in d.tool_calls or ()]
    assert len(merge_fragments(fragments)) == 2
    # Not streamed: the calls come whole, on the last delta, as collect() keeps them.
    whole = _PostProcessor(1, True, False, whole_calls=True)
    out = [d for d in map(whole, deltas) if d is not None]
    assert all(d.tool_calls is None for d in out[:-1])
    assert [c["function"]["name"] for c in out[-1].tool_calls or ()] == ["weather", "clock"]
    # Cut by max_tokens, the reason stays "length".
    cut = _PostProcessor(1, True, False, whole_calls=True)
    last = cut(Delta(index=0, text=TWO_CALLS[:60], finish_reason="length", completion_tokens=9))
    assert last is not None and last.finish_reason == "length"


# -- bare JSON calls (tool_choice auto) ------------------------------------------------

NAMES = ("get_weather", "get_time")
BARE = '{"name": "get_weather", "arguments": {"city": "Pa}ris\\"", "days": [1, {"a": 2}]}}'
BARE_ARGUMENTS = {"city": 'Pa}ris"', "days": [1, {"a": 2}]}


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize(
    ("text", "after"),
    [
        (BARE, ""),
        ("\n  " + BARE + "\n", ""),
        ("```json\n" + BARE + "\n```", ""),
        ("```\n" + BARE + "\n```\n", ""),
        ("```json" + BARE + "```", ""),
    ],
)
def test_a_reply_that_is_one_bare_json_call_is_that_call(text: str, after: str, seed: int) -> None:
    stream = HermesStream(bare_names=NAMES)
    # Held while it may be a call, and that is the whole reply: nothing shows before the end.
    assert all(stream.feed(piece) == ("", []) for piece in _pieces(text, seed))
    content, fragments = stream.finish()
    assert content == after
    (call,) = merge_fragments(fragments)
    assert call["function"]["name"] == "get_weather" and call["id"].startswith("call_")
    assert json.loads(call["function"]["arguments"]) == BARE_ARGUMENTS
    # The OpenAI fragment order: the name first, with empty arguments; then the arguments.
    assert fragments[0]["function"] == {"name": "get_weather", "arguments": ""}


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize(
    "text",
    [
        '{"name": "launch_rocket", "arguments": {}}',  # not an offered tool
        '{"name": "get_weather", "arguments": "Paris"}',  # arguments not an object
        '{"arguments": {}, "name": "get_weather"}',  # name not first
        '{"name": "get_weather", "arguments": {"city": Paris}}',  # not JSON
        '{"name": "get_weather", "arguments": {"city": "Paris"',  # cut short
        '{"result": 42}',
        "```python\nprint(1)\n```",
        "Sure: " + BARE,  # not at the start
        BARE + "\nDone.",  # not the whole reply
        "```json\n" + BARE + "\n```\nDone.",
        BARE + '\n{"temperature_c": 17}',  # the call repeated after its result, then echoed
        "`code` and more",
        "",
    ],
)
def test_anything_else_stays_content(text: str, seed: int) -> None:
    assert _run(_pieces(text, seed), bare_names=NAMES) == (text, [])


def test_content_is_held_only_until_it_cannot_be_a_call() -> None:
    for pieces, shown_at in (
        (["Hel", "lo"], 0),
        (["```", "py", "thon"], 1),
        (["{", ' "na', "me", '": 1'], 3),
        (["{", '"name": "get_', "x"], 2),  # no offered tool starts with "get_x"
        (["{", '"name": "get_time"', ', "args"'], 2),
        (["[", "1]"], 0),
        ([BARE, "\n", " x"], 2),  # text after the object
    ):
        stream = HermesStream(bare_names=NAMES)
        outputs = [stream.feed(piece) for piece in pieces]
        assert all(out == ("", []) for out in outputs[:shown_at]), pieces
        assert outputs[shown_at][0] == "".join(pieces[: shown_at + 1]), pieces
        assert stream.finish()[1] == []


def test_a_bare_call_is_looked_for_only_when_names_are_given() -> None:
    assert _run([BARE]) == (BARE, [])
    assert parse_hermes(BARE, bare_names=NAMES)[1][0]["function"]["name"] == "get_weather"
    # Not a bare call after all: the reply is read as usual, its tagged call found.
    text = BARE + '\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
    content, fragments = _run(_pieces(text, 5), bare_names=NAMES)
    assert content == BARE
    assert [c["function"]["name"] for c in merge_fragments(fragments)] == ["get_time"]


def test_the_post_processor_takes_a_bare_call_only_on_auto() -> None:
    deltas = [Delta(index=0, text=p) for p in _pieces(BARE, 2)]
    deltas.append(Delta(index=0, finish_reason="stop", completion_tokens=20))
    auto = _PostProcessor(1, True, False, whole_calls=True, bare_names=NAMES)
    out = [d for d in map(auto, deltas) if d is not None]
    assert "".join(d.text for d in out) == "" and out[-1].finish_reason == "tool_calls"
    assert [c["function"]["name"] for c in out[-1].tool_calls or ()] == ["get_weather"]
    plain = _PostProcessor(1, True, False, whole_calls=True)
    out = [d for d in map(plain, deltas) if d is not None]
    assert "".join(d.text for d in out) == BARE and out[-1].finish_reason == "stop"


# -- streamed calls merged: the Backend seam ------------------------------------------


def test_the_choice_builder_merges_fragments_by_index() -> None:
    builder = ChoiceBuilder(2)
    head = {"index": 1, "id": "call_b", "type": "function", "function": {"name": "b"}}
    for delta in (
        Delta(index=0, tool_calls=({"index": 0, "id": "call_a", "function": {"name": "a"}},)),
        Delta(index=0, tool_calls=(head, {"index": 0, "function": {"arguments": '{"x"'}})),
        # A later fragment's id, type or name does not replace the first one's.
        Delta(index=0, tool_calls=({"index": 0, "id": "zz", "function": {"arguments": ": 1}"}},)),
        Delta(index=0, tool_calls=({"index": 1, "function": {"name": "zz", "arguments": "{}"}},)),
        # Whole calls without an index are numbered by their place in their delta.
        Delta(index=1, tool_calls=({"id": "c0", "function": {"name": "f", "arguments": "{}"}},)),
        Delta(index=1, finish_reason="tool_calls"),
    ):
        builder.add(delta)
    first, second = builder.choices(False)
    assert first.tool_calls == (
        {"id": "call_a", "type": "function", "function": {"name": "a", "arguments": '{"x": 1}'}},
        {"id": "call_b", "type": "function", "function": {"name": "b", "arguments": "{}"}},
    )
    assert second.tool_calls == (
        {"id": "c0", "type": "function", "function": {"name": "f", "arguments": "{}"}},
    )
    assert ChoiceBuilder(1).choices(False)[0].tool_calls is None


SPLIT_TOOLS = (
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
)


async def test_a_remote_stream_in_many_fragments_is_kept_whole() -> None:
    request = GenerationRequest(
        messages=(Message("user", "Weather and time in Oslo?"),), tools=SPLIT_TOOLS
    )
    with serve_app(make_app()) as url:
        remote = RemoteBackend(
            RemoteConfig(base_url=f"{url}/tools-split/v1", model="m", max_retries=0)
        )
        try:
            fragments = []
            stream = remote.stream(request)
            async for delta in stream:
                fragments += list(delta.tool_calls or ())
            # Drained through collect(), as generate() over a stream does.
            completion = await collect(remote.stream(request), request, remote.name)
            direct = await remote.generate(request)
        finally:
            await remote.aclose()
    assert len(fragments) > 10  # the endpoint really sent the arguments in pieces
    (choice,) = completion.choices
    assert choice.finish_reason == "tool_calls" and choice.tool_calls is not None
    calls = [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in choice.tool_calls
    ]
    question = "Weather and time in Oslo?"
    assert calls == [
        ("call_fake_1_0", "get_weather", {"question": question, "tool": 0}),
        ("call_fake_1_1", "get_time", {"question": question, "tool": 1}),
    ]
    # The same calls as the endpoint's own non-streamed reply.
    assert direct.choices[0].tool_calls is not None
    assert [dict(c) for c in direct.choices[0].tool_calls] == [dict(c) for c in choice.tool_calls]


def test_parallel_tool_calls_travels_typed_and_reaches_the_endpoint_as_sent() -> None:
    def converted(**fields: Any) -> GenerationRequest:
        wire = ChatCompletionRequest.model_validate(
            {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
        )
        return to_generation_request(wire, model="m")

    tools = [dict(t) for t in SPLIT_TOOLS]
    for sent in (False, True, None):
        request = converted(tools=tools, **({} if sent is None else {"parallel_tool_calls": sent}))
        assert request.parallel_tool_calls is sent and "parallel_tool_calls" not in request.extra
        params = chat_params(
            request, 1, model="m", extra_body={}, prefill=None, endpoint="e", count_tokens=False
        )
        # A top-level field of the body, as the client sent it; absent when it sent none.
        assert params.get("parallel_tool_calls", "absent") == ("absent" if sent is None else sent)
        assert "parallel_tool_calls" not in params.get("extra_body", {})
    # Without tools it means nothing (OpenAI refuses it there): not carried on.
    assert converted(parallel_tool_calls=False).parallel_tool_calls is None


async def test_the_remote_backend_sends_parallel_tool_calls_upstream() -> None:
    app = make_app()
    request = GenerationRequest(
        messages=(Message("user", "Oslo?"),), tools=SPLIT_TOOLS, parallel_tool_calls=False
    )
    with serve_app(app) as url:
        remote = RemoteBackend(RemoteConfig(base_url=f"{url}/tools/v1", model="m", max_retries=0))
        try:
            await remote.generate(request)
            await collect(remote.stream(request), request, remote.name)
        finally:
            await remote.aclose()
    bodies = [body for _, body in app.state.requests]
    assert len(bodies) == 2 and all(b["parallel_tool_calls"] is False for b in bodies)


# -- the request's side ---------------------------------------------------------------

TOOLS: tuple[dict[str, Any], ...] = (
    {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "b"}},
)


def test_tool_choice_plans() -> None:
    assert plan_tools(TOOLS, None).mode == "auto"
    assert plan_tools(None, None).mode == "none"
    assert plan_tools(TOOLS, "none").allowed == ()
    required = plan_tools(TOOLS, "required", parallel=False)
    assert required.mode == "required" and [n for n, _ in required.allowed] == ["a", "b"]
    assert not required.parallel
    named = plan_tools(TOOLS, {"type": "function", "function": {"name": "b"}})
    assert named.mode == "required" and named.allowed == (("b", None),)
    for tools, choice in (
        (TOOLS, {"type": "function", "function": {"name": "c"}}),
        (TOOLS, {"type": "function", "function": {}}),
        (None, "required"),
        (TOOLS, "sometimes"),
    ):
        with pytest.raises(InvalidRequestError):
            plan_tools(tools, choice)


def test_the_calls_grammar_scopes_each_tools_definitions() -> None:
    def tool(kind: str) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"item": {"$ref": "#/$defs/Item"}},
            "$defs": {"Item": {"type": "object", "properties": {"v": {"type": kind}}}},
        }

    grammar = tool_call_grammar(
        [("one", tool("integer")), ("two", tool("boolean"))],
        open_tag="<tool_call>\n",
        close_tag="\n</tool_call>",
        separator="\n",
        parallel=False,
    )
    rules = dict(line.split(" ::= ", 1) for line in grammar.splitlines())
    assert rules["root"] == "tool-call"
    assert (
        '"<tool_call>\\n"' in rules["tool-call"] and '"{\\"name\\": \\"two\\"' in rules["tool-call"]
    )
    # Both tools define an Item; each keeps its own.
    assert rules["tool0-Item-v-kv"].endswith(" integer")
    assert rules["tool1-Item-v-kv"].endswith(" boolean")
    lazy = lazy_grammar(grammar, [151657])
    assert split_lazy(lazy) == (grammar, (151657,)) and split_lazy(grammar) == (grammar, ())


def test_template_messages_decode_earlier_arguments() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    bad = {"id": "d", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    (message,) = template_messages([Message("assistant", "", tool_calls=(call, bad))])
    assert message.tool_calls is not None
    assert message.tool_calls[0]["function"]["arguments"] == {"x": 1}
    assert message.tool_calls[1] == bad
