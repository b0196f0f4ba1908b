"""Fixtures of the fuzzing tests: each test module fuzzes a live server of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.server import Live, live_ponder

# The census tests both test modules import and run: their asserts are rewritten as a test
# module's own are (this must come before the import).
pytest.register_assert_rewrite("tests.fuzz.report_tests")


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    """Ponder on loopback (:func:`tests.fuzz.server.live_ponder`), one per test module."""
    with live_ponder() as server:
        yield server
