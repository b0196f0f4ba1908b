"""The agent loop of ``/v1/responses`` through the whole server, with the real openai SDK as
the client and tests/fake_openai.py's ``agent`` profiles as the model: a built-in tool runs
on the server between model turns and the model answers with what it returned; every turn is
its own metered request (one ledger row each) and the response's usage is their exact sum;
``max_turns`` and ``max_tool_calls`` stop a model that never stops calling; a tool's error
goes back to the model; a client function tool still goes back to the client. One test runs
the real embedded 0.5B model with ``tool_choice`` forcing the calculator.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response

from ponder.backends.embedded import EmbeddedBackend
from ponder.config import PonderConfig, ProviderConfig
from ponder.routing.registry import BackendRegistry
from ponder.server.app import create_app
from ponder.tools.calculator import evaluate, render
from tests.fake_openai import make_app, serve_app

ADMIN = "admin-secret-for-the-agent-loop"
CALCULATOR: list[Any] = [{"type": "calculator"}]
WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather of a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Any]]:
    app = make_app()
    with serve_app(app) as url:
        yield url, app


@pytest.fixture(scope="module")
def server(upstream: tuple[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = upstream[0]
    config = PonderConfig(
        default_model="agent-model",
        default_strategy=None,
        database_url=f"sqlite:///{tmp_path_factory.mktemp('agent') / 'ponder.sqlite3'}",
        providers=(
            ProviderConfig(name="a", base_url=f"{url}/agent/v1", models=("agent-model",)),
            ProviderConfig(name="f", base_url=f"{url}/agent-forever/v1", models=("forever",)),
        ),
    )
    app = create_app(
        config, registry=BackendRegistry(config), close_backends=False, admin_key=ADMIN
    )
    with serve_app(app) as served:
        yield served


def new_key(url: str, team: str) -> str:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    httpx.post(f"{url}/v1/admin/teams", json={"name": team}, headers=headers)
    made = httpx.post(
        f"{url}/v1/admin/keys", json={"team": team, "name": f"{team}-key"}, headers=headers
    )
    assert made.is_success, made.text
    return str(made.json()["key"])


def create(url: str, key: str, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/responses", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=300
    )


def ledger(url: str, key: str) -> dict[str, Any]:
    rows = httpx.get(
        f"{url}/v1/usage", params={"group_by": "key"}, headers={"Authorization": f"Bearer {key}"}
    ).json()["data"]
    (row,) = rows
    return dict(row)


def sent_to_model(upstream: tuple[str, Any], since: int) -> list[dict[str, Any]]:
    return [body for _, body in upstream[1].state.requests[since:]]


# -- the loop ------------------------------------------------------------------------------------
def test_the_sdk_gets_an_answer_made_with_the_calculator(
    server: str, upstream: tuple[str, Any]
) -> None:
    key = new_key(server, "calc")
    before = len(upstream[1].state.requests)
    with openai.OpenAI(base_url=f"{server}/v1", api_key=key, max_retries=0) as client:
        response = client.responses.create(
            model="agent-model", input="2**100 + 1", tools=CALCULATOR
        )
    call, result, message = response.output
    assert message.type == "message"
    assert call.type == "function_call" and call.name == "calculator"
    assert json.loads(call.arguments) == {"expression": "2**100 + 1"}
    assert result.type == "function_call_output" and result.call_id == call.call_id
    assert result.output == "1267650600228229401496703205377"
    assert response.output_text == "Tool said: 1267650600228229401496703205377"
    # Two model turns: the second saw the call and the tool's result.
    first, second = sent_to_model(upstream, before)
    assert [t["function"]["name"] for t in first["tools"]] == ["calculator"]
    assert second["messages"][-1] == {
        "role": "tool",
        "content": "1267650600228229401496703205377",
        "tool_call_id": call.call_id,
    }
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "calculator"
    # Usage is the exact sum of the turns (the fake counts words in, 7 tokens per call out).
    usage = response.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens) == (3 + 4, 7 + 3)
    row = ledger(server, key)
    assert row["requests"] == 2
    assert (row["prompt_tokens"], row["completion_tokens"]) == (7, 10)


def test_the_response_validates_strictly_and_echoes_the_tools(server: str) -> None:
    key = new_key(server, "strict")
    reply = create(server, key, model="agent-model", input="1/3", tools=CALCULATOR)
    assert reply.status_code == 200, reply.text
    response = Response.model_validate(reply.json())
    assert response.status == "completed"
    (tool,) = response.tools
    assert tool.type == "function" and tool.name == "calculator"
    assert response.output_text.startswith("Tool said: 1/3")


def test_several_calls_in_one_turn_all_run(server: str, upstream: tuple[str, Any]) -> None:
    key = new_key(server, "parallel")
    before = len(upstream[1].state.requests)
    reply = create(server, key, model="agent-model", input="1+1 ;; 2*3 ;; 10/4", tools=CALCULATOR)
    response = Response.model_validate(reply.json())
    outputs = [i.output for i in response.output if i.type == "function_call_output"]
    assert outputs == ["2", "6", "2.5"]
    assert response.output_text == "Tool said: 2 | 6 | 2.5"
    assert len(sent_to_model(upstream, before)) == 2


def test_a_tool_error_is_shown_to_the_model(server: str, upstream: tuple[str, Any]) -> None:
    key = new_key(server, "errors")
    before = len(upstream[1].state.requests)
    reply = create(server, key, model="agent-model", input="1/0", tools=CALCULATOR)
    assert reply.status_code == 200, reply.text
    response = Response.model_validate(reply.json())
    assert response.output_text == "Tool said: error: division by zero"
    _, second = sent_to_model(upstream, before)
    assert second["messages"][-1]["content"] == "error: division by zero"


def test_max_turns_stops_a_model_that_never_stops_calling(
    server: str, upstream: tuple[str, Any]
) -> None:
    key = new_key(server, "forever")
    before = len(upstream[1].state.requests)
    reply = create(server, key, model="forever", input="1+1", tools=CALCULATOR, max_turns=3)
    assert reply.status_code == 200, reply.text
    response = Response.model_validate(reply.json())
    sent = sent_to_model(upstream, before)
    assert len(sent) == 3
    # The last turn is asked without tools, so that the model answers.
    assert "tools" in sent[1] and "tools" not in sent[2]
    assert [i.type for i in response.output].count("function_call_output") == 2
    assert response.output_text == "Tool said: 2 | 2"
    assert ledger(server, key)["requests"] == 3


def test_max_tool_calls_ends_the_tool_runs(server: str, upstream: tuple[str, Any]) -> None:
    key = new_key(server, "limited")
    before = len(upstream[1].state.requests)
    reply = create(
        server, key, model="forever", input="1+1 ;; 1+2", tools=CALCULATOR, max_tool_calls=1
    )
    response = Response.model_validate(reply.json())
    outputs = [i.output for i in response.output if i.type == "function_call_output"]
    assert outputs == ["2", "error: not run: max_tool_calls is used up"]
    sent = sent_to_model(upstream, before)
    assert len(sent) == 2 and "tools" not in sent[1]


def test_the_default_turn_limit_applies(server: str, upstream: tuple[str, Any]) -> None:
    key = new_key(server, "default-limit")
    before = len(upstream[1].state.requests)
    assert create(server, key, model="forever", input="1", tools=CALCULATOR).status_code == 200
    assert len(sent_to_model(upstream, before)) == 8


def test_a_client_function_call_still_goes_back_to_the_client(server: str) -> None:
    key = new_key(server, "mixed")
    reply = create(
        server, key, model="agent-model", input="use:get_weather Oslo", tools=[*CALCULATOR, WEATHER]
    )
    response = Response.model_validate(reply.json())
    (call,) = response.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Oslo"}
    assert ledger(server, key)["requests"] == 1


def test_python_runs_in_the_sandbox_as_a_code_interpreter_call(
    server: str, upstream: tuple[str, Any]
) -> None:
    key = new_key(server, "python")
    with openai.OpenAI(base_url=f"{server}/v1", api_key=key, max_retries=0) as client:
        response = client.responses.create(
            model="agent-model",
            input="print(6 * 7)",
            tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        )
        ran, _ = response.output
        assert ran.type == "code_interpreter_call" and ran.code == "print(6 * 7)"
        assert ran.status == "completed" and ran.container_id == "ponder-sandbox"
        assert ran.outputs is not None and "42" in ran.outputs[0].logs  # type: ignore[union-attr]
        assert "42" in response.output_text
        stored = client.responses.retrieve(response.id)
        assert [i.type for i in stored.output] == ["code_interpreter_call", "message"]
        # Continued: the model sees the program it ran and what it printed.
        before = len(upstream[1].state.requests)
        client.responses.create(
            model="agent-model", input="and then?", previous_response_id=response.id
        )
    (sent,) = sent_to_model(upstream, before)
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    assert sent["messages"][1]["tool_calls"][0]["function"]["name"] == "python"
    assert "42" in sent["messages"][2]["content"]


def test_a_failing_program_is_shown_to_the_model(server: str) -> None:
    key = new_key(server, "python-error")
    reply = create(
        server, key, model="agent-model", input="raise SystemExit(3)", tools=[{"type": "python"}]
    )
    response = Response.model_validate(reply.json())
    ran = response.output[0]
    assert ran.type == "code_interpreter_call" and ran.status == "failed"
    assert "exit status 3" in response.output_text


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": CALCULATOR, "stream": True}, "stream"),
        ({"tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"tools": [{"type": "calculator", "digits": 3}]}, "tools[0].digits"),
        ({"tools": [*CALCULATOR, {**WEATHER, "name": "calculator"}]}, "tools[1]"),
        ({"tools": CALCULATOR, "max_turns": 0}, "max_turns"),
    ],
)
def test_what_it_cannot_do_is_a_400_before_any_token(
    server: str, upstream: tuple[str, Any], body: dict[str, Any], param: str
) -> None:
    key = new_key(server, "refused")
    before = len(upstream[1].state.requests)
    reply = create(server, key, model="agent-model", input="1+1", **body)
    assert reply.status_code == 400, reply.text
    assert param in (reply.json()["error"]["param"] or "")
    assert len(upstream[1].state.requests) == before


# -- a real model -------------------------------------------------------------------------------
@pytest.mark.model
def test_the_embedded_model_is_forced_to_use_the_calculator(
    small_backend: EmbeddedBackend,
) -> None:
    config = PonderConfig(default_model="small", trace_db=":memory:", default_strategy=None)
    registry = BackendRegistry(config)
    registry.register("small", small_backend)
    app = create_app(config, registry=registry, close_backends=False)
    with serve_app(app) as url:
        reply = create(
            url,
            "unused",
            model="small",
            input="What is 1234 * 5678? Use the calculator.",
            tools=CALCULATOR,
            tool_choice={"type": "function", "name": "calculator"},
            max_output_tokens=48,
            temperature=0,
            max_turns=2,
        )
    assert reply.status_code == 200, reply.text
    response = Response.model_validate(reply.json())
    kinds = [i.type for i in response.output]
    # The forced first turn called the calculator, which ran; the second turn answered.
    assert kinds[:2] == ["function_call", "function_call_output"], kinds
    call = response.output[0]
    assert call.type == "function_call" and call.name == "calculator"
    result = response.output[1]
    assert result.type == "function_call_output"
    assert result.output == render(evaluate(json.loads(call.arguments)["expression"]))
    assert response.usage is not None and response.usage.output_tokens > 0
