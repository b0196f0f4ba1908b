"""Tool calling on the embedded engine, driven by the real openai SDK against a served app.

The model is Qwen2.5-Coder-0.5B: weak, so structure is asserted where a grammar holds it
(``required`` or a named tool); ``auto`` is checked for what it must not do (call or leak
markup on small talk), for the bare-JSON call this model writes instead of its template's
tags, and its parsing through synthetic deltas in test_toolcalls.py.

Also here, with no model: a remote reply whose calls stream in many fragments is stored
whole by the Responses API (tests/fake_openai.py's ``tools-split`` profile), and the examples
of docs/agents.md run as written.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from ponder.backends.embedded import EmbeddedBackend
from ponder.backends.toolcalls import template_messages
from ponder.config import PonderConfig, ProviderConfig
from ponder.routing.registry import BackendRegistry
from ponder.server.app import create_app
from ponder.server.convert import to_chunk
from ponder.types import Delta, Message
from tests.fake_openai import make_app, serve_app

MODEL = "qwen"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the local time in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TOOLS: list[Any] = [WEATHER, TIME]
ASK: list[Any] = [{"role": "user", "content": "What is the weather in Paris, in celsius?"}]
BOTH: list[Any] = [
    {"role": "user", "content": "What is the weather in Paris and the time in Rome?"}
]


@pytest.fixture(scope="module")
def server(small_backend: EmbeddedBackend) -> Iterator[str]:
    registry = BackendRegistry(
        PonderConfig(default_model=MODEL, max_n=8, trace_db=":memory:", default_strategy=None)
    )
    registry.register(MODEL, small_backend)
    with serve_app(create_app(registry.config, registry=registry, close_backends=False)) as url:
        yield url


@pytest.fixture
def client(server: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0) as c:
        yield c


def _valid_arguments(name: str, arguments: str) -> dict[str, Any]:
    """The arguments, checked against the tool's schema (what the grammar guarantees)."""
    args = json.loads(arguments)
    assert isinstance(args, dict)
    if name == "get_weather":
        assert set(args) == {"city", "unit"} and args["unit"] in ("celsius", "fahrenheit")
    else:
        assert name == "get_time" and set(args) == {"city"}
    assert isinstance(args["city"], str)
    return args


def _collect(stream: Any) -> tuple[str, dict[int, dict[str, Any]], list[str | None], Any]:
    """Content, calls assembled by index (asserting the OpenAI fragment order), finish
    reasons and usage of a streamed reply."""
    content = ""
    calls: dict[int, dict[str, Any]] = {}
    finishes: list[str | None] = []
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            finishes.append(choice.finish_reason)
            for part in choice.delta.tool_calls or []:
                if part.index not in calls:
                    # The first fragment of a call names it; arguments come after.
                    assert part.id and part.type == "function" and part.function
                    assert part.function.name
                    calls[part.index] = {"id": part.id, "name": part.function.name, "args": ""}
                else:
                    assert part.id is None and (part.function is None or not part.function.name)
                if part.function and part.function.arguments:
                    calls[part.index]["args"] += part.function.arguments
    return content, calls, finishes, usage


def test_required_gives_a_call_that_follows_the_schema(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=64,
        temperature=0, parallel_tool_calls=False,
    )  # fmt: skip
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and calls[0].id.startswith("call_") and calls[0].type == "function"
    args = _valid_arguments(calls[0].function.name, calls[0].function.arguments)
    assert calls[0].function.name == "get_weather" and args["city"] == "Paris"
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 64
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_a_named_tool_is_the_one_called(client: openai.OpenAI) -> None:
    # The question is about the weather; the choice forces the other tool.
    reply = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, max_tokens=48, temperature=0,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )  # fmt: skip
    calls = reply.choices[0].message.tool_calls or []
    assert calls and all(c.type == "function" for c in calls)
    for call in calls:
        assert call.type == "function" and call.function.name == "get_time"
        _valid_arguments(call.function.name, call.function.arguments)
    assert reply.choices[0].finish_reason == "tool_calls"


