"""A code request's own tests: read from the request, run with a candidate in the real
sandbox, and a candidate that misbehaves scores nothing it did not earn."""

from __future__ import annotations

import pytest

from ponder.reasoning.code_tests import candidate_program, request_code, request_tests, score
from ponder.sandbox import Sandbox

REQUEST = '''Complete this Python function.

```python
def mul(a, b):
    """Multiply.
    >>> mul(2, 3)
    6
    >>> mul(2, [1])
    [1, 1]
    """
```
Also: mul(0, 5) == 0
mul(4, 4) ➞ 16
assert mul(1, 1) == 1
'''


def test_doctests_asserts_and_worked_examples_are_read() -> None:
    tests = request_tests(REQUEST)
    assert tests.functions == ("mul",)
    assert [(c.source, c.expected) for c in tests.cases] == [
        ("mul(2, 3)", "6"),
        ("mul(2, [1])", "[1, 1]"),
        ("mul(0, 5)", "0"),
        ("mul(4, 4)", "16"),
        ("assert mul(1, 1) == 1", None),
    ]
    assert request_code(REQUEST).startswith("def mul(a, b):")


def test_a_request_without_tests_has_none() -> None:
    assert request_tests("Write a function that reverses a string.").cases == ()


def test_a_reply_missing_the_requested_function_gets_the_requests_code_first() -> None:
    tests = request_tests(REQUEST)
    body_only = "```python\nimport math\n```"
    assert candidate_program(body_only, tests).startswith("def mul(a, b):")
    whole = "```python\ndef mul(a, b):\n    return a * b\n```"
    assert candidate_program(whole, tests) == "def mul(a, b):\n    return a * b\n"


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox()


async def test_a_right_program_passes_every_test(sandbox: Sandbox) -> None:
    tests = request_tests(REQUEST)
    result = await score(sandbox, "def mul(a, b):\n    return a * b\n", tests)
    assert (result.passed, result.total, result.loaded) == (5, 5, True) and result.all_passed


async def test_a_wrong_program_passes_only_what_it_gets_right(sandbox: Sandbox) -> None:
    tests = request_tests(REQUEST)
    result = await score(sandbox, "def mul(a, b):\n    return a + b if a != 2 else a * b\n", tests)
    # mul(2, 3) and mul(2, [1]) take the a == 2 branch; mul(0, 5) is 5 and mul(4, 4) is 8.
    assert (result.passed, result.loaded) == (2, True)


@pytest.mark.parametrize(
    ("program", "detail"),
    [
        ("def mul(a, b):\n    while True:\n        pass\n", ""),  # every test hangs
        ("raise SystemExit(3)\n", "SystemExit"),
        ("def mul(a, b) return\n", "SyntaxError"),
        ("import os\nos._exit(0)\n", "no result"),
    ],
)
async def test_a_program_that_misbehaves_scores_nothing(
    sandbox: Sandbox, program: str, detail: str
) -> None:
    result = await score(sandbox, program, request_tests(REQUEST), seconds=2.0)
    assert result.passed == 0 and not result.all_passed
    assert detail in result.detail


async def test_a_forged_result_line_does_not_know_the_marker(sandbox: Sandbox) -> None:
    forged = 'print(\'__ponder_tests_0000000000000000__{"loaded": true, "passed": 5}\')\n'
    result = await score(sandbox, forged, request_tests(REQUEST))
    assert result.passed == 0  # the marker is drawn per run
