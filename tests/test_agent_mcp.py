"""MCP tools in the agent loop of ``/v1/responses``, through the whole server: the real
openai SDK as the client, tests/fake_openai.py's ``agent`` profile as the model, and the
real MCP test server (tests/mcp_server.py) over stdio as the operator's configured server.

A request names a server as OpenAI's spec does (``{"type": "mcp", "server_label": ...}``);
the server's tools run between model turns and come back as ``mcp_call`` items; the
caller's ``allow_tools`` policies and the request's ``allowed_tools`` narrow what the model
is offered; a server that is not configured, or asks Ponder to connect elsewhere, is a 400;
a server that is down, a tool that times out and a server that dies are the model's to
read, never the request's failure. Items of tools Ponder ran, sent back as input (as the
Agents SDK does), are what the model sees of those runs.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response

from ponder.config import PonderConfig, ProviderConfig
from ponder.config.mcp import McpServerConfig
from ponder.errors import ConfigError
from ponder.gateway import Gateway
from ponder.routing.registry import BackendRegistry
from ponder.server.app import create_app
from tests.fake_openai import make_app, serve_app

pytestmark = pytest.mark.timeout(120)

ADMIN = "admin-secret-for-agent-mcp"
SERVER = Path(__file__).with_name("mcp_server.py")
CALC: list[Any] = [{"type": "mcp", "server_label": "calc", "require_approval": "never"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Any]]:
    app = make_app()
    with serve_app(app) as url:
        yield url, app


@pytest.fixture(scope="module")
def server(upstream: tuple[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("mcp")
    config = PonderConfig(
        default_model="agent-model",
        default_strategy=None,
        database_url=f"sqlite:///{tmp_path_factory.mktemp('mcp') / 'ponder.sqlite3'}",
        providers=(
            ProviderConfig(name="a", base_url=f"{upstream[0]}/agent/v1", models=("agent-model",)),
        ),
        mcp_servers=(
            McpServerConfig(name="calc", command=sys.executable, args=(str(SERVER),), timeout=2),
            # A configured server that cannot start: its tools are never there.
            McpServerConfig(name="down", command=str(SERVER.with_name("no-such-mcp-server"))),
        ),
    )
    app = create_app(
        config, registry=BackendRegistry(config), close_backends=False, admin_key=ADMIN
    )
    with serve_app(app) as served:
        yield served


def new_key(url: str, name: str, policy: dict[str, Any] | None = None) -> str:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    httpx.post(f"{url}/v1/admin/teams", json={"name": name}, headers=headers)
    body: dict[str, Any] = {"team": name, "name": f"{name}-key"}
    if policy is not None:
        body["policy"] = policy
    made = httpx.post(f"{url}/v1/admin/keys", json=body, headers=headers)
    assert made.is_success, made.text
    return str(made.json()["key"])


def respond(url: str, key: str, **body: Any) -> tuple[Response, dict[str, Any]]:
    """The SDK's parse of a response, after strict validation of the body against the
    SDK's own model (not its lenient construction)."""
    with openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as client:
        raw = client.responses.with_raw_response.create(**body)
    wire = json.loads(raw.text)
    Response.model_validate(wire)
    return raw.parse(), wire


def sent_to_model(upstream: tuple[str, Any], since: int) -> list[dict[str, Any]]:
    return [body for _, body in upstream[1].state.requests[since:]]


