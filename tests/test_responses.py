"""``/v1/responses`` through the whole server, with the real openai SDK as the client: plain
and streamed responses, stored state (``previous_response_id``, retrieve, delete, input
items), function calls over two turns, what a strategy did as a reasoning item, refusals
before any token is spent, ownership by key, persistence across restarts, metering, one
request on the real embedded model and, when it is installed, an Agents SDK agent.

The model is tests/fake_openai.py on loopback: its ``echo`` profile answers with every
message's content joined by " | ", which shows exactly what conversation the model saw.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseItemList

from ponder.backends.embedded import EmbeddedBackend
from ponder.backends.scripted import ScriptedBackend
from ponder.config import PonderConfig, ProviderConfig
from ponder.routing.registry import BackendRegistry
from ponder.server.app import create_app
from tests.fake_openai import make_app, serve_app
from tests.strategy_helpers import solution

ADMIN = "admin-secret-for-responses"
TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather where the question is about.",
        "parameters": {"type": "object", "properties": {"question": {"type": "string"}}},
    }
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Any]]:
    app = make_app()
    with serve_app(app) as url:
        yield url, app


def config_for(upstream_url: str, database: Path) -> PonderConfig:
    return PonderConfig(
        default_model="echo-model",
        default_strategy=None,
        database_url=f"sqlite:///{database}",
        providers=(
            ProviderConfig(name="fake", base_url=f"{upstream_url}/echo/v1", models=("echo-model",)),
            ProviderConfig(name="tl", base_url=f"{upstream_url}/tools/v1", models=("tool-model",)),
        ),
    )


def ponder_app(upstream_url: str, database: Path) -> Any:
    config = config_for(upstream_url, database)
    registry = BackendRegistry(config)
    registry.register("s", ScriptedBackend.cycle([solution(7)]))
    return create_app(config, registry=registry, close_backends=False, admin_key=ADMIN)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("responses") / "ponder.sqlite3"


@pytest.fixture(scope="module")
def server(upstream: tuple[str, Any], database: Path) -> Iterator[str]:
    with serve_app(ponder_app(upstream[0], database)) as url:
        yield url


def new_key(url: str, team: str, **fields: Any) -> str:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    httpx.post(f"{url}/v1/admin/teams", json={"name": team}, headers=headers)
    made = httpx.post(
        f"{url}/v1/admin/keys",
        json={"team": team, "name": f"{team}-key", **fields},
        headers=headers,
    )
    assert made.is_success, made.text
    secret: str = made.json()["key"]
    return secret


def sdk(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def key(server: str) -> str:
    return new_key(server, "alpha")


@pytest.fixture
def client(server: str, key: str) -> Iterator[openai.OpenAI]:
    with sdk(server, key) as c:
        yield c


def raw_create(url: str, key: str, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/responses", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


# -- one response ---------------------------------------------------------------------------
def test_a_string_input_with_instructions_answers_and_validates(server: str, key: str) -> None:
    reply = raw_create(server, key, model="echo-model", input="hello there", instructions="SYS")
    assert reply.status_code == 200, reply.text
    # Strict validation against the SDK's own model, not its lenient construction.
    response = Response.model_validate(reply.json())
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.error is None
    assert response.output_text == "SYS | hello there"
    assert response.instructions == "SYS" and response.store is True
    assert response.tools == [] and response.tool_choice == "auto"
    assert response.parallel_tool_calls is True
    usage = response.usage
    assert usage is not None and usage.output_tokens == 4
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert usage.input_tokens_details.cached_tokens == 0


def test_metadata_sampling_and_list_input_are_honoured(
    client: openai.OpenAI, upstream: tuple[str, Any]
) -> None:
    response = client.responses.create(
        model="fake/echo-model",
        input=[
            {"role": "developer", "content": "Rules."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Q"}]},
        ],
        metadata={"run": "7"},
        temperature=0.3,
        top_p=0.5,
        max_output_tokens=50,
    )
    assert response.output_text == "Rules. | Q"
    assert response.metadata == {"run": "7"} and response.model == "fake/echo-model"
    assert (response.temperature, response.top_p, response.max_output_tokens) == (0.3, 0.5, 50)
    sent = upstream[1].state.requests[-1][1]
    assert sent["messages"] == [
        {"role": "system", "content": "Rules."},
        {"role": "user", "content": "Q"},
    ]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (0.3, 0.5, 50)


def test_max_output_tokens_makes_an_incomplete_response(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="echo-model", input="one two three four", max_output_tokens=2
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "one two"
    with client.responses.stream(
        model="echo-model", input="one two three four", max_output_tokens=2
    ) as stream:
        kinds = [event.type for event in stream]
    assert kinds[-1] == "response.incomplete"


# -- stored state ---------------------------------------------------------------------------
def test_previous_response_id_continues_without_the_old_instructions(
    client: openai.OpenAI,
) -> None:
    first = client.responses.create(model="echo-model", input="first", instructions="SYS")
    assert first.output_text == "SYS | first"
    second = client.responses.create(
        model="echo-model", input="second", previous_response_id=first.id
    )
    # The earlier turn and its answer, not its instructions.
    assert second.output_text == "first | SYS | first | second"
    assert second.previous_response_id == first.id
    third = client.responses.create(
        model="echo-model", input="third", previous_response_id=second.id, instructions="NEW"
    )
    assert third.output_text == f"NEW | first | SYS | first | second | {second.output_text} | third"


def test_retrieve_input_items_and_delete(client: openai.OpenAI) -> None:
    first = client.responses.create(model="echo-model", input="a b")
    made = client.responses.create(
        model="echo-model",
        previous_response_id=first.id,
        input=[{"role": "user", "content": "c"}, {"role": "user", "content": "d"}],
    )
    got = client.responses.retrieve(made.id)
    assert got.model_dump() == made.model_dump()

    # Everything the response was made from, newest first by default.
    items = client.responses.input_items.list(made.id)
    texts = [_text(i) for i in items.data]
    assert texts == ["d", "c", "a b", "a b"]
    assert [i.type for i in items.data] == ["message"] * 4
    page = client.responses.input_items.list(made.id, order="asc", limit=2)
    assert [_text(i) for i in page.data] == ["a b", "a b"] and page.has_more
    rest = client.responses.input_items.list(made.id, order="asc", after=page.data[-1].id)
    assert [_text(i) for i in rest.data] == ["c", "d"] and not rest.has_more
    listed = httpx.get(
        f"{client.base_url}responses/{made.id}/input_items",
        params={"limit": 1},
        headers={"Authorization": f"Bearer {client.api_key}"},
    ).json()
    parsed = ResponseItemList.model_validate(listed)
    assert parsed.first_id == parsed.last_id == listed["data"][0]["id"] and parsed.has_more

    deleted = client.responses.delete(made.id)
    assert deleted is None  # the SDK returns nothing; the server said deleted
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(made.id)
    # A conversation whose earlier response is gone cannot be continued.
    after = client.responses.create(model="echo-model", input="e", previous_response_id=first.id)
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError, match="deleted"):
        client.responses.create(model="echo-model", input="f", previous_response_id=after.id)


def _text(item: Any) -> str:
    return "".join(part.text for part in item.content)


def test_store_false_is_neither_retrievable_nor_continuable(client: openai.OpenAI) -> None:
    response = client.responses.create(model="echo-model", input="secret", store=False)
    assert response.store is False and response.output_text == "secret"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="echo-model", input="again", previous_response_id=response.id)
    assert missing.value.code == "response_not_found"


def test_only_the_owner_and_the_admin_see_a_response(server: str, client: openai.OpenAI) -> None:
    mine = client.responses.create(model="echo-model", input="private")
    with sdk(server, new_key(server, "beta")) as other:
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.input_items.list(mine.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.delete(mine.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.create(model="echo-model", input="x", previous_response_id=mine.id)
    with sdk(server, ADMIN) as admin:
        assert admin.responses.retrieve(mine.id).output_text == "private"
    assert client.responses.retrieve(mine.id).output_text == "private"  # still there


def test_responses_persist_across_restarts(upstream: tuple[str, Any], tmp_path: Path) -> None:
    database = tmp_path / "restart.sqlite3"
    with serve_app(ponder_app(upstream[0], database)) as url, sdk(url, ADMIN) as client:
        first = client.responses.create(model="echo-model", input="remember me")
    with serve_app(ponder_app(upstream[0], database)) as url, sdk(url, ADMIN) as client:
        assert client.responses.retrieve(first.id).output_text == "remember me"
        later = client.responses.create(
            model="echo-model", input="and now", previous_response_id=first.id
        )
        assert later.output_text == "remember me | remember me | and now"


# -- function calls -------------------------------------------------------------------------
def test_a_function_call_and_its_output_over_two_turns(
    client: openai.OpenAI, upstream: tuple[str, Any]
) -> None:
    asked = client.responses.create(model="tool-model", input="Weather in Oslo?", tools=TOOLS)
    (call,) = asked.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"question": "Weather in Oslo?"}
    assert asked.output_text == "" and asked.status == "completed"
    answered = client.responses.create(
        model="tool-model",
        previous_response_id=asked.id,
        tools=TOOLS,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    assert answered.output_text == "Tool said: sunny"
    # The stored call went back to the model as the assistant's tool call.
    sent = upstream[1].state.requests[-1][1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.call_id
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {"role": "tool", "content": "sunny", "tool_call_id": call.call_id}
    kinds = [i.type for i in client.responses.input_items.list(answered.id, order="asc").data]
    assert kinds == ["message", "function_call", "function_call_output"]


def test_a_stateless_conversation_with_a_function_call(client: openai.OpenAI) -> None:
    answered = client.responses.create(
        model="tool-model",
        tools=TOOLS,
        tool_choice={"type": "function", "name": "get_weather"},
        input=[
            {"role": "user", "content": "Weather?"},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"question": "Weather?"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "rain"},
        ],
    )
    assert answered.output_text == "Tool said: rain"
    assert answered.tool_choice.type == "function"  # type: ignore[union-attr]


def test_a_streamed_function_call(client: openai.OpenAI) -> None:
    with client.responses.stream(model="tool-model", input="Weather?", tools=TOOLS) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) == {"question": "Weather?"}  # type: ignore[union-attr]
    assert final.output[0].type == "function_call"


# -- streaming ------------------------------------------------------------------------------
def test_a_stream_has_every_event_in_order_and_is_stored(server: str, key: str) -> None:
    with sdk(server, key) as client:
        with client.responses.stream(model="echo-model", input="stream me please") as stream:
            events = list(stream)
            final = stream.get_final_response()
        assert [e.sequence_number for e in events] == list(range(len(events)))
        kinds = [e.type for e in events]
        assert kinds[:4] == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
        ]
        assert kinds[-4:] == [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
        deltas = [e.delta for e in events if e.type == "response.output_text.delta"]  # type: ignore[union-attr]
        assert "".join(deltas) == final.output_text == "stream me please"
        assert final.usage is not None and final.usage.output_tokens == 3
        assert client.responses.retrieve(final.id).output_text == "stream me please"
    raw = httpx.post(
        f"{server}/v1/responses",
        json={"model": "echo-model", "input": "hi", "stream": True},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert raw.status_code == 200 and "[DONE]" not in raw.text
    assert raw.text.startswith("event: response.created\ndata: {")


def test_a_stream_that_cannot_run_fails_before_the_first_byte(server: str, key: str) -> None:
    reply = raw_create(server, key, model="no-such-model", input="hi", stream=True)
    assert reply.status_code == 404
    assert reply.headers["content-type"].startswith("application/json")
    reply = raw_create(server, key, model="echo-model", input="hi", stream=True, background=True)
    assert reply.status_code == 400


# -- strategies -----------------------------------------------------------------------------
def test_a_strategy_reports_what_it_did_as_a_reasoning_item(client: openai.OpenAI) -> None:
    response = client.responses.create(model="ponder/self-consistency;n=2/s", input="3 + 4?")
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and message.type == "message"
    (summary,) = reasoning.summary
    assert "self-consistency" in summary.text and "paths: 2" in summary.text
    assert "7" in response.output_text
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens > 0
    with client.responses.stream(
        model="s", input="3 + 4?", extra_body={"ponder": {"strategy": "self-consistency", "n": 2}}
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = [e for e in events if e.type == "response.reasoning_summary_text.delta"]
    assert deltas and "self-consistency" in deltas[0].delta  # type: ignore[union-attr]
    assert final.output[0].type == "reasoning" and "7" in final.output_text


def test_reasoning_effort_is_the_chat_paths_reasoning_effort(server: str) -> None:
    with sdk(server, new_key(server, "gamma", max_effort="low")) as client:
        with pytest.raises(openai.PermissionDeniedError) as denied:
            client.responses.create(model="s", input="hi", reasoning={"effort": "high"})
        assert denied.value.code == "policy_denied"


# -- refusals -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"frobnicate": 1}, "frobnicate"),
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"conversation": "conv_1"}, "conversation"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            "input[0].content",
        ),
        ({"input": [{"type": "function_call_output", "call_id": "nope", "output": "x"}]}, "input"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input"),
        ({"tool_choice": {"type": "function", "name": "other"}, "tools": TOOLS}, "tool_choice"),
        ({"metadata": {str(k): "v" for k in range(17)}}, "metadata"),
        ({"stream": "yes"}, "stream"),
    ],
)
def test_what_ponder_cannot_honour_is_a_400_before_any_token(
    server: str, key: str, upstream: tuple[str, Any], body: dict[str, Any], param: str
) -> None:
    before = len(upstream[1].state.requests)
    reply = raw_create(server, key, **{"model": "echo-model", "input": "hi", **body})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert len(upstream[1].state.requests) == before


def test_a_response_is_metered_like_a_chat_request(server: str) -> None:
    key = new_key(server, "delta")
    with sdk(server, key) as client:
        made = client.responses.create(model="echo-model", input="count me")
        client.responses.create(model="echo-model", input="and me", stream=True).close()
    rows = httpx.get(
        f"{server}/v1/usage",
        params={"group_by": "key"},
        headers={"Authorization": f"Bearer {key}"},
    ).json()["data"]
    (row,) = rows
    assert row["requests"] == 2
    assert made.usage is not None and row["prompt_tokens"] >= made.usage.input_tokens


# -- a real model -----------------------------------------------------------------------------
@pytest.mark.model
def test_the_embedded_model_answers_a_response(small_backend: EmbeddedBackend) -> None:
    config = PonderConfig(default_model="small", trace_db=":memory:", default_strategy=None)
    registry = BackendRegistry(config)
    registry.register("small", small_backend)
    app = create_app(config, registry=registry, close_backends=False)
    with serve_app(app) as url, sdk(url, "unused") as client:
        first = client.responses.create(
            model="small", input="Say hello.", max_output_tokens=8, temperature=0
        )
        assert first.status in ("completed", "incomplete") and first.output_text
        assert first.usage is not None and 0 < first.usage.output_tokens <= 8
        with client.responses.stream(
            model="small", input="Say goodbye.", previous_response_id=first.id, max_output_tokens=8
        ) as stream:
            last = list(stream)[-1]
        # The SDK's get_final_response() wants response.completed; 8 tokens may cut it short.
        assert last.type in ("response.completed", "response.incomplete")
        final = last.response  # type: ignore[union-attr]
        assert final.output_text and final.usage is not None
        assert final.usage.input_tokens > first.usage.input_tokens  # the first turn was sent


# -- the Agents SDK ---------------------------------------------------------------------------
async def test_an_agents_sdk_agent_calls_a_tool_over_two_turns(server: str, key: str) -> None:
    agents = pytest.importorskip("agents")
    seen: list[str] = []

    @agents.function_tool
    def get_weather(question: str) -> str:
        """The weather for a question."""
        seen.append(question)
        return "sunny and 21C"

    client = openai.AsyncOpenAI(base_url=f"{server}/v1", api_key=key, max_retries=0)
    agents.set_tracing_disabled(True)
    agent = agents.Agent(
        name="weather",
        instructions="Answer with the tool.",
        tools=[get_weather],
        model=agents.OpenAIResponsesModel(model="tool-model", openai_client=client),
    )
    result = await agents.Runner.run(agent, "What is the weather in Oslo?")
    assert seen == ["What is the weather in Oslo?"]
    assert result.final_output == "Tool said: sunny and 21C"
    await client.close()
