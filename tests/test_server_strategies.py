"""Strategies through the HTTP server, over a scripted model: chosen in the body, the model
name or reasoning_effort; streamed progress; traces; policy on every model a strategy
reaches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from ponder.backends.scripted import ScriptedBackend
from ponder.config import PonderConfig
from ponder.routing.registry import BackendRegistry
from ponder.server.app import create_app
from tests.fake_openai import serve_app

MESSAGES: list[Any] = [{"role": "user", "content": "Say hello."}]
# auto answers a chat request in one pass; its ladder is for questions with a checkable answer.
SUM: list[Any] = [{"role": "user", "content": "What is 3 + 4?"}]


@pytest.fixture(scope="module")
def scripted_server() -> Iterator[tuple[str, ScriptedBackend]]:
    answers = iter([7, 7, 8] * 1000)
    backend = ScriptedBackend(lambda request, index: f"step step\nThe answer is: {next(answers)}")
    registry = BackendRegistry(PonderConfig(default_model="s", trace_db=":memory:"))
    registry.register("s", backend)
    with serve_app(create_app(registry.config, registry=registry)) as url:
        yield url, backend


def test_strategy_from_the_body_with_trace(scripted_server: tuple[str, ScriptedBackend]) -> None:
    url, _ = scripted_server
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": "s",
            "messages": MESSAGES,
            "ponder": {"strategy": "self-consistency", "n": 3},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"].endswith("The answer is: 7")
    assert "vote: 7×2, 8×1" in body["choices"][0]["message"]["reasoning_content"]
    usage = body["usage"]
    assert usage["completion_tokens"] == 3 * 6  # "step step\nThe answer is: 7" is 6 tokens
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 2 * 6
    trace_id = body["ponder"]["trace_id"]
    assert response.headers["x-ponder-trace-id"] == trace_id
    trace = httpx.get(f"{url}/v1/traces/{trace_id}").json()
    assert trace["strategy"] == "self-consistency"
    assert trace["calls"][0]["n"] == 3
    assert trace["calls"][0]["annotations"]["answers"] == ["7", "7", "8"]
    assert trace["notes"][-1]["kind"] == "vote"
    assert httpx.get(f"{url}/v1/traces/nope").status_code == 404


def test_strategy_in_the_model_name(
    scripted_server: tuple[str, ScriptedBackend],
) -> None:
    url, backend = scripted_server
    with openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
        reply = client.chat.completions.create(
            model="ponder/self-consistency;n=3/s", messages=MESSAGES
        )
        assert reply.model == "ponder/self-consistency;n=3/s"
        assert backend.calls[-1].n == 3
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(
                model="s", messages=MESSAGES, extra_body={"ponder": {"strategy": "cot", "bogus": 1}}
            )
        assert "bogus" in str(info.value)


def test_streamed_strategy_sends_progress_then_answer(
    scripted_server: tuple[str, ScriptedBackend],
) -> None:
    url, _ = scripted_server
    with openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
        stream = client.chat.completions.create(
            model="s",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ponder": {"strategy": "self-consistency", "n": 3}},
        )
        reasoning_chunks, content, usage, trace_id = 0, "", None, None
        for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            extra = chunk.model_extra or {}
            if extra.get("ponder"):
                trace_id = extra["ponder"]["trace_id"]
            for choice in chunk.choices:
                delta_extra = choice.delta.model_extra or {}
                if delta_extra.get("reasoning_content"):
                    assert not content, "progress must come before the answer"
                    reasoning_chunks += 1
                content += choice.delta.content or ""
    assert reasoning_chunks >= 4
    assert content.endswith("The answer is: 7") or content.endswith("The answer is: 8")
    assert usage is not None and usage.completion_tokens == 18
    assert trace_id is not None


def test_auto_is_the_default_and_reasoning_effort_picks_its_level(
    scripted_server: tuple[str, ScriptedBackend],
) -> None:
    url, _ = scripted_server
    for effort, expected in ((None, "medium"), ("minimal", "minimal"), ("high", "high")):
        body: dict[str, Any] = {"model": "s", "messages": SUM}
        if effort is not None:
            body["reasoning_effort"] = effort
        reply = httpx.post(f"{url}/v1/chat/completions", json=body).json()
        assert reply["ponder"]["strategy"] == "auto"
        (details,) = reply["ponder"]["details"]  # one per choice
        assert details["rungs"][0] == "first" and details["effort"] == expected
        trace = httpx.get(f"{url}/v1/traces/{reply['ponder']['trace_id']}").json()
        assert trace["params"]["effort"] == expected
        rungs = next(n for n in trace["notes"] if n["kind"] == "rungs")["rungs"]
        assert rungs[0] == "first"
    direct = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "s", "messages": MESSAGES, "reasoning_effort": "none"},
    ).json()
    assert "ponder" not in direct or direct["ponder"] is None


def test_policy_refuses_a_denied_model_and_keeps_auto_from_escalating_to_it(
    tmp_path: Any,
) -> None:
    from ponder.reasoning.profile import AutoProfile, EffortProfile, Rung

    profile = AutoProfile(
        efforts={
            "medium": EffortProfile(
                accept_confidence=1000.0,  # never accept the first pass outright
                ladder=(Rung(kind="escalate", model="vendor/big"),),
            )
        }
    )
    path = tmp_path / "profile.json"
    path.write_text(profile.model_dump_json())
    config = PonderConfig(
        default_model="s",
        trace_db=":memory:",
        auto_profile=path,
        deny_models=("vendor/*",),
    )
    registry = BackendRegistry(config)
    registry.register("s", ScriptedBackend.cycle(["The answer is: 7"]))
    registry.register("vendor/big", ScriptedBackend.cycle(["The answer is: 8"]))
    with serve_app(create_app(config, registry=registry)) as url:
        denied = httpx.post(
            f"{url}/v1/chat/completions", json={"model": "vendor/big", "messages": MESSAGES}
        )
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "policy_denied"
        reply = httpx.post(
            f"{url}/v1/chat/completions", json={"model": "s", "messages": SUM}
        ).json()
        assert reply["choices"][0]["message"]["content"] == "The answer is: 7"
        trace = httpx.get(f"{url}/v1/traces/{reply['ponder']['trace_id']}").json()
        assert any(n["kind"] == "escalation skipped" for n in trace["notes"])
        assert [c["label"] for c in trace["calls"]] == ["first pass"]
