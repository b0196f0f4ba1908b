"""A code request's own tests, and how many of them a candidate program passes.

Tests are read from the request: doctests (``>>> f(1)`` then the expected output),
``assert`` lines, and worked examples on one line (``f(1) == 2``, ``f(1) ➞ 2``,
``f(1) => 2``) that call a function the request defines. Nothing of the request or the
candidate is compiled or run here: each candidate runs with the tests in the sandbox, and the
harness prints one result line. A candidate runs in the same process as the harness, so one
written to cheat could print a false count; that only changes which candidate is picked for
its own request, never what the sandbox lets it do.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass

from ponder.reasoning.programs import extract_code
from ponder.sandbox import ProgramSandbox, SandboxLimits

MAX_TESTS = 32  # a request's tests beyond these are not run
_FENCED = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)
_DEF = re.compile(r"^\s*(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)
_CODE_START = re.compile(r"^(?:from\s+\S+\s+import|import\s|def\s|class\s|@)", re.MULTILINE)
_DOCTEST = re.compile(r"^\s*>>>\s?(.*)$")
_ARROWS = r"(?:==|➞|=>|->|➡|→|should\s+return|returns?)"


@dataclass(frozen=True, slots=True)
class TestCase:
    source: str  # an expression, or an assert statement when ``expected`` is None
    expected: str | None


@dataclass(frozen=True, slots=True)
class RequestTests:
    code: str  # the code the request gave (a signature and docstring), or ""
    cases: tuple[TestCase, ...]
    functions: tuple[str, ...]  # the functions the request's code defines


@dataclass(frozen=True, slots=True)
class Score:
    passed: int
    total: int
    loaded: bool  # the candidate's code ran to the end of its definitions
    detail: str = ""

    @property
    def all_passed(self) -> bool:
        return self.loaded and self.passed == self.total


def request_code(text: str) -> str:
    """The code a request carries: its fenced blocks, else everything from its first
    ``def``, ``class`` or ``import`` line."""
    blocks = _FENCED.findall(text)
    if blocks:
        return "\n\n".join(str(b) for b in blocks)
    start = _CODE_START.search(text)
    return text[start.start() :] if start else ""


def request_tests(text: str) -> RequestTests:
    code = request_code(text)
    functions = tuple(dict.fromkeys(_DEF.findall(code)))
    cases: list[TestCase] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines) and len(cases) < MAX_TESTS:
        line = lines[i]
        doctest = _DOCTEST.match(line)
        if doctest:
            source, expected_lines = doctest.group(1).strip(), []
            i += 1
            while i < len(lines) and lines[i].strip() and not _DOCTEST.match(lines[i]):
                if lines[i].strip() in ('"""', "'''"):
                    break
                expected_lines.append(lines[i].strip())
                i += 1
            if source and expected_lines:
                cases.append(TestCase(source, "\n".join(expected_lines)))
            continue
        stripped = line.strip()
        if stripped.startswith("assert "):
            cases.append(TestCase(stripped, None))
        elif functions:
            example = re.match(
                rf"^\s*(?:#|-|\*|[A-Za-z][\w ]{{0,20}}:)?\s*((?:{'|'.join(map(re.escape, functions))})\(.*\))"
                rf"\s*{_ARROWS}\s*(.+?)\s*$",
                line,
            )
            if example:
                cases.append(TestCase(example.group(1), example.group(2).rstrip(".")))
        i += 1
    return RequestTests(code=code, cases=tuple(cases), functions=functions)


def candidate_program(reply: str, tests: RequestTests) -> str:
    """The program a reply offers: its longest code block (or the reply), after the request's
    own code when the reply leaves out a function the request defined."""
    code = extract_code(reply) or reply
    missing = [name for name in tests.functions if not re.search(rf"\bdef\s+{name}\s*\(", code)]
    return f"{tests.code}\n\n{code}" if missing and tests.code else code


_HARNESS = """
import json as _json
_cases = _json.loads({cases!r})
_ns = {{"__name__": "__candidate__"}}
try:
    exec(compile({code!r}, "<candidate>", "exec"), _ns)
except BaseException as _error:
    print({marker!r} + _json.dumps({{"loaded": False, "detail": repr(_error)[:200]}}))
    raise SystemExit(0)
_passed = 0
for _source, _expected in _cases:
    try:
        if _expected is None:
            exec(compile(_source, "<test>", "exec"), _ns)
            _ok = True
        else:
            _got = eval(compile(_source, "<test>", "eval"), _ns)
            try:
                _ok = _got == eval(compile(_expected, "<expected>", "eval"), _ns)
            except BaseException:
                _ok = False
            _ok = bool(_ok) or repr(_got) == _expected or str(_got) == _expected
    except BaseException:
        _ok = False
    _passed += 1 if _ok else 0
print({marker!r} + _json.dumps({{"loaded": True, "passed": _passed}}))
"""


async def score(
    sandbox: ProgramSandbox, program: str, tests: RequestTests, seconds: float = 5.0
) -> Score:
    """How many of the request's tests ``program`` passes, run in the sandbox."""
    total = len(tests.cases)
    marker = f"__ponder_tests_{secrets.token_hex(8)}__"
    cases = json.dumps([[c.source, c.expected] for c in tests.cases])
    harness = _HARNESS.format(cases=cases, code=program, marker=marker)
    result = await sandbox.run(
        harness, SandboxLimits(wall_seconds=seconds, cpu_seconds=max(1, int(seconds)))
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith(marker)]
    if not lines:
        why = (
            "timed out"
            if result.timed_out
            else (result.stderr.strip().splitlines() or ["no result"])[-1]
        )
        return Score(0, total, False, why[:200])
    try:
        reported = json.loads(lines[-1][len(marker) :])
        passed = min(max(int(reported.get("passed", 0)), 0), total)
        return Score(passed, total, bool(reported["loaded"]), str(reported.get("detail", "")))
    except (ValueError, KeyError, TypeError, AttributeError):
        return Score(0, total, False, "unreadable result")
