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
_FENCED = re.compile(r"```(?:python|py)?[ \t]*+\n(.*?)```", re.DOTALL)
_DEF = re.compile(r"^[ \t]*+(?:async\s++)?def\s++([A-Za-z_]\w*)\s*+\(", re.MULTILINE)
_CODE_START = re.compile(r"^(?:from\s++\S+\s++import|import\s|def\s|class\s|@)", re.MULTILINE)
_DOCTEST = re.compile(r"^\s*+>>>\s?(.*)$")
_CONTINUATION = re.compile(r"^\s*+\.\.\.(?:\s(.*))?$")
READ_CHARS = 100_000  # tests are read from this much of a request
_ARROWS = r"(?:==|➞|=>|->|➡|→|should\s++return|returns?)"


@dataclass(frozen=True, slots=True)
class TestCase:
    source: str  # an expression or statement (several lines for a doctest with "...")
    expected: str | None  # the printed or returned value's text; None: it must not raise
    counted: bool = True  # False: a doctest's setup line, run but not scored


@dataclass(frozen=True, slots=True)
class RequestTests:
    code: str  # the code the request gave (a signature and docstring), or ""
    cases: tuple[TestCase, ...]
    functions: tuple[str, ...]  # the functions the request's code defines

    @property
    def count(self) -> int:
        """The tests that are scored (a doctest's setup lines are run, not scored)."""
        return sum(c.counted for c in self.cases)


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
    text = text[:READ_CHARS]
    code = request_code(text)
    functions = tuple(dict.fromkeys(_DEF.findall(code)))
    example = _worked_example(functions)
    cases: list[TestCase] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines) and sum(c.counted for c in cases) < MAX_TESTS:
        doctest = _DOCTEST.match(lines[i])
        i += 1
        if doctest:
            source = [doctest.group(1).rstrip()]
            while i < len(lines) and (more := _CONTINUATION.match(lines[i])):
                source.append(more.group(1).rstrip())
                i += 1
            expected: list[str] = []
            while i < len(lines) and lines[i].strip() and not _DOCTEST.match(lines[i]):
                if lines[i].strip() in ('"""', "'''"):
                    break
                expected.append(lines[i].strip())
                i += 1
            if source[0].strip():
                joined = "\n".join(source).strip()
                # A line with no output sets up the next (``>>> s = Stack()``): run, not scored.
                cases.append(TestCase(joined, "\n".join(expected) or None, bool(expected)))
            continue
        stripped = lines[i - 1].strip()
        if stripped.startswith("assert "):
            cases.append(TestCase(stripped, None))
        elif example is not None and (found := example.match(lines[i - 1])):
            cases.append(TestCase(found.group(1), found.group(2).strip().rstrip(".")))
    return RequestTests(code=code, cases=tuple(cases), functions=functions)


def _worked_example(functions: tuple[str, ...]) -> re.Pattern[str] | None:
    """``f(2) == 4``, ``f(2) ➞ 4``, ``- f(2) => 4`` for a function the request defines."""
    if not functions:
        return None
    names = "|".join(map(re.escape, functions))
    return re.compile(
        rf"^[ \t]*+(?:(?:#|-|\*|[A-Za-z][\w ]{{0,20}}:)[ \t]*+)?((?:{names})\(.*\))"
        rf"\s*+{_ARROWS}\s*+(.+)$"
    )


def candidate_program(reply: str, tests: RequestTests) -> str:
    """The program a reply offers: its longest code block (or the reply), after the request's
    own code when the reply leaves out a function the request defined."""
    code = extract_code(reply) or reply
    missing = [name for name in tests.functions if not re.search(rf"\bdef\s++{name}\s*+\(", code)]
    return f"{tests.code}\n\n{code}" if missing and tests.code else code


_HARNESS = """
import contextlib as _contextlib
import io as _io
import json as _json
_cases = _json.loads({cases!r})
_ns = {{"__name__": "__candidate__"}}
try:
    exec(compile({code!r}, "<candidate>", "exec"), _ns)
except BaseException as _error:
    print({marker!r} + _json.dumps({{"loaded": False, "detail": repr(_error)[:200]}}))
    raise SystemExit(0)


def _run(_source):
    _out = _io.StringIO()
    with _contextlib.redirect_stdout(_out):
        try:
            _code = compile(_source, "<test>", "eval")
        except SyntaxError:
            exec(compile(_source, "<test>", "exec"), _ns)
            return None, _out.getvalue()
        return eval(_code, _ns), _out.getvalue()


_passed = 0
for _source, _expected, _counted in _cases:
    try:
        _got, _printed = _run(_source)
        _ok = _expected is None
        if not _ok:
            try:
                _ok = bool(_got == eval(compile(_expected, "<expected>", "eval"), _ns))
            except BaseException:
                _ok = False
            _ok = _ok or repr(_got) == _expected or (_got is None and _printed.strip() == _expected)
    except BaseException:
        _ok = False
    if _counted and _ok:
        _passed += 1
print({marker!r} + _json.dumps({{"loaded": True, "passed": _passed}}))
"""


async def score(
    sandbox: ProgramSandbox, program: str, tests: RequestTests, seconds: float = 5.0
) -> Score:
    """How many of the request's tests ``program`` passes, run in the sandbox."""
    total = tests.count
    marker = f"__ponder_tests_{secrets.token_hex(8)}__"
    cases = json.dumps([[c.source, c.expected, c.counted] for c in tests.cases])
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
    # The line comes from the candidate's process, so it is read as hostile: bounded, and
    # anything but the two plain fields is unreadable.
    try:
        reported = json.loads(lines[-1][len(marker) :][:400])
        passed, loaded = reported.get("passed", 0), reported["loaded"]
        if not isinstance(passed, int) or not isinstance(loaded, bool):
            raise ValueError("not a count")
        detail = str(reported.get("detail", ""))[:200]
        return Score(min(max(passed, 0), total), total, loaded, detail)
    except Exception:  # a forged line: too deep, not JSON, not a mapping
        return Score(0, total, False, "unreadable result")
