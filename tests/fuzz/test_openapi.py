"""Schemathesis against the live OpenAPI document: a real Ponder server on loopback (in front
of the fake OpenAI endpoint, an in-memory database, an admin key), its ``/openapi.json``
loaded over HTTP, and every operation in it fuzzed with positive and negative cases under a
fixed seed, as the admin, as nobody and with a key that does not exist, sometimes naming a
team and a key that exist.

Every response is run through schemathesis's checks. No 5xx, no hang and no unhandled
exception is the goal (R1) and never expected to fail. Whether the document tells the truth
about statuses and content types is checked too; where it does not, the test is marked as
an expected failure that names what the document leaves out, so that declaring it turns the
mark into a failure to remove.

``bench/fuzz.py`` runs the same fuzzer for longer.
"""

from __future__ import annotations

import httpx
import pytest

from tests.fuzz.census import SEED
from tests.fuzz.findings import Report, describe
from tests.fuzz.openapi_fuzzer import fuzz_openapi
from tests.fuzz.report_tests import (  # noqa: F401 (collected and run here)
    test_errors_are_openai_shaped,
    test_no_server_errors,
)
from tests.fuzz.server import ADMIN, Live, healthy

# About half of the suite's fuzzed requests (tests/fuzz/test_extensions.py has the rest).
CASES = 500


@pytest.fixture(scope="module")
def report(live: Live) -> Report:
    return fuzz_openapi(live, cases=CASES, seed=SEED)


def test_every_operation_in_the_document_was_fuzzed(live: Live, report: Report) -> None:
    document = httpx.get(f"{live.url}/openapi.json").json()
    operations = {
        f"{method.upper()} {path}" for path, ops in document["paths"].items() for method in ops
    }
    assert operations == set(report.cases)
    assert sum(report.cases.values()) >= CASES * 0.9


def test_bodies_and_headers_match_the_document(report: Report) -> None:
    problems = report.of("response_schema_conformance", "response_headers_conformance")
    assert not problems, "responses unlike the document:\n" + describe(problems)


def test_every_status_is_documented(report: Report) -> None:
    problems = report.of("status_code_conformance")
    assert not problems, "statuses the document does not declare:\n" + describe(problems)


def test_every_content_type_is_documented(report: Report) -> None:
    problems = report.of("content_type_conformance")
    assert not problems, "content types the document does not declare:\n" + describe(problems)


def test_healthy_afterwards(live: Live, report: Report) -> None:
    assert healthy(live.url)
    reply = httpx.post(
        f"{live.url}/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"]