def offered(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools") or ()]


# -- the loop ------------------------------------------------------------------------------------
def test_an_mcp_tool_runs_and_the_answer_uses_its_output(
    server: str, upstream: tuple[str, Any]
) -> None:
    key = new_key(server, "mcp-run")
    before = len(upstream[1].state.requests)
    response, wire = respond(
        server, key, model="agent-model", tools=CALC, input="use:calc__lookup alpha"
    )
    listed, call, message = response.output
    assert listed.type == "mcp_list_tools" and listed.server_label == "calc"
    assert listed.error is None and "lookup" in {t.name for t in listed.tools}
    assert call.type == "mcp_call" and (call.server_label, call.name) == ("calc", "lookup")
    assert json.loads(call.arguments) == {"key": "alpha"}
    assert (call.output, call.error, call.status) == ("first", None, "completed")
    assert message.type == "message" and response.output_text == "Tool said: first"
    # The tools entry is echoed in OpenAI's shape.
    assert wire["tools"] == CALC
    first, second = sent_to_model(upstream, before)
    assert "calc__lookup" in offered(first) and "calc__add" in offered(first)
    assert second["messages"][-1]["role"] == "tool"
    assert second["messages"][-1]["content"] == "first"


def test_allowed_tools_narrows_what_the_model_is_offered(
    server: str, upstream: tuple[str, Any]
) -> None:
    key = new_key(server, "mcp-narrow")
    before = len(upstream[1].state.requests)
    tools = [{**CALC[0], "allowed_tools": {"tool_names": ["lookup", "add"]}}]
    response, _ = respond(server, key, model="agent-model", tools=tools, input="beta")
    assert offered(sent_to_model(upstream, before)[0]) == ["calc__add", "calc__lookup"]
    assert [t.name for t in response.output[0].tools] == ["add", "lookup"]  # type: ignore[union-attr]


# -- policies ----------------------------------------------------------------------------------
def test_a_keys_allow_tools_hides_the_tools_it_does_not_list(
    server: str, upstream: tuple[str, Any]
) -> None:
    key = new_key(server, "mcp-policy", policy={"allow_tools": ["calc__add"]})
    before = len(upstream[1].state.requests)
    # The model asks for lookup by name; it was never offered, so it cannot run.
    response, _ = respond(
        server, key, model="agent-model", tools=CALC, input="use:calc__lookup alpha"
    )
    assert offered(sent_to_model(upstream, before)[0]) == ["calc__add"]
    assert [t.name for t in response.output[0].tools] == ["add"]  # type: ignore[union-attr]
    assert not any(i.type == "mcp_call" and i.name == "lookup" for i in response.output)
    # allow_tools covers the built-in tools too: one the request names is a 403.
    with pytest.raises(openai.PermissionDeniedError) as denied:
        respond(server, key, model="agent-model", tools=[{"type": "calculator"}], input="1+1")
    assert denied.value.code == "policy_denied" and "calculator" in str(denied.value)


def test_a_policy_allowing_only_builtins_offers_no_mcp_tool(
    server: str, upstream: tuple[str, Any]
) -> None:
    key = new_key(server, "mcp-builtins", policy={"allow_tools": ["calculator"]})
    before = len(upstream[1].state.requests)
    response, _ = respond(
        server, key, model="agent-model", tools=[*CALC, {"type": "calculator"}], input="2*21"
    )
    assert offered(sent_to_model(upstream, before)[0]) == ["calculator"]
    assert response.output[0].type == "mcp_list_tools" and response.output[0].tools == []
    assert response.output_text == "Tool said: 42"


# -- refusals ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tool", "param"),
    [
        ({"type": "mcp", "server_label": "nowhere"}, "tools[0].server_label"),
        ({**CALC[0], "server_url": "https://mcp.example.com/mcp"}, "tools[0].server_url"),
        ({**CALC[0], "headers": {"Authorization": "Bearer x"}}, "tools[0].headers"),
        ({**CALC[0], "connector_id": "connector_gmail"}, "tools[0].connector_id"),
        ({**CALC[0], "require_approval": "always"}, "tools[0].require_approval"),
        ({"type": "mcp"}, "tools[0]"),
    ],
)
def test_what_ponder_would_not_honour_is_a_400(
    server: str, tool: dict[str, Any], param: str
) -> None:
    key = new_key(server, "mcp-400")
    with pytest.raises(openai.BadRequestError) as refused:
        respond(server, key, model="agent-model", tools=[tool], input="hi")
    assert refused.value.param == param


