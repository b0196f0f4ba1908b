"""The built-in tools on their own: the calculator's exactness and its refusals of hostile
input (each bounded in time), the python tool in the real bwrap sandbox (output, errors,
timeouts, a session kept by replay), and the registry's refusal of options it cannot honour.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest

from ponder.errors import InvalidRequestError, SandboxUnavailableError, UnsupportedFeatureError
from ponder.sandbox import RunResult, Sandbox, SandboxLimits, SandboxStatus
from ponder.tools.base import Tool, as_function_tool
from ponder.tools.builtin import open_toolbox
from ponder.tools.calculator import CalculatorTool
from ponder.tools.python import SHOWN_CHARS, PythonTool


async def calc(expression: Any) -> tuple[str, bool]:
    result = await CalculatorTool().call({"expression": expression})
    return result.output, result.is_error


# -- the calculator -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0.1 + 0.2", "0.3"),
        ("2**100", "1267650600228229401496703205376"),
        ("(2**64 - 1) / 3", "6148914691236517205"),
        ("1/3 + 1/6", "0.5"),
        ("1/3", "1/3 (≈ 0.33333333333333333333333333333333333333333333333333)"),
        ("-(3 - 5) * 4 % 5", "3"),
        ("7 // -2", "-4"),
        ("2**-3", "0.125"),
        ("sqrt(144/25)", "2.4"),
        ("round(2/3, 2) + abs(-1) + min(3, 1.5) + max(0, -1) + floor(2.7) + ceil(0.2)", "6.17"),
        ("1e3 + 1_000", "2000"),
    ],
)
async def test_the_calculator_is_exact(expression: str, expected: str) -> None:
    assert await calc(expression) == (expected, False)


async def test_what_cannot_be_exact_says_so() -> None:
    output, error = await calc("sqrt(2)")
    assert not error and output.startswith("≈ 1.41421356237309504880") and "approximate" in output


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("9**9**9", "too large"),
        ("10**10**10", "too large"),
        ("2**1000000.5", "too large"),
        ("1e999999999", "too large"),
        ("2**50000 * 2**50000 * 2**50000", "too large"),
        ("(" * 250 + "1" + ")" * 250, "not an expression"),
        ("-" * 600 + "1", "parts"),
        ("1+" * 600 + "1", "longer than"),
        ("x + 1", "unknown name 'x'"),
        ("().__class__", "Attribute"),
        ("(1).real", "Attribute"),
        ('__import__("os").system("id")', "only these functions"),
        ("[x for x in range(10**9)]", "ListComp"),
        ("lambda: 1", "Lambda"),
        ("1/0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("0**-1", "division by zero"),
        ("sqrt(-1)", "negative"),
        ("(-8)**(1/3)", "negative"),
        ("'a' * 10", "only numbers"),
        ("True + 1", "only numbers"),
        ("1 if 1 else 2", "IfExp"),
        ("round(1, 10**9)", "small integer"),
        ("max()", "at least one"),
        ("sqrt(1, 2)", "one argument"),
        ("abs(x=1)", "keyword"),
        ("1 +", "not an expression"),
    ],
)
async def test_hostile_expressions_are_errors_the_model_sees_and_never_hang(
    expression: str, why: str
) -> None:
    started = time.perf_counter()
    output, error = await calc(expression)
    assert error and output.startswith("error:") and why in output, output
    assert time.perf_counter() - started < 1.0


async def test_an_exact_value_too_long_to_show_is_rounded_and_says_so() -> None:
    output, error = await calc("3**20000")
    assert not error and "9543 digits" in output and "shown rounded" in output


async def test_missing_arguments_are_an_error_result() -> None:
    assert (await CalculatorTool().call({})).is_error
    assert (await calc(42))[1]


# -- the python tool, in the real sandbox -------------------------------------------------------
@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox()


async def test_python_returns_output_and_exit_status(sandbox: Sandbox) -> None:
    result = await PythonTool(sandbox).call({"code": "print(sum(range(101)))"})
    assert not result.is_error
    assert result.output == "exit status 0\nstdout:\n5050\n"
    assert result.details["returncode"] == 0


async def test_a_failing_program_is_an_error_result_with_its_traceback(sandbox: Sandbox) -> None:
    result = await PythonTool(sandbox).call({"code": "print('before')\n1/0"})
    assert result.is_error
    assert "exit status 1" in result.output and "before" in result.output
    assert "ZeroDivisionError" in result.output


async def test_a_program_that_runs_too_long_times_out(sandbox: Sandbox) -> None:
    started = time.perf_counter()
    result = await PythonTool(sandbox, timeout_seconds=1).call({"code": "while True: pass"})
    assert result.is_error and "timed out after 1 s" in result.output
    assert time.perf_counter() - started < 10


async def test_the_sandbox_isolates_the_program(sandbox: Sandbox) -> None:
    code = "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)"
    result = await PythonTool(sandbox).call({"code": code})
    assert result.is_error and "Error" in result.output


async def test_long_output_is_cut_for_the_model(sandbox: Sandbox) -> None:
    result = await PythonTool(sandbox).call({"code": "print('x' * 20000)"})
    assert not result.is_error and "characters cut" in result.output
    assert len(result.output) < SHOWN_CHARS + 200


async def test_a_session_replays_earlier_successful_cells(sandbox: Sandbox) -> None:
    tool = PythonTool(sandbox, session=True)
    first = await tool.call({"code": "x = 20\nprint('first')"})
    failed = await tool.call({"code": "y = 1\nraise ValueError('no')"})
    second = await tool.call({"code": "print(x + 22, 'y' in globals())"})
    assert first.output.endswith("first\n") and failed.is_error
    # x survived; the failed cell was not replayed; the first cell's print was not repeated.
    assert second.output == "exit status 0\nstdout:\n42 False\n"


async def test_without_a_session_nothing_is_kept(sandbox: Sandbox) -> None:
    tool = PythonTool(sandbox)
    await tool.call({"code": "x = 20"})
    result = await tool.call({"code": "print(x)"})
    assert result.is_error and "NameError" in result.output


class DownSandbox:
    async def status(self) -> SandboxStatus:
        return SandboxStatus(mode="bwrap", available=False, detail="bwrap is missing", fix="x")

    async def run(
        self,
        code: str,
        limits: SandboxLimits | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> RunResult:
        raise AssertionError("never run")


async def test_a_sandbox_that_cannot_run_is_refused_before_any_call() -> None:
    toolbox = open_toolbox([("tools[0]", {"type": "python"})], DownSandbox())
    with pytest.raises(SandboxUnavailableError) as caught:
        await toolbox.ready()
    assert caught.value.status_code == 400 and "bwrap is missing" in caught.value.message


# -- the registry -------------------------------------------------------------------------------
def test_the_registry_builds_each_type_with_its_options(sandbox: Sandbox) -> None:
    box = open_toolbox(
        [
            ("tools[0]", {"type": "python", "session": True, "timeout_seconds": 3}),
            ("tools[1]", {"type": "calculator"}),
        ],
        sandbox,
    )
    python, calculator = box.tools
    assert isinstance(python, PythonTool) and python.session and python.timeout_seconds == 3
    assert all(isinstance(t, Tool) for t in box.tools)
    assert as_function_tool(calculator)["function"]["name"] == "calculator"
    (interpreter,) = open_toolbox(
        [("tools[0]", {"type": "code_interpreter", "container": {"type": "auto"}})], sandbox
    ).tools
    assert isinstance(interpreter, PythonTool) and interpreter.session


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "calculator", "precision": 5},
        {"type": "python", "session": "yes"},
        {"type": "python", "timeout_seconds": 3600},
        {"type": "python", "network": True},
        {"type": "code_interpreter", "container": "cntr_123"},
        {"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["f"]}},
        {"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "4g"}},
    ],
)
def test_options_it_cannot_honour_are_a_400(sandbox: Sandbox, spec: dict[str, Any]) -> None:
    with pytest.raises((InvalidRequestError, UnsupportedFeatureError)) as caught:
        open_toolbox([("tools[0]", spec)], sandbox)
    assert caught.value.status_code == 400 and (caught.value.param or "").startswith("tools[0]")


def test_a_tool_named_twice_is_a_400(sandbox: Sandbox) -> None:
    with pytest.raises(InvalidRequestError):
        open_toolbox(
            [("tools[0]", {"type": "python"}), ("tools[1]", {"type": "code_interpreter"})], sandbox
        )
