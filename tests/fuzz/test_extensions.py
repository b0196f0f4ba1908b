"""Hostile chat requests aimed at Ponder's own extensions, sent as raw bytes to a real server
on loopback: the ``ponder`` field (strategies named right and wrong, parameters of the wrong
type, non-finite and huge numbers, ``over`` chains past the bound, unknown keys),
``reasoning_effort``, the model-name form ``ponder/<strategy>;k=v/<model>`` (odd keys and
values, lone surrogates, very long names), odd messages, ``stream``, ``n``, ``max_tokens``
extremes and the ``X-Ponder-Local-Only`` header, in JSON and in bytes that are not JSON or
not Unicode. The strategies are in :mod:`tests.fuzz.chat_requests`; the seed is fixed.

Every reply is under 500; an error is ``{"error": {"message", "type", "param", "code"}}``;
a streamed request that cannot run is refused with its 4xx before the stream starts (not a
200 and an error event); and afterwards the server is healthy, and a connection that was
answered with an error serves the next request.
"""

from __future__ import annotations

import http.client
import json
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fuzz.census import SEED
from tests.fuzz.chat_fields import STRATEGY_NAMES
from tests.fuzz.chat_fuzzer import fuzz_chat
from tests.fuzz.chat_requests import normal_body
from tests.fuzz.findings import Report, describe, error_shape_problem
from tests.fuzz.report_tests import (  # noqa: F401 (collected and run here)
    test_errors_are_openai_shaped,
    test_no_server_errors,
)
from tests.fuzz.server import ADMIN, Live, healthy