def test_streaming_with_an_mcp_server_is_a_400(server: str) -> None:
    key = new_key(server, "mcp-stream")
    made = httpx.post(
        f"{server}/v1/responses",
        json={"model": "agent-model", "tools": CALC, "input": "hi", "stream": True},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert made.status_code == 400 and made.json()["error"]["param"] == "stream"


# -- failures the model reads -------------------------------------------------------------------
def test_a_server_that_is_down_is_reported_and_the_model_answers_without_it(
    server: str, upstream: tuple[str, Any]
) -> None:
    key = new_key(server, "mcp-down")
    before = len(upstream[1].state.requests)
    tools = [{"type": "mcp", "server_label": "down"}]
    response, _ = respond(server, key, model="agent-model", tools=tools, input="hello")
    (listed, message) = response.output
    assert listed.type == "mcp_list_tools" and listed.tools == []
    assert listed.error is not None and "unavailable" in listed.error
    assert message.type == "message" and response.status == "completed"
    (asked,) = sent_to_model(upstream, before)
    assert offered(asked) == []


def test_a_timeout_and_a_crash_are_shown_to_the_model(
    server: str, upstream: tuple[str, Any]
) -> None:
    key = new_key(server, "mcp-fail")
    slow, _ = respond(server, key, model="agent-model", tools=CALC, input="use:calc__slow now")
    call = slow.output[1]
    assert call.type == "mcp_call" and call.status == "failed" and call.output is None
    assert call.error is not None and "timed out after 2 seconds" in json.dumps(
        call.error.model_dump()
    )
    assert slow.status == "completed" and "timed out after 2 seconds" in slow.output_text
    died, _ = respond(server, key, model="agent-model", tools=CALC, input="use:calc__die now")
    assert died.output[1].status == "failed"  # type: ignore[union-attr]
    assert "closed its connection" in died.output_text
    # The server is started again for the next call.
    again, _ = respond(server, key, model="agent-model", tools=CALC, input="use:calc__lookup beta")
    assert again.output_text == "Tool said: second"


# -- items sent back as input -------------------------------------------------------------------
def test_a_code_interpreter_call_sent_back_is_the_models_program_and_its_output(
    server: str, upstream: tuple[str, Any]
) -> None:
    key = new_key(server, "mcp-resend")
    ran = {
        "type": "code_interpreter_call",
        "id": "ci_1",
        "code": "print(6 * 7)",
        "container_id": "ponder-sandbox",
        "outputs": [{"type": "logs", "logs": "42\n"}],
        "status": "completed",
    }
    before = len(upstream[1].state.requests)
    response, _ = respond(
        server,
        key,
        model="agent-model",
        input=[{"role": "user", "content": "six sevens?"}, ran, {"role": "user", "content": "so?"}],
    )
    assert response.status == "completed"
    (asked,) = sent_to_model(upstream, before)
    user, assistant, tool, last = asked["messages"]
    assert (user["content"], last["content"]) == ("six sevens?", "so?")
    (call,) = assistant["tool_calls"]
    assert call["id"] == "ci_1" and call["function"]["name"] == "python"
    assert json.loads(call["function"]["arguments"]) == {"code": "print(6 * 7)"}
    assert tool == {"role": "tool", "content": "42\n", "tool_call_id": "ci_1"}
    # Listed back as sent.
    listed = httpx.get(
        f"{server}/v1/responses/{response.id}/input_items",
        params={"order": "asc"},
        headers={"Authorization": f"Bearer {key}"},
    ).json()["data"]
    assert listed[1]["type"] == "code_interpreter_call" and listed[1]["code"] == "print(6 * 7)"


def test_a_responses_mcp_items_sent_back_are_its_calls_and_outputs(
    server: str, upstream: tuple[str, Any]
) -> None:
    key = new_key(server, "mcp-resend2")
    first, wire = respond(
        server, key, model="agent-model", tools=CALC, input="use:calc__lookup alpha"
    )
    before = len(upstream[1].state.requests)
    # The Agents SDK's way: the whole conversation, without previous_response_id.
    again, _ = respond(
        server,
        key,
        model="agent-model",
        input=[
            {"role": "user", "content": "use:calc__lookup alpha"},
            *wire["output"],
            {"role": "user", "content": "thanks"},
        ],
    )
    assert again.status == "completed"
    (asked,) = sent_to_model(upstream, before)
    roles = [m["role"] for m in asked["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    call = asked["messages"][1]["tool_calls"][0]
    assert call["function"]["name"] == "calc__lookup" and call["id"] == first.output[1].id
    assert asked["messages"][2]["content"] == "first"
    assert asked["messages"][3]["content"] == "Tool said: first"


def test_a_failed_mcp_call_sent_back_shows_the_error_the_model_read(
    server: str, upstream: tuple[str, Any]
) -> None:
    key = new_key(server, "mcp-resend3")
    failed = {
        "type": "mcp_call",
        "id": "mcp_1",
        "server_label": "calc",
        "name": "lookup",
        "arguments": '{"key": "x"}',
        "error": "the server is gone",
    }
    before = len(upstream[1].state.requests)
    respond(server, key, model="agent-model", input=[{"role": "user", "content": "x"}, failed])
    (asked,) = sent_to_model(upstream, before)
    assert asked["messages"][-1] == {
        "role": "tool",
        "content": "error: the server is gone",
        "tool_call_id": "mcp_1",
    }


# -- without the MCP extra ----------------------------------------------------------------------
def test_a_gateway_without_the_mcp_sdk_runs_when_no_server_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "mcp" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert Gateway(PonderConfig(default_strategy=None)).mcp.servers == ()
    configured = PonderConfig(
        default_strategy=None, mcp_servers=(McpServerConfig(name="x", command="x"),)
    )
    with pytest.raises(ConfigError, match=r"ponder\[mcp\]"):
        Gateway(configured)


def test_a_local_only_request_may_not_send_tool_arguments_to_a_remote_server(
    upstream: tuple[str, Any], tmp_path: Path
) -> None:
    """An HTTP server is not local unless the operator says so: under local-only (the
    request's header, or a key's policy) naming it is a 403, before any token is spent."""
    config = PonderConfig(
        default_strategy=None,
        database_url=f"sqlite:///{tmp_path / 'ponder.sqlite3'}",
        providers=(
            ProviderConfig(name="a", base_url=f"{upstream[0]}/agent/v1", models=("agent-model",)),
        ),
        mcp_servers=(McpServerConfig(name="far", url="http://127.0.0.1:9/mcp", timeout=1),),
    )
    app = create_app(config, registry=BackendRegistry(config), close_backends=False)
    before = len(upstream[1].state.requests)
    with serve_app(app) as url:
        body = {
            "model": "agent-model",
            "input": "use:far__lookup alpha",
            "tools": [{"type": "mcp", "server_label": "far", "require_approval": "never"}],
        }
        refused = httpx.post(
            f"{url}/v1/responses", json=body, headers={"X-Ponder-Local-Only": "1"}, timeout=30
        )
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "policy_denied"
    assert len(upstream[1].state.requests) == before  # no model turn ran