def test_parallel_calls_stream_as_openai_deltas(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=BOTH, tools=TOOLS, tool_choice="required", max_tokens=96,
        temperature=0, stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    content, calls, finishes, usage = _collect(stream)
    assert content == ""  # the markup never leaks into the content
    assert sorted(calls) == list(range(len(calls))) and len(calls) >= 2
    assert len({c["id"] for c in calls.values()}) == len(calls)
    for call in calls.values():
        _valid_arguments(call["name"], call["args"])
    assert {c["name"] for c in calls.values()} == {"get_weather", "get_time"}
    assert [f for f in finishes if f] == ["tool_calls"]
    assert usage is not None and usage.completion_tokens <= 96


def test_parallel_tool_calls_false_stops_after_one_call(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=BOTH, tools=TOOLS, tool_choice="required", max_tokens=96,
        temperature=0, stream=True, parallel_tool_calls=False,
        stream_options={"include_usage": True},
    )  # fmt: skip
    content, calls, finishes, usage = _collect(stream)
    assert content == "" and list(calls) == [0]
    _valid_arguments(calls[0]["name"], calls[0]["args"])
    assert [f for f in finishes if f] == ["tool_calls"]
    # The grammar ends the reply after one call: no tokens are spent on a second one.
    assert usage is not None and usage.completion_tokens < 48


def test_none_renders_no_tools(client: openai.OpenAI) -> None:
    with_tools = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=48,
        temperature=0,
    )  # fmt: skip
    reply = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, tool_choice="none", max_tokens=48, temperature=0
    )
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content and reply.choices[0].finish_reason != "tool_calls"
    assert reply.usage is not None and with_tools.usage is not None
    # The tool definitions are not in the prompt at all.
    assert reply.usage.prompt_tokens < with_tools.usage.prompt_tokens - 100


def test_auto_answers_small_talk_with_text(client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Hi! How are you?"}]
    reply = client.chat.completions.create(
        model=MODEL, messages=messages, tools=TOOLS, tool_choice="auto", max_tokens=48,
        temperature=0,
    )  # fmt: skip
    choice = reply.choices[0]
    assert choice.message.tool_calls is None and choice.finish_reason in ("stop", "length")
    assert choice.message.content and "<tool_call>" not in choice.message.content
    stream = client.chat.completions.create(
        model=MODEL, messages=messages, tools=TOOLS, max_tokens=48, temperature=0, stream=True
    )
    content, calls, _, _ = _collect(stream)
    assert content == choice.message.content and not calls


def test_auto_takes_the_bare_json_call_the_model_writes(client: openai.OpenAI) -> None:
    # Qwen2.5 0.5B answers these with {"name": ..., "arguments": ...} (the second inside a
    # ```json fence), not in <tool_call> tags: without the bare-JSON reading, content.
    plain: list[Any] = [{"role": "user", "content": "What is the weather in Paris? Use the tool."}]
    fenced: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    reply = client.chat.completions.create(
        model=MODEL, messages=plain, tools=TOOLS, tool_choice="auto", max_tokens=64,
        temperature=0,
    )  # fmt: skip
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert _valid_arguments(call.function.name, call.function.arguments)["city"] == "Paris"
    stream = client.chat.completions.create(
        model=MODEL, messages=fenced, tools=TOOLS, max_tokens=64, temperature=0, stream=True
    )
    content, calls, finishes, _ = _collect(stream)
    assert content == "" and list(calls) == [0]  # no fence or JSON leaks into the content
    assert calls[0]["name"] == "get_weather"
    assert _valid_arguments("get_weather", calls[0]["args"])["city"] == "Paris"
    assert [f for f in finishes if f] == ["tool_calls"]


def test_a_named_tool_not_in_tools_is_a_400_before_any_token(
    client: openai.OpenAI, server: str
) -> None:
    before = httpx.get(f"{server}/v1/usage").json().get(MODEL)
    cases: list[tuple[Any, Any]] = [
        ({"type": "function", "function": {"name": "launch_rocket"}}, TOOLS),
        ("required", None),
    ]
    for choice, tools in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model=MODEL, messages=ASK, tools=tools, tool_choice=choice, max_tokens=8
            )
        assert caught.value.status_code == 400
        assert "tool_choice" in str(caught.value)
    assert httpx.get(f"{server}/v1/usage").json().get(MODEL) == before