# About half of the suite's fuzzed requests (tests/fuzz/test_openapi.py has the rest).
CASES = 500
AUTH = MappingProxyType({"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})


@pytest.fixture(scope="module")
def report(live: Live) -> Report:
    return fuzz_chat(live, cases=CASES, seed=SEED)


def test_enough_cases_got_through(report: Report) -> None:
    """The fuzzer reaches past validation: a good share of its requests run."""
    assert sum(report.cases.values()) == CASES
    statuses = next(iter(report.statuses.values()))
    assert statuses[200] >= CASES // 5, statuses


def test_streams_are_refused_before_they_start(report: Report) -> None:
    """A stream that fails does so with its 4xx, not a 200 and an error event, and one
    that starts ends with [DONE]."""
    problems = report.of("error event after 200", "stream cut", "malformed event")
    assert not problems, "streams that started and then failed:\n" + describe(problems)


def test_replies_are_chat_completions(report: Report) -> None:
    problems = report.of("malformed reply")
    assert not problems, "200s that are not chat completions:\n" + describe(problems)


def nested(depth: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"strategy": "cot"}
    for _ in range(depth):
        spec = {"strategy": "self-consistency", "n": 1, "over": spec}
    return spec


REFUSED_STREAMS = (
    pytest.param({"ponder": {"strategy": "self-consistency", "n": 0}}, {}, id="n=0"),
    pytest.param({"ponder": {"strategy": "no-such-strategy"}}, {}, id="unknown-strategy"),
    pytest.param({"ponder": {"strategy": "cot", "unknown": 1}}, {}, id="unknown-param"),
    pytest.param({"ponder": nested(5)}, {}, id="over-5-deep"),
    pytest.param({"ponder": {"strategy": "auto", "budget_usd": 1}}, {}, id="usd-budget-no-prices"),
    pytest.param({"ponder": {"strategy": "beam-search"}}, {}, id="beam-search-no-continuation"),
    pytest.param(
        {"ponder": {"strategy": "thinking-budget"}}, {}, id="thinking-budget-no-continuation"
    ),
    pytest.param({"model": "ponder/auto;budget_tokens=1/m"}, {}, id="auto-budget_tokens=1"),
    pytest.param(
        {"ponder": {"strategy": "cot"}, "model": "ponder/cot/m"}, {}, id="ponder-and-form"
    ),
    pytest.param(
        {"ponder": {"strategy": "cot"}, "tools": [{"type": "function", "function": {"name": "f"}}]},
        {},
        id="strategy-with-tools",
    ),
    pytest.param({"model": "ponder/cot;temperature=NaN/m"}, {}, id="form-NaN"),
    pytest.param(
        {"model": "ponder/self-consistency;n=99999999999999999999/m"}, {}, id="form-huge-n"
    ),
    pytest.param({"model": "ponder/cot;x/m"}, {}, id="form-not-key=value"),
    pytest.param({"model": "nope"}, {}, id="unknown-model"),
    pytest.param({"reasoning_effort": "extreme"}, {}, id="unknown-effort"),
    pytest.param({"n": 9}, {}, id="n-over-max_n"),
    pytest.param({"models": ["m", "l"]}, {}, id="upstream-routing-field"),
    pytest.param({"top_logprobs": 2}, {}, id="top_logprobs-without-logprobs"),
    pytest.param({}, {"X-Ponder-Local-Only": "maybe"}, id="local-only-not-boolean"),
    pytest.param({}, {"X-Ponder-Local-Only": "true"}, id="local-only-remote-model"),
)


@pytest.mark.parametrize(("change", "headers"), REFUSED_STREAMS)
def test_a_stream_that_cannot_run_is_a_4xx(
    live: Live, change: dict[str, Any], headers: dict[str, str]
) -> None:
    body = {**normal_body(), "stream": True, **change}
    reply = httpx.post(
        f"{live.url}/v1/chat/completions",
        content=json.dumps(body),
        headers={**AUTH, **headers},
        timeout=30,
    )
    assert 400 <= reply.status_code < 500, reply.text[:500]
    assert reply.headers["content-type"].startswith("application/json")
    assert error_shape_problem(reply.text) is None, reply.text


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_a_stream_fails_as_its_whole_reply_would(live: Live, strategy: str) -> None:
    """Streamed or not, a strategy that cannot run here is refused with the same 4xx; one
    that can streams to [DONE] with no error event."""

    def send(stream: bool) -> httpx.Response:
        body = {**normal_body(), "stream": stream, "ponder": {"strategy": strategy}}
        url = f"{live.url}/v1/chat/completions"
        return httpx.post(url, content=json.dumps(body), headers=AUTH, timeout=60)

    whole, streamed = send(False), send(True)
    if whole.status_code >= 400:
        assert streamed.status_code == whole.status_code, streamed.text[:500]
        assert streamed.json() == whole.json()
        return
    assert streamed.status_code == 200, streamed.text[:500]
    events = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert not [e for e in events if '"error"' in e], streamed.text[:1000]


# Requests answered with an error: invalid JSON, invalid UTF-8, a validation error, an
# unknown model, a bad header, a body nested past the parser's recursion limit, a bearer
# token that is not ASCII.
ERRORS = (
    pytest.param(b'{"model": "m", "messages": [', {}, id="invalid-json"),
    pytest.param(b'{"model": "m\xff", "messages": []}', {}, id="invalid-utf8"),
    pytest.param(json.dumps({**normal_body(), "n": 0}).encode(), {}, id="validation"),
    pytest.param(
        json.dumps({**normal_body(), "model": "nope", "stream": True}).encode(),
        {},
        id="unknown-model",
    ),
    pytest.param(
        json.dumps(normal_body()).encode(), {"X-Ponder-Local-Only": "maybe"}, id="bad-header"
    ),
    pytest.param(
        b'{"model": "m", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        {},
        id="nested-past-recursion-limit",
    ),
    pytest.param(
        json.dumps(normal_body()).encode(), {"Authorization": b"Bearer \xff"}, id="non-ascii-bearer"
    ),
)


@pytest.mark.parametrize(("body", "headers"), ERRORS)
def test_the_connection_serves_on_after_an_error(
    live: Live, report: Report, body: bytes, headers: dict[str, str | bytes]
) -> None:
    """After the fuzzing, an error reply leaves its keep-alive connection open and the next
    request on it (a normal one) succeeds."""
    where = urlsplit(live.url)
    connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=30)
    try:
        connection.request("POST", "/v1/chat/completions", body, {**AUTH, **headers})
        first = connection.getresponse()
        first.read()
        assert first.status >= 400
        assert (first.getheader("connection") or "").lower() != "close"
        socket = connection.sock
        assert socket is not None, "the server closed the connection after the error"
        connection.request("POST", "/v1/chat/completions", json.dumps(normal_body()), AUTH)
        second = connection.getresponse()
        answer = json.loads(second.read())
        assert connection.sock is socket, "the second request needed a new connection"
        assert second.status == 200, answer
        assert answer["choices"][0]["message"]["content"]
    finally:
        connection.close()


def test_healthy_afterwards(live: Live, report: Report) -> None:
    assert healthy(live.url)
    reply = httpx.post(
        f"{live.url}/v1/chat/completions", json=normal_body(), headers=AUTH, timeout=30
    )
    assert reply.status_code == 200, reply.text
