"""What the pass-through tests share: the loopback fake (fixture ``fake``) and a pass-through
(fixture ``passthrough``), endpoints written by hand, and a client body rich in everything a
pass-through must keep.

A test module takes the fixtures by importing them::

    from tests.passthrough_helpers import open_passthrough, served_fake  # noqa: F401
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ponder.backends.endpoint import EndpointConfig
from ponder.gateway.passthrough import PassThrough, RelayStream
from tests.fake_openai import make_app, serve_app

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}},
    "required": ["answer"],
    "additionalProperties": False,
}

# Everything the SDK-built pass-through used to drop, rename, add or consume.
RICH: dict[str, Any] = {
    "model": "client-name",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is six times seven?"},
    ],
    "user": "user-123",
    "metadata": {"session": "abc", "tier": "gold"},
    "parallel_tool_calls": False,
    "logit_bias": {"1734": -100, "50256": 5},
    "service_tier": "flex",
    "reasoning_effort": "low",
    "chat_template_kwargs": {"enable_thinking": False},
    "guided_json": SCHEMA,
    "guided_decoding_backend": "xgrammar",
    "top_k": 5,
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "answer_schema", "strict": True, "schema": SCHEMA},
    },
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "calc",
                "description": "Evaluate arithmetic.",
                "parameters": {"type": "object", "properties": {"expr": {"type": "string"}}},
                "strict": True,
            },
        }
    ],
    "tool_choice": {"type": "function", "function": {"name": "calc"}},
    "unknown_vendor_field": {"nested": [1, 2.5, None, True, "ünïcode ✓"], "big": 2**53 + 1},
    "max_tokens": 3,
    "seed": 7,
}


@pytest.fixture(scope="module", name="fake")
def served_fake() -> Iterator[tuple[str, Any]]:
    """The loopback fake of tests/fake_openai.py, and its app (what it was sent)."""
    app = make_app()
    with serve_app(app) as url:
        yield url, app


@pytest.fixture(name="passthrough")
async def open_passthrough() -> AsyncIterator[PassThrough]:
    async with PassThrough(trust_env=False) as pt:
        yield pt


def endpoint(fake: tuple[str, Any], profile: str, **config: Any) -> EndpointConfig:
    return EndpointConfig(base_url=f"{fake[0]}/{profile}/v1", **config)


@asynccontextmanager
async def hand_written(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[EndpointConfig]:
    """An endpoint on 127.0.0.1 that answers every chat request with ``handler``."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        yield EndpointConfig(base_url=str(server.make_url("/v1")))


def last_request(fake: tuple[str, Any]) -> tuple[str, dict[str, Any], dict[str, str]]:
    app = fake[1]
    profile, body = app.state.requests[-1]
    return profile, body, app.state.headers[-1]


async def relay(stream: RelayStream) -> bytes:
    async with stream:
        return b"".join([part async for part in stream])
