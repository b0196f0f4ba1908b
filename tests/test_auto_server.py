"""``auto`` by kind through the server and the real ``openai`` SDK: an ambiguous request is
asked about in chat completions, in a stream and in the Responses API, with
``ponder.details.clarify``; ``"ponder": {"clarify": false}`` turns asking off on the default
strategy; a chat request is one call."""

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
from ponder.types import GenerationRequest
from tests.fake_openai import serve_app

QUESTION = "Which scale are the 100 degrees in, and what should I convert them to?"


def script(request: GenerationRequest, index: int) -> str:
    if "cannot be answered yet" in request.messages[-1].content:
        return QUESTION
    return "It is 212 degrees Fahrenheit.\nThe answer is: 212"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, ScriptedBackend]]:
    backend = ScriptedBackend(script)
    registry = BackendRegistry(PonderConfig(default_model="s", trace_db=":memory:"))
    registry.register("s", backend)
    with serve_app(create_app(registry.config, registry=registry)) as url:
        yield url, backend


def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)


def chat(url: str, text: str, **body: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "s", "messages": [{"role": "user", "content": text}], **body},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    return reply


def test_an_ambiguous_request_is_asked_about(server: tuple[str, ScriptedBackend]) -> None:
    url, backend = server
    before = len(backend.calls)
    with sdk(url) as client:
        reply = client.chat.completions.create(
            model="s", messages=[{"role": "user", "content": "Convert 100 degrees."}]
        )
    assert reply.choices[0].message.content == QUESTION
    details = (reply.model_extra or {})["ponder"]["details"][0]
    assert details["clarify"] is True and details["kind"] == "ambiguous"
    assert details["readings"] == ["the unit to convert to (and from)"]
    assert len(backend.calls) == before + 1 and reply.usage is not None


def test_a_stream_asks_too(server: tuple[str, ScriptedBackend]) -> None:
    url, _ = server
    with sdk(url) as client:
        stream = client.chat.completions.create(
            model="s",
            messages=[{"role": "user", "content": "How long does it take to get there?"}],
            stream=True,
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == QUESTION
    blocks = [(c.model_extra or {}).get("ponder") for c in chunks]
    details = [b["details"][0] for b in blocks if b and b.get("details")]
    assert details and details[-1]["clarify"] is True


def test_the_responses_api_asks_too(server: tuple[str, ScriptedBackend]) -> None:
    url, _ = server
    with sdk(url) as client:
        response = client.responses.create(model="s", input="Summarise the attached report.")
    assert response.output_text == QUESTION
    details = (response.model_extra or {})["ponder"]["details"][0]
    assert details["clarify"] is True


def test_asking_switched_off_per_request_keeps_the_default_strategy(
    server: tuple[str, ScriptedBackend],
) -> None:
    url, _ = server
    reply = chat(url, "Convert 100 degrees.", ponder={"clarify": False})
    assert reply["ponder"]["strategy"].startswith("auto")
    (details,) = reply["ponder"]["details"]
    assert details["clarify"] is False and details["answered_as"] == "checkable"
    assert details["ambiguity"]["readings"] == ["the unit to convert to (and from)"]
    assert "212" in reply["choices"][0]["message"]["content"]
    with sdk(url) as client, pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="s",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"ponder": {"clarify": "sometimes"}},
        )
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    "ponder",
    [
        {"clarify": "sometimes"},
        {"kind": "poem"},
        {"over": {"strategy": "cot"}},
        {},
        {"strategy": "auto", "effort": "nope"},
        {"strategy": "auto", "budget_tokens": 1},
    ],
)
def test_bad_auto_options_are_a_4xx_before_any_call(
    server: tuple[str, ScriptedBackend], ponder: dict[str, Any]
) -> None:
    url, backend = server
    before = len(backend.calls)
    for stream in (False, True):
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={
                "model": "s",
                "messages": [{"role": "user", "content": "What is the capital of Australia?"}],
                "ponder": ponder,
                "stream": stream,
            },
            timeout=60,
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"].startswith("ponder")
    assert len(backend.calls) == before


def test_a_chat_request_is_one_call(server: tuple[str, ScriptedBackend]) -> None:
    url, backend = server
    before = len(backend.calls)
    reply = chat(url, "What is the capital of Australia?")
    (details,) = reply["ponder"]["details"]
    assert details["kind"] == "chat" and reply["ponder"]["calls"] == 1
    assert len(backend.calls) == before + 1
