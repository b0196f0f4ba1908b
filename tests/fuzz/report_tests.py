"""The tests every fuzzer's census must pass, written once for both of them.

``test_openapi.py`` and ``test_extensions.py`` each import these, so that pytest collects
them in each module, where they run against that module's own ``report`` fixture (the
census of its fuzzer). This module's name does not match ``test_*.py``: it is not collected
on its own.
"""

from __future__ import annotations

from tests.fuzz.findings import Report, describe


def test_no_server_errors(report: Report) -> None:
    """No 5xx, hang, dropped connection or unhandled exception, whatever the request."""
    problems = report.server_side()
    assert not problems, "server-side failures:\n" + describe(problems)


def test_errors_are_openai_shaped(report: Report) -> None:
    problems = report.of("error shape")
    assert not problems, "error bodies not OpenAI-shaped:\n" + describe(problems)
