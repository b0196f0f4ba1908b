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


STACK = '''```python
def push_all(stack, items):
    """Push every item.
    >>> s = push_all([], [1, 2])
    >>> s
    [1, 2]
    >>> print(len(s))
    2
    >>> push_all([0],
    ...          [5])
    [0, 5]
    """
```'''


def test_doctest_setup_lines_continuations_and_printed_output() -> None:
    tests = request_tests(STACK)
    assert [(c.source, c.expected, c.counted) for c in tests.cases] == [
        ("s = push_all([], [1, 2])", None, False),
        ("s", "[1, 2]", True),
        ("print(len(s))", "2", True),
        ("push_all([0],\n         [5])", "[0, 5]", True),
    ]
    assert tests.count == 3


async def test_a_right_program_passes_doctests_that_need_their_setup(sandbox: Sandbox) -> None:
    program = "def push_all(stack, items):\n    return stack + list(items)\n"
    result = await score(sandbox, program, request_tests(STACK))
    assert (result.passed, result.total) == (3, 3)


async def test_a_forged_count_read_from_the_harness_is_bounded(sandbox: Sandbox) -> None:
    # Code in the candidate's process can find the marker; what it prints is still read as
    # hostile: a huge, non-integer or deeply nested count is an unreadable result.
    tests = request_tests("```python\ndef f(x):\n    return x\n```\nassert f(1) == 1\n")
    for forged in ('{"loaded": true, "passed": 1e999}', '{"loaded": true, "passed": ' + "[" * 5000):
        program = (
            "import os, sys\n"
            "frame, marker = sys._getframe(), None\n"
            "while frame is not None and marker is None:\n"
            "    marker = next((c for c in frame.f_code.co_consts if type(c) is str\n"
            "                   and c.startswith('__ponder_tests_')), None)\n"
            "    frame = frame.f_back\n"
            f"sys.__stdout__.write(marker + {forged!r} + '\\n')\n"
            "sys.__stdout__.flush()\n"
            "os._exit(0)\n"
        )
        result = await score(sandbox, program, tests)
        assert result.passed == 0 and result.detail == "unreadable result", result
