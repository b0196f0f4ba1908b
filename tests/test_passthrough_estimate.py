"""A pass-through stream whose endpoint never reports usage (cut before its usage chunk, or
an endpoint that ignores ``include_usage``) is charged an estimate that errs high, rather
than nothing: otherwise a client could read most of an answer and leave before the usage
chunk, and its budget would never be charged."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ponder.config import EndpointConfig, PonderConfig, ProviderConfig
from ponder.gateway.relay import RelayStream
from ponder.server.app import create_app
from ponder.types import GenerationRequest, Message
from tests.fake_openai import serve_app

PROMPT = "Count for me please."


@pytest.fixture(scope="module")
def url(fake_endpoint: tuple[str, object]) -> Iterator[str]:
    endpoints = [
        ProviderConfig(
            name=profile,
            models=(profile,),
            **EndpointConfig(base_url=f"{fake_endpoint[0]}/{profile}/v1").endpoint_fields(),
        )
        for profile in ("die-mid", "vllm")
    ]
    settings = PonderConfig(trace_db=":memory:", default_strategy=None, providers=tuple(endpoints))
    with serve_app(create_app(settings)) as base:
        yield base


def stream(url: str, model: str) -> list[str]:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as reply:
        assert reply.status_code == 200
        return list(reply.iter_lines())


def usage(url: str, model: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(f"{url}/v1/usage").json()[model]
    return data


def test_a_stream_cut_before_its_usage_is_charged_an_estimate(url: str) -> None:
    lines = stream(url, "die-mid")  # two content chunks, then the connection drops
    assert any('"error"' in line for line in lines)
    spent = usage(url, "die-mid")
    bound = GenerationRequest(messages=(Message("user", PROMPT),)).prompt_token_bound()
    # The prompt at its upper bound (the endpoint's tokenizer is unknown), and one token per
    # delta of text received.
    assert (spent["prompt_tokens"], spent["completion_tokens"]) == (bound, 2)
    assert bound > len(PROMPT.split())  # it errs high, never low


def test_a_reported_stream_is_charged_exactly_what_was_reported(url: str) -> None:
    stream(url, "vllm")
    spent = usage(url, "vllm")
    # The fake counts words: four in the prompt, five answer tokens.
    assert (spent["prompt_tokens"], spent["completion_tokens"]) == (4, 5)


async def test_the_relay_counts_deltas_of_generated_text() -> None:
    events = [
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"He said \\"content\\": \\"x"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"reasoning_content":"hm"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":'
        b'{"arguments":"{\\"a\\""}}]}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
    ]

    async def chunks() -> Any:
        for event in events:
            yield event

    relay = RelayStream(chunks(), added_usage=False, where="test")
    async with relay:
        assert len([part async for part in relay]) == len(events)
    # The empty role delta and the finish chunk carry no text; escaped quotes in the text do
    # not count as another delta.
    assert relay.generated == 3
    assert relay.reported is None and relay.received