def test_a_tool_result_turn_is_rendered_and_answered(
    client: openai.OpenAI, small_backend: EmbeddedBackend
) -> None:
    first = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=64,
        temperature=0, parallel_tool_calls=False,
    )  # fmt: skip
    call = (first.choices[0].message.tool_calls or [])[0]
    assert call.type == "function"
    turn: list[Any] = [
        *ASK,
        first.choices[0].message.model_dump(exclude_none=True),
        {
            "role": "tool",
            "tool_call_id": call.id,
            "content": '{"temperature_c": 17, "sky": "rain"}',
        },
    ]
    reply = client.chat.completions.create(
        model=MODEL, messages=turn, tools=TOOLS, max_tokens=64, temperature=0
    )
    choice = reply.choices[0]
    assert choice.message.tool_calls is None and choice.message.content
    assert "17" in choice.message.content
    # The earlier call is rendered as the template's own markup, its arguments as an
    # object (not a quoted JSON string), and the result as a tool response.
    messages = (
        Message("user", ASK[0]["content"]),
        Message("assistant", "", tool_calls=(call.model_dump(),)),
        Message("tool", turn[2]["content"], tool_call_id=call.id),
    )
    prompt = small_backend.model.render_chat(template_messages(messages), tools=TOOLS)
    assert f'"name": "get_weather", "arguments": {call.function.arguments}}}' in prompt
    assert '<tool_response>\n{"temperature_c": 17, "sky": "rain"}\n</tool_response>' in prompt


def test_a_chunk_keeps_the_index_of_its_call() -> None:
    fragment = {"index": 1, "function": {"arguments": '"Rome"}'}}
    chunk = to_chunk(
        Delta(index=0, tool_calls=(fragment,)), request_id="x", model="m", with_logprobs=False
    )
    assert chunk.choices[0].delta.tool_calls == [fragment]
    whole = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    chunk = to_chunk(
        Delta(index=0, tool_calls=(whole, whole)), request_id="x", model="m", with_logprobs=False
    )
    assert [c["index"] for c in chunk.choices[0].delta.tool_calls or []] == [0, 1]


# -- no model: a remote reply streamed in many fragments ------------------------------------
def test_a_streamed_remote_call_in_many_fragments_is_stored_whole(tmp_path: Any) -> None:
    tools: list[Any] = [
        {"type": "function", "name": name, "parameters": {"type": "object"}}
        for name in ("get_weather", "get_time")
    ]
    with serve_app(make_app()) as upstream:
        config = PonderConfig(
            default_model="split-model",
            default_strategy=None,
            database_url=f"sqlite:///{tmp_path / 'ponder.sqlite3'}",
            providers=(
                ProviderConfig(
                    name="up", base_url=f"{upstream}/tools-split/v1", models=("split-model",)
                ),
            ),
        )
        with (
            serve_app(create_app(config)) as url,
            openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as sdk,
        ):
            with sdk.responses.stream(model="split-model", input="Oslo?", tools=tools) as stream:
                deltas = [e for e in stream if e.type == "response.function_call_arguments.delta"]
                final = stream.get_final_response()
            stored = sdk.responses.retrieve(final.id)
    assert len(deltas) > 10  # the arguments really came in pieces
    for response in (final, stored):
        calls = [
            (item.name, json.loads(item.arguments))
            for item in response.output
            if item.type == "function_call"
        ]
        assert calls == [
            ("get_weather", {"question": "Oslo?", "tool": 0}),
            ("get_time", {"question": "Oslo?", "tool": 1}),
        ]


DOCS = Path(__file__).resolve().parents[1] / "docs" / "agents.md"


def test_the_examples_in_docs_agents_md_run(tmp_path: Any) -> None:
    pytest.importorskip("agents")
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert len(blocks) == 2
    with serve_app(make_app()) as upstream:
        config = PonderConfig(
            default_model="qwen",
            default_strategy=None,
            database_url=f"sqlite:///{tmp_path / 'ponder.sqlite3'}",
            providers=(
                ProviderConfig(name="up", base_url=f"{upstream}/tools-args/v1", models=("qwen",)),
            ),
        )
        with serve_app(create_app(config)) as url:
            for block in blocks:
                printed = io.StringIO()
                code = block.replace("http://localhost:8000/v1", f"{url}/v1")
                with contextlib.redirect_stdout(printed):
                    exec(compile(code, str(DOCS), "exec"), {"__name__": "__docs__"})
                # The fake model called the tool with the question as its city, then
                # answered with what the tool said: both turns ran.
                assert printed.getvalue().startswith("Tool said: 18C and sunny in What is")
