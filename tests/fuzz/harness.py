"""The two fuzzers, aimed at a live server (:mod:`tests.fuzz.server`), and what they found.

* :func:`fuzz_openapi`: schemathesis loads the server's own ``/openapi.json`` over HTTP and
  fuzzes every operation in it, positive and negative cases, running its checks on each
  response (no 5xx, and whether the status, content type, headers and body are the ones the
  document declares), plus the OpenAI shape of every error body.
* :func:`fuzz_chat`: Hypothesis builds hostile ``POST /v1/chat/completions`` requests as raw
  bytes, aimed at Ponder's own extensions: the ``ponder`` field (strategies, parameters of
  the wrong type, non-finite and huge numbers, nested ``over`` chains, unknown keys),
  ``reasoning_effort``, the model-name strategy form ``ponder/<strategy>;k=v/<model>``, odd
  messages, ``stream``, ``n``, ``max_tokens``, the ``X-Ponder-Local-Only`` header, invalid
  JSON and invalid Unicode. Every reply must be under 500; an error must be OpenAI-shaped; a
  stream that cannot run must be refused with its 4xx, not a 200 and an error event.

Both run as a census: every case is sent and checked, and each distinct problem is kept once
(by its kind, route and a signature, for a 5xx the innermost Ponder frame and exception of
the server's own traceback), with the count of cases that hit it. Then each server-side
problem is met again from the same seed and settings and Hypothesis shrinks it, so that the
reproduction shown is a minimal one.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, Literal, get_args, get_origin

import httpx
import hypothesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st

from ponder.reasoning.registry import BUILTIN
from tests.fuzz.server import ADMIN, Live

SEED = 20_250_611
# Seconds a single request may take before it counts as a hang.
TIMEOUT = 30.0
CHAT = "POST /v1/chat/completions"
HOSTILE_CHAT = f"{CHAT} (hostile bytes)"
# Problems on the server's side: each one fails the suite and the long pass (goal R1).
SERVER_SIDE = frozenset({"5xx", "hang", "dropped connection", "unhandled exception"})
# What is shrunk after the census: not a hang, each try of which would wait out the timeout.
SHRUNK = SERVER_SIDE - {"hang"}


# -- what was found --------------------------------------------------------------------------


@dataclass
class Finding:
    kind: str  # a SERVER_SIDE kind, "error shape", "error event after 200", or a check's name
    route: str
    status: int | None
    signature: str  # what makes two cases the same problem
    reproduction: str
    traceback: str = ""
    count: int = 1
    minimal: str | None = None  # the reproduction after Hypothesis shrank it
    # Where the census met it: the seed and the number of examples of that Hypothesis run
    # (run again with both, it meets the problem again, and then shrinks it).
    first: tuple[int, int] = (0, 0)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.route, self.signature)

    def describe(self) -> str:
        status = f" [{self.status}]" if self.status is not None else ""
        lines = [f"- {self.kind}{status} {self.route}: {self.signature} ({self.count} cases)"]
        lines.append(indent(self.minimal or self.reproduction))
        if self.traceback:
            lines.append(indent("server log:\n" + self.traceback))
        return "\n".join(lines)


@dataclass
class Report:
    cases: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    findings: dict[tuple[str, str, str], Finding] = field(default_factory=dict)
    seconds: float = 0.0

    def count(self, route: str, status: int | None) -> None:
        self.cases[route] += 1
        self.statuses.setdefault(route, Counter())[status or 0] += 1

    def add(self, finding: Finding) -> None:
        seen = self.findings.get(finding.key)
        if seen is None:
            self.findings[finding.key] = finding
        else:
            seen.count += 1

    def of(self, *kinds: str) -> list[Finding]:
        return [f for f in self.findings.values() if f.kind in kinds]

    def server_side(self) -> list[Finding]:
        return self.of(*SERVER_SIDE)

    def merge(self, other: Report) -> Report:
        merged = Report(seconds=self.seconds + other.seconds)
        for report in (self, other):
            merged.cases.update(report.cases)
            for route, counts in report.statuses.items():
                merged.statuses.setdefault(route, Counter()).update(counts)
            for finding in report.findings.values():
                merged.findings.setdefault(finding.key, finding)
        return merged

    def table(self) -> str:
        lines = []
        for route in sorted(self.cases):
            counts = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses[route].items()))
            bad = sum(f.count for f in self.server_side() if f.route == route and f.kind == "5xx")
            lines.append(f"{self.cases[route]:6d}  5xx {bad:<4d} {route}  ({counts})")
        return "\n".join(lines)


def indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def describe(findings: list[Finding]) -> str:
    return "\n".join(f.describe() for f in findings) or "(none)"


def signature_of(status: int | None, logged: list[str]) -> str:
    """What a server-side failure was: the innermost Ponder frame and the exception, from
    the server's traceback; the status alone when it logged none."""
    for entry in reversed(logged):
        lines = [line for line in entry.splitlines() if line.strip()]
        frames = [line.strip() for line in lines if line.strip().startswith('File "')]
        ours = [f for f in frames if "/ponder/" in f and "site-packages" not in f]
        where = ""
        if ours or frames:
            frame = (ours or frames)[-1]
            path, _, rest = frame.removeprefix('File "').partition('", line ')
            where = f"{path.rsplit('/src/', 1)[-1]}:{rest.split(',')[0]} "
        exception = next(
            (line for line in reversed(lines) if not line.startswith((" ", "\t"))), lines[-1]
        )
        return f"{where}{exception.strip()[:160]}"
    return f"HTTP {status}, nothing logged"


# -- schemathesis against the live document --------------------------------------------------

# Who calls: mostly the admin (so that admin routes get past authentication), sometimes
# nobody, a key that does not exist, or a token that is not ASCII (sent as Latin-1).
AUTHS = (*[f"Bearer {ADMIN}"] * 12, None, "Bearer not-a-key", "Bearer caf\u00e9")


@dataclass(frozen=True)
class Known:
    """A team and a key that exist, so that generated cases can name them (schemathesis
    alone would only ever name ones that do not)."""

    team: str
    key_id: str


def seed_tenancy(url: str) -> Known:
    auth = {"Authorization": f"Bearer {ADMIN}"}
    team = httpx.post(f"{url}/v1/admin/teams", json={"name": "fuzz-team"}, headers=auth)
    team.raise_for_status()
    key = httpx.post(
        f"{url}/v1/admin/keys", json={"team": "fuzz-team", "name": "fuzz-key"}, headers=auth
    )
    key.raise_for_status()
    return Known(team="fuzz-team", key_id=key.json()["id"])


def _name_known(case: Any, known: Known) -> None:
    """Point a case's identifiers at the team and key that exist."""
    for name, value in (("key_id", known.key_id), ("name", known.team)):
        if isinstance(case.path_parameters, dict) and name in case.path_parameters:
            case.path_parameters[name] = value
    if isinstance(case.body, dict):
        for name in ("team", "owner"):
            if name in case.body:
                scope = case.body.get("scope")
                case.body[name] = known.key_id if scope == "key" else known.team
    if isinstance(case.query, dict) and "team" in case.query:
        case.query["team"] = known.team


def _curl(prepared: Any, base: str) -> str:
    skip = {"user-agent", "accept-encoding", "accept", "connection", "content-length"}
    parts = [f"curl -X {prepared.method} '{prepared.url.replace(base, '$PONDER')}'"]
    for name, value in prepared.headers.items():
        if name.lower() not in skip and not name.lower().startswith("x-schemathesis"):
            parts.append(f"-H '{name}: {value}'")
    if prepared.body:
        body = prepared.body
        text = body.decode("utf-8", "backslashreplace") if isinstance(body, bytes) else body
        parts.append(f"--data-raw {json.dumps(text)}")
    return " ".join(parts)


def _openapi_checks() -> dict[str, Any]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi import checks

    return {
        "not_a_server_error": not_a_server_error,
        "status_code_conformance": checks.status_code_conformance,
        "content_type_conformance": checks.content_type_conformance,
        "response_headers_conformance": checks.response_headers_conformance,
        "response_schema_conformance": checks.response_schema_conformance,
    }


def _failure_line(exc: BaseException) -> str:
    inner = getattr(exc, "exceptions", None) or [exc]
    first = inner[0]
    title = getattr(first, "title", None) or type(first).__name__
    message = getattr(first, "message", None) or str(first)
    line = next((x.strip() for x in str(message).splitlines() if x.strip()), "")
    return f"{title}: {line}"[:200]


def _openapi_signature(check: str, status: int, response: Any, exc: BaseException) -> str:
    if check == "status_code_conformance":
        return f"undeclared status {status}"
    if check == "content_type_conformance":
        kind = response.headers.get("content-type", ["(none)"])
        return f"status {status}: {kind[0] if isinstance(kind, list) else kind}"
    return f"status {status}: {_failure_line(exc)}"


def fuzz_openapi(
    live: Live,
    *,
    cases: int,
    seed: int = SEED,
    shrink: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Schemathesis over every operation of the live document, positive and negative
    cases (about ``cases`` in all), with every check run on every response."""
    import requests
    import schemathesis
    from schemathesis import GenerationMode

    started = time.perf_counter()
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json", timeout=30)
    operations = [result.ok() for result in schema.get_all_operations()]
    known = seed_tenancy(live.url)
    checks = _openapi_checks()
    report = Report()
    session = requests.Session()
    pairs = [(op, mode) for op in operations for mode in GenerationMode]

    def one_case(
        op: Any, drawn: tuple[Any, str | None, bool], where: tuple[int, int], counted: bool
    ) -> list[Finding]:
        case, auth, name_known = drawn

        def count(status: int | None) -> None:
            if counted:  # not while a problem is being shrunk
                report.count(route, status)

        if name_known:
            _name_known(case, known)
        headers = {"Authorization": auth} if auth else {}
        mark = live.log.mark()
        route = op.label
        try:
            response = case.call(
                base_url=live.url, session=session, headers=headers, timeout=TIMEOUT
            )
        except requests.Timeout:
            count(None)
            what = f"{case.method} {case.formatted_path} no reply in {TIMEOUT:.0f} s"
            return [Finding("hang", route, None, "no reply", what, first=where)]
        except requests.ConnectionError as exc:
            count(None)
            logged = "\n".join(live.log.since(mark))
            what = f"{case.method} {case.formatted_path}: {exc}"
            signature = type(exc).__name__
            return [
                Finding("dropped connection", route, None, signature, what, logged, first=where)
            ]
        count(response.status_code)
        logged = live.log.since(mark)
        found: list[Finding] = []
        repro = _curl(response.request, live.url)
        for name, check in checks.items():
            if name != "not_a_server_error" and response.status_code >= 500:
                continue  # a 5xx is a 5xx finding, not a documentation one
            try:
                case.validate_response(response, checks=[check], headers=headers)
            except BaseException as exc:  # schemathesis's FailureGroup is a BaseExceptionGroup
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                status = response.status_code
                if name == "not_a_server_error":
                    kind, signature = "5xx", signature_of(status, logged)
                else:
                    kind, signature = name, _openapi_signature(name, status, response, exc)
                tb = "\n".join(logged) if kind == "5xx" else ""
                found.append(Finding(kind, route, status, signature, repro, tb, first=where))
        if response.status_code >= 400:
            problem = error_shape_problem(response.text)
            if problem is not None:
                status = response.status_code
                found.append(Finding("error shape", route, status, problem, repro, first=where))
        if logged and response.status_code < 500:
            signature = signature_of(response.status_code, logged)
            found.append(
                Finding(
                    "unhandled exception",
                    route,
                    response.status_code,
                    signature,
                    repro,
                    "\n".join(logged),
                    first=where,
                )
            )
        return found

    def run_pair(
        op: Any,
        mode: Any,
        seed_value: int,
        examples: int,
        *,
        target: tuple[str, str] | None = None,
        on_found: Callable[[Finding], None] | None = None,
    ) -> int:
        """Fuzz one operation in one mode; the number of cases sent. With ``target`` (kind,
        signature), raise on that problem so that Hypothesis shrinks it."""
        strategy = st.tuples(
            op.as_strategy(generation_mode=mode), st.sampled_from(AUTHS), st.booleans()
        )
        sent = 0

        @hypothesis.seed(seed_value)
        @settings(
            max_examples=examples,
            database=None,
            deadline=None,
            derandomize=False,
            suppress_health_check=list(HealthCheck),
            phases=(Phase.generate, Phase.shrink) if target else (Phase.generate,),
            verbosity=Verbosity.quiet,
            print_blob=False,
            report_multiple_bugs=False,
        )
        @given(drawn=strategy)
        def run(drawn: tuple[Any, str | None, bool]) -> None:
            nonlocal sent
            sent += 1
            for finding in one_case(op, drawn, (seed_value, examples), target is None):
                if target is None:
                    assert on_found is not None
                    on_found(finding)
                elif (finding.kind, finding.signature) == target:
                    assert on_found is not None
                    on_found(finding)
                    raise AssertionError(finding.signature)

        with suppress(hypothesis.errors.Unsatisfiable):  # nothing to negate, say
            run()
        return sent

    # Rounds, each spreading what is left over the operations not yet exhausted: one with
    # nothing to vary (GET /health) gives its one case and drops out.
    active = list(range(len(pairs)))
    remaining = cases
    round_number = 0
    while active and remaining > 0 and round_number < 50:
        each = max(1, math.ceil(remaining / len(active)))
        still = []
        for index in active:
            op, mode = pairs[index]
            seed_value = seed + 1000 * round_number + index
            sent = run_pair(op, mode, seed_value, each, on_found=report.add)
            remaining -= sent
            if sent >= each:
                still.append(index)
            if progress is not None:
                progress(f"{op.label} {mode.value}: {sent} cases")
            if remaining <= 0:
                break
        active = still
        round_number += 1

    if shrink:
        for finding in report.of(*SHRUNK):
            seed_value, examples = finding.first
            op, mode = pairs[(seed_value - seed) % 1000]
            shrunk: list[Finding] = []
            with suppress(Exception):
                run_pair(
                    op,
                    mode,
                    seed_value,
                    examples,
                    target=(finding.kind, finding.signature),
                    on_found=shrunk.append,
                )
            if shrunk:
                finding.minimal = shrunk[-1].reproduction
    report.seconds = time.perf_counter() - started
    return report


# -- hostile chat requests -------------------------------------------------------------------

STRATEGY_NAMES = sorted(BUILTIN)
PARAM_NAMES = sorted({name for cls in BUILTIN.values() for name in cls.Params.model_fields})
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
LITERALS = (
    *EFFORTS,
    "auto",
    "number",
    "choice",
    "yes_no",
    "text",
    "vote",
    "judge",
    "checker",
    "answers",
    "usc",
    "offline",
    "online",
    "beta",
    "dirichlet",
    "esc",
    "logprob",
)
SURROGATES = ("\ud800", "\udbff", "\udc00", "\udfff")
ODD_TEXT = (
    "",
    " ",
    "\x00",
    "null",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "ponder/",
    "/",
    ";",
    "=",
    "#",
    "%00",
    "\u202e",
    "\ufeff",
    "😀",
    "é",
    *SURROGATES,
)


def texts(max_size: int = 24) -> st.SearchStrategy[str]:
    """Text with lone surrogates, control characters and every plane."""
    alphabet = st.one_of(st.characters(), st.sampled_from((*SURROGATES, "\x00", "\n", '"')))
    return st.one_of(st.sampled_from(ODD_TEXT), st.text(alphabet, max_size=max_size))


def long_text() -> st.SearchStrategy[str]:
    return st.builds(
        lambda n, c: c * n, st.sampled_from([257, 1025, 5000, 70_000]), st.sampled_from("mé😀")
    )


HUGE = (0, -1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, 10**300)
numbers = st.one_of(
    st.integers(-3, 70),
    st.sampled_from(HUGE),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, 1e-320, 1e308, -0.0, float("nan"), float("inf"), -float("inf")]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(texts(8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _bounds(info: Any) -> tuple[float | None, float | None, bool, bool]:
    """A parameter's (low, high, low exclusive, high exclusive) from its field metadata."""
    low = high = None
    low_open = high_open = False
    for item in info.metadata:
        if getattr(item, "ge", None) is not None:
            low = item.ge
        if getattr(item, "gt", None) is not None:
            low, low_open = item.gt, True
        if getattr(item, "le", None) is not None:
            high = item.le
        if getattr(item, "lt", None) is not None:
            high, high_open = item.lt, True
    return low, high, low_open, high_open


def _plausible(info: Any) -> st.SearchStrategy[Any]:
    """A value a parameter accepts, small where it is a count (so that a strategy that runs
    stays cheap against the fake endpoint)."""
    annotation = info.annotation
    args = [a for a in get_args(annotation) if a is not type(None)]
    low, high, low_open, high_open = _bounds(info)
    if get_origin(annotation) is Literal:
        return st.sampled_from(get_args(annotation))
    if annotation is int or int in args:
        start = int(low) if low is not None else 1
        stop = start + 2 if high is None else min(int(high), start + 2)
        return st.integers(start, stop)
    if annotation is float or float in args:
        return st.floats(
            min_value=low if low is not None else 0.0,
            max_value=high if high is not None else 2.0,
            exclude_min=low_open,
            exclude_max=high_open,
        )
    if get_origin(annotation) is list or any(get_origin(a) is list for a in args):
        return st.lists(st.sampled_from(["m", "l", "remote/m"]), min_size=1, max_size=2)
    return st.sampled_from(["Wait", "medium", "m", "Check the arithmetic."])


def _hostile_for(info: Any) -> st.SearchStrategy[Any]:
    """A value a parameter should refuse: out of its range, non-finite, huge, mistyped; or
    an in-range extreme (the most work a request may ask for)."""
    low, high, _, _ = _bounds(info)
    edges = [v for v in (low, high) if v is not None]
    outside = [*(e - 1 for e in edges[:1]), *(e + 1 for e in edges[1:])]
    return st.one_of(
        st.sampled_from(outside or [-1]),
        st.sampled_from(edges or [0]),
        st.sampled_from(HUGE),
        st.sampled_from([float("nan"), float("inf"), -float("inf"), "1", "", None, True, [], {}]),
        values,
    )


PARAMS = {name: dict(cls.Params.model_fields) for name, cls in BUILTIN.items()}
# Cheap enough to run many times against the fake endpoint (no judge, no program, no
# proposers on other models).
CHEAP = ("cot", "self-consistency", "best-of-n", "step-back", "plan-solve", "adaptive-consistency")


@st.composite
def ponder_specs(draw: st.DrawFn, depth: int = 2, hostile: bool = False) -> Any:
    """The ``ponder`` field. Plausible: a known strategy with parameters it accepts, small
    counts, ``over`` at most ``depth`` deep. Hostile: any name (wrong case, unknown, not a
    string, missing), parameters out of range, non-finite, huge or mistyped, unknown keys,
    and ``over`` chains past the server's bound of 4."""
    if hostile:
        name = draw(
            st.one_of(
                st.sampled_from(STRATEGY_NAMES),
                st.sampled_from(STRATEGY_NAMES).map(str.upper),
                texts(),
                values,
                st.none(),
            )
        )
    else:
        name = draw(st.sampled_from(CHEAP * 3 + tuple(STRATEGY_NAMES)))
    spec: dict[str, Any] = {} if name is None else {"strategy": name}
    fields = PARAMS.get(name, {}) if isinstance(name, str) else {}
    chosen = st.lists(st.sampled_from(sorted(fields) or ["n"]), max_size=2, unique=True)
    for param in draw(chosen):
        info = fields.get(param)
        if info is None:
            spec[param] = draw(values)
        elif hostile and draw(st.booleans()):
            spec[param] = draw(_hostile_for(info))
        else:
            spec[param] = draw(_plausible(info))
    if hostile and draw(st.sampled_from([False] * 3 + [True])):  # a key no strategy has
        spec[draw(st.one_of(st.sampled_from(PARAM_NAMES), texts(10)))] = draw(values)
    if depth > 0 and draw(st.sampled_from([False, False, True])):
        inner = ponder_specs(depth - 1, hostile=hostile)
        spec["over"] = draw(st.one_of(inner, values) if hostile else inner)
    return spec


def _form_value(value: Any) -> str:
    """A value as the model-name form writes it (``n=3``, ``models=m,l``)."""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return json.dumps(value) if not isinstance(value, str) else value


@st.composite
def plausible_forms(draw: st.DrawFn) -> str:
    """``ponder/<strategy>[;k=v...]/<model>`` as a client would write it."""
    name = draw(st.sampled_from(CHEAP * 3 + tuple(STRATEGY_NAMES)))
    fields = PARAMS[name]
    pairs = []
    for param in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2, unique=True)):
        pairs.append(f";{param}={_form_value(draw(_plausible(fields[param])))}")
    model = draw(st.sampled_from(["m", "m", "l", "remote/m", "m#tag"]))
    return f"ponder/{name}{''.join(pairs)}/{model}"


def hostile_forms() -> st.SearchStrategy[str]:
    """The model-name form with odd keys, values and models."""
    key = st.one_of(st.sampled_from(PARAM_NAMES), texts(8))
    value = st.one_of(
        st.sampled_from(
            [
                "1",
                "0",
                "-1",
                "64",
                "65",
                "NaN",
                "Infinity",
                "-Infinity",
                "1e999",
                "99999999999999999999999",
                "9" * 5000,
                "true",
                "null",
                "[1,2]",
                "{}",
                '{"strategy":"cot"}',
                "a,b,",
                ",",
                '"x"',
                "",
                "m,l",
                "\\ud800",
                '"\\ud800"',
                "[" * 3000,
            ]
        ),
        st.sampled_from(LITERALS),
        texts(12),
    )
    pair = st.one_of(
        st.builds(lambda k, v: f"{k}={v}", key, value),
        texts(6),
        st.sampled_from(["=1", "k", ""]),
    )
    name = st.one_of(st.sampled_from(STRATEGY_NAMES), texts(12))
    base = st.one_of(st.sampled_from(["m", "l", "nope", "remote/m", "", "m/x"]), texts(12))
    return st.builds(
        lambda n, pairs, b: f"ponder/{n}{''.join(';' + p for p in pairs)}/{b}",
        name,
        st.lists(pair, max_size=3),
        base,
    )


PLAIN_MODELS = ("m", "m", "m", "l", "m#tag", "remote/m", "onprem/l")
ODD_MODELS = (
    "nope",
    "M",
    " m",
    "m#",
    "ponder",
    "ponder/",
    "ponder//m",
    "ponder/cot/",
    "ponder/cot",
    "/",
    "#",
)


def hostile_models() -> st.SearchStrategy[Any]:
    return st.one_of(
        hostile_forms(),
        st.sampled_from(ODD_MODELS),
        texts(),
        long_text(),
        long_text().map(lambda t: f"ponder/cot/{t}"),
        long_text().map(lambda t: f"ponder/{t}/m"),
        long_text().map(lambda t: f"m#{t}"),
        values,
    )


def content_parts() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries({"type": st.just("text"), "text": texts()}),
        st.fixed_dictionaries(
            {
                "type": st.just("image_url"),
                "image_url": st.one_of(st.fixed_dictionaries({"url": texts()}), values),
            }
        ),
        st.dictionaries(
            st.sampled_from(["type", "text", "image_url", "input_audio"]), values, max_size=3
        ),
        values,
    )


def tool_calls() -> st.SearchStrategy[Any]:
    call = st.fixed_dictionaries(
        {
            "id": texts(),
            "type": st.one_of(st.just("function"), texts()),
            "function": st.one_of(
                st.fixed_dictionaries(
                    {
                        "name": texts(),
                        "arguments": st.one_of(texts(), st.just('{"a": 1}'), values),
                    }
                ),
                values,
            ),
        }
    )
    return st.one_of(st.lists(call, max_size=2), values)


HI = {"role": "user", "content": "What is 6 times 7?"}
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    HI,
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "42"},
    {"role": "user", "content": [{"type": "text", "text": "So?"}]},
]


def hostile_messages() -> st.SearchStrategy[Any]:
    """Messages with odd roles, content of every type, tool calls right and wrong, keys
    nobody knows; or not a list of messages at all."""
    role = st.one_of(
        st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"]),
        st.sampled_from(["", "User", "bot", "ipython"]),
        values,
    )
    content = st.one_of(texts(), st.none(), st.lists(content_parts(), max_size=3), values)
    message = st.fixed_dictionaries(
        {"role": role, "content": content},
        optional={
            "name": st.one_of(texts(), values),
            "tool_calls": tool_calls(),
            "tool_call_id": st.one_of(texts(), values),
            "reasoning_content": st.one_of(texts(), values),
            "extra": values,
        },
    )
    return st.one_of(st.lists(st.one_of(message, values), min_size=1, max_size=4), values)


TOOLS = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": st.sampled_from(["f", "lookup"])},
                optional={"parameters": st.just({"type": "object"})},
            ),
        }
    ),
    min_size=1,
    max_size=2,
)
# Each field: a value it accepts, and values it must refuse (or extremes it must bear).
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "model": st.one_of(st.sampled_from(PLAIN_MODELS), plausible_forms()),
    "messages": st.sampled_from([[HI], [HI], CONVERSATION]),
    "ponder": ponder_specs(),
    "reasoning_effort": st.sampled_from(EFFORTS),
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    "n": st.integers(1, 3),
    "max_tokens": st.integers(1, 64),
    "max_completion_tokens": st.integers(1, 64),
    "temperature": st.floats(0, 2),
    "top_p": st.floats(0.01, 1),
    "seed": st.integers(-(2**63), 2**63 - 1),
    "stop": st.lists(texts(), max_size=3),
    "logprobs": st.booleans(),
    "top_logprobs": st.integers(0, 5),
    "tools": TOOLS,
    "tool_choice": st.sampled_from(["none", "auto", "required"]),
    "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
    "metadata": st.dictionaries(texts(8), texts(8), max_size=2),
    "user": texts(),
    "top_k": st.integers(0, 50),
    "min_p": st.floats(0, 1),
    "repeat_penalty": st.floats(0.5, 2),
    "logit_bias": st.dictionaries(st.sampled_from(["1", "42"]), st.floats(-100, 100), max_size=2),
}
COUNTS = st.one_of(st.integers(-1, 9), st.sampled_from(HUGE), numbers, values)
HOSTILE: dict[str, st.SearchStrategy[Any]] = {
    "model": hostile_models(),
    "messages": hostile_messages(),
    "ponder": st.one_of(ponder_specs(6, hostile=True), values),
    "reasoning_effort": st.one_of(texts(), values),
    "stream": values,
    "stream_options": values,
    "n": COUNTS,
    "max_tokens": COUNTS,
    "max_completion_tokens": COUNTS,
    "temperature": st.one_of(numbers, values),
    "top_p": st.one_of(numbers, values),
    "seed": st.one_of(st.sampled_from(HUGE), values),
    "stop": st.one_of(st.lists(texts(), min_size=17, max_size=20), values),
    "logprobs": values,
    "top_logprobs": COUNTS,
    "tools": st.one_of(st.lists(values, min_size=1, max_size=2), values),
    "tool_choice": values,
    "response_format": st.one_of(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "json_object", "json_schema"])},
            optional={"json_schema": values},
        ),
        values,
    ),
    "metadata": values,
    "user": values,
    "top_k": COUNTS,
    "min_p": st.one_of(numbers, values),
    "repeat_penalty": st.one_of(numbers, values),
    "logit_bias": values,
    "models": values,
    "route": values,
    "x_unknown": values,
}
# Ponder's own extensions, and the fields they meet, come up the most often.
OURS = ("model", "ponder", "reasoning_effort", "stream", "n", "max_tokens", "messages")


@st.composite
def bodies(draw: st.DrawFn) -> Any:
    """A request body as JSON data: a plausible request (a model, plain or in the strategy
    form, a question, and some of the other fields, Ponder's own extensions the most often),
    then none, one or two of its fields made hostile; or a body missing ``model`` or
    ``messages``, or not an object at all."""
    shape = draw(st.sampled_from(["object"] * 20 + ["no model", "no messages", "not an object"]))
    if shape == "not an object":
        return draw(values)
    body: dict[str, Any] = {}
    if shape != "no model":
        body["model"] = draw(PLAUSIBLE["model"])
    if shape != "no messages":
        body["messages"] = draw(PLAUSIBLE["messages"])
    names = st.one_of(st.sampled_from(OURS[1:]), st.sampled_from(sorted(PLAUSIBLE)))
    for name in draw(st.lists(names, max_size=3, unique=True)):
        body[name] = draw(PLAUSIBLE[name])
    mutations = draw(st.sampled_from([0, 0, 1, 1, 1, 2]))
    targets = st.one_of(st.sampled_from(OURS), st.sampled_from(sorted(HOSTILE)))
    for name in draw(st.lists(targets, min_size=mutations, max_size=mutations, unique=True)):
        body[name] = draw(HOSTILE[name])
    return body


@dataclass(frozen=True)
class ChatCase:
    """One request, as the bytes and headers sent."""

    body: bytes
    headers: tuple[tuple[str, bytes], ...]
    how: str  # how the body was made: "json", "utf-16", "truncated", "deep nesting", ...

    def reproduction(self, limit: int = 3000) -> str:
        shown = repr(self.body) if len(self.body) <= limit else _long_repr(self.body)
        headers = dict(self.headers)
        return (
            f"# {self.how}\nhttpx.post(PONDER + '/v1/chat/completions', "
            f"headers={headers!r}, content={shown})"
        )


def _long_repr(raw: bytes) -> str:
    """A long body written as the expression that makes it, where it repeats."""
    parts: list[str] = []
    plain = b""
    for byte, run in groupby(raw):
        n = len(list(run))
        if n >= 32:
            if plain:
                parts.append(repr(plain))
                plain = b""
            parts.append(f"{bytes([byte])!r} * {n}")
        else:
            plain += bytes([byte]) * n
    if plain:
        parts.append(repr(plain))
    text = " + ".join(parts)
    return text if len(text) < 6000 else text[:6000] + f" ...  # {len(raw)} bytes in all"


VALID = {"model": "m", "messages": [HI], "max_tokens": 5}


@st.composite
def chat_cases(draw: st.DrawFn) -> ChatCase:
    """A hostile chat request: a body from :func:`bodies`, encoded one of several ways (or
    mangled: cut short, a byte flipped, nested past the parser's recursion limit, a number
    past Python's digit limit), with odd headers."""
    data = draw(bodies())
    how = draw(
        st.sampled_from(
            ["json"] * 30
            + ["utf-8 raw", "utf-16", "utf-32", "bom", "truncated", "flipped byte"]
            + ["deep nesting", "huge number", "empty", "trailing garbage", "duplicate keys"]
        )
    )
    if how == "json":
        raw = json.dumps(data, allow_nan=True).encode()
    elif how == "utf-8 raw":  # lone surrogates become invalid UTF-8
        raw = json.dumps(data, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")
    elif how in ("utf-16", "utf-32"):
        raw = json.dumps(data, allow_nan=True).encode(how)
    elif how == "bom":
        raw = b"\xef\xbb\xbf" + json.dumps(data, allow_nan=True).encode()
    elif how == "truncated":
        full = json.dumps(data, allow_nan=True).encode()
        raw = full[: draw(st.integers(0, max(0, len(full) - 1)))]
    elif how == "flipped byte":
        full = bytearray(json.dumps(data, allow_nan=True).encode())
        at = draw(st.integers(0, len(full) - 1))
        full[at] = draw(st.integers(0, 255))
        raw = bytes(full)
    elif how == "deep nesting":
        depth = draw(st.sampled_from([100, 999, 1001, 5000, 100_000]))
        where = draw(st.sampled_from(["messages", "ponder", "metadata", "x_unknown"]))
        nested = "[" * depth + "]" * depth
        rest = {k: v for k, v in VALID.items() if k != where}
        raw = (json.dumps(rest)[:-1] + f', "{where}": {nested}}}').encode()
    elif how == "huge number":
        digits = draw(st.sampled_from([20, 400, 4300, 4301, 50_000]))
        where = draw(st.sampled_from(["max_tokens", "n", "seed", "temperature", "x_unknown"]))
        rest = {k: v for k, v in VALID.items() if k != where}
        raw = (json.dumps(rest)[:-1] + f', "{where}": {"9" * digits}}}').encode()
    elif how == "empty":
        raw = b""
    elif how == "trailing garbage":
        raw = json.dumps(data, allow_nan=True).encode() + draw(
            st.sampled_from([b"x", b"\x00", b"}", b" "])
        )
    else:  # duplicate keys: the last one wins in Python's parser
        raw = (
            (json.dumps(VALID)[:-1] + ", " + json.dumps(data, allow_nan=True)[1:]).encode()
            if isinstance(data, dict) and data
            else json.dumps(data).encode()
        )
    headers: list[tuple[str, bytes]] = []
    content_type = draw(
        st.sampled_from(
            [b"application/json"] * 40
            + [
                None,
                b"text/plain",
                b"application/json; charset=utf-16",
                b"application/vnd.api+json",
                b"APPLICATION/JSON",
                b"application/x-www-form-urlencoded",
                b"multipart/form-data; boundary=x",
                b"application/json;;;",
                b"application/\xff",
            ]
        )
    )
    if content_type is not None:
        headers.append(("content-type", content_type))
    auth = draw(
        st.sampled_from(
            [f"Bearer {ADMIN}".encode()] * 20
            + [None, b"Bearer wrong", b"Basic Zm9vOmJhcg==", b"Bearer", b"bearer " + ADMIN.encode()]
            + [b"Bearer " + b"x" * 9000, b"Bearer \xff\xfe"]
        )
    )
    if auth is not None:
        headers.append(("authorization", auth))
    local_only = draw(
        st.sampled_from(
            [None] * 20
            + [b"true", b"1", b"yes", b"no", b"false", b"", b"maybe", b"TRUE", b"\xff", b"2"]
            + [b"tru\xc3\xa9", b"true, false"]
        )
    )
    if local_only is not None:
        headers.append(("x-ponder-local-only", local_only))
    return ChatCase(raw, tuple(headers), how)


def error_shape_problem(text: str) -> str | None:
    """Why an error reply is not ``{"error": {"message", "type", "param", "code"}}``."""
    try:
        body = json.loads(text)
    except ValueError:
        return f"not JSON: {text[:120]!r}"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(error, dict):
        return f"not {{'error': {{...}}}}: {str(body)[:160]}"
    if set(error) != {"message", "type", "param", "code"}:
        return f"error keys {sorted(error)}"
    kinds = {
        "message": (str,),
        "type": (str,),
        "param": (str, type(None)),
        "code": (str, type(None)),
    }
    for name, allowed in kinds.items():
        if not isinstance(error[name], allowed):
            return f"error.{name} is {type(error[name]).__name__}"
    return None


def _stream_problems(response: httpx.Response) -> list[tuple[str, str]]:
    """(kind, signature) for an event stream that carries an error, is cut, or is not SSE."""
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    found: list[tuple[str, str]] = []
    for event in events:
        if event == "[DONE]":
            continue
        try:
            payload = json.loads(event)
        except ValueError:
            found.append(("malformed event", event[:80]))
            continue
        if isinstance(payload, dict) and "error" in payload:
            error = payload["error"] if isinstance(payload["error"], dict) else {}
            found.append(
                (
                    "error event after 200",
                    f"{error.get('type')}/{error.get('code')}: {str(error.get('message'))[:100]}",
                )
            )
    if not events or events[-1] != "[DONE]":
        found.append(("stream cut", "no [DONE] at the end"))
    return found


def check_chat(
    client: httpx.Client, live: Live, case: ChatCase, where: tuple[int, int]
) -> tuple[int | None, list[Finding]]:
    """Send one case; its status and what is wrong with the reply."""
    mark = live.log.mark()
    route = HOSTILE_CHAT
    try:
        response = client.post(
            "/v1/chat/completions", content=case.body, headers=list(case.headers)
        )
    except httpx.LocalProtocolError:  # the client would not send it: the harness's fault
        raise
    except httpx.TimeoutException:
        repro = case.reproduction()
        return None, [
            Finding("hang", route, None, f"no reply in {TIMEOUT:.0f} s", repro, first=where)
        ]
    except httpx.TransportError as exc:
        logged = "\n".join(live.log.since(mark))
        signature = signature_of(None, live.log.since(mark)) if logged else type(exc).__name__
        repro = case.reproduction()
        return None, [
            Finding("dropped connection", route, None, signature, repro, logged, first=where)
        ]
    status = response.status_code
    logged = live.log.since(mark)
    found: list[Finding] = []

    def add(kind: str, signature: str, tb: str = "") -> None:
        found.append(Finding(kind, route, status, signature, "", tb, first=where))

    if status >= 500:
        add("5xx", signature_of(status, logged), "\n".join(logged))
    elif logged:
        add("unhandled exception", signature_of(status, logged), "\n".join(logged))
    if status >= 400:
        problem = error_shape_problem(response.text)
        if problem is not None:
            add("error shape", problem)
    elif response.headers.get("content-type", "").startswith("text/event-stream"):
        for kind, signature in _stream_problems(response):
            add(kind, signature)
    else:
        try:
            reply = response.json()
        except ValueError:
            reply = None
        if not (isinstance(reply, dict) and isinstance(reply.get("choices"), list)):
            add("malformed reply", f"{status}: {response.text[:120]!r}")
    if found:  # made only when needed: a long body takes a while to write out
        repro = case.reproduction()
        for finding in found:
            finding.reproduction = repro
    return status, found


def fuzz_chat(
    live: Live,
    *,
    cases: int,
    seed: int = SEED,
    shrink: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Hypothesis's hostile chat requests (``cases`` of them), each checked."""
    started = time.perf_counter()
    report = Report()
    client = httpx.Client(base_url=live.url, timeout=TIMEOUT)

    def run_cases(
        examples: int, *, target: tuple[str, str] | None, on_found: Callable[[Finding], None]
    ) -> int:
        sent = 0

        @hypothesis.seed(seed)
        @settings(
            max_examples=examples,
            database=None,
            deadline=None,
            derandomize=False,
            suppress_health_check=list(HealthCheck),
            phases=(Phase.generate, Phase.shrink) if target else (Phase.generate,),
            verbosity=Verbosity.quiet,
            print_blob=False,
            report_multiple_bugs=False,
        )
        @given(case=chat_cases())
        def run(case: ChatCase) -> None:
            nonlocal sent
            sent += 1
            status, found = check_chat(client, live, case, (seed, examples))
            if target is None:
                report.count(HOSTILE_CHAT, status)
                if progress is not None and sent % 500 == 0:
                    progress(f"{HOSTILE_CHAT}: {sent} cases")
            for finding in found:
                if target is None:
                    on_found(finding)
                elif (finding.kind, finding.signature) == target:
                    on_found(finding)
                    raise AssertionError(finding.signature)

        run()
        return sent

    with client:
        run_cases(cases, target=None, on_found=report.add)
        if shrink:
            for finding in report.of(*SHRUNK, "error shape", "error event after 200"):
                shrunk: list[Finding] = []
                with suppress(Exception):
                    run_cases(
                        finding.first[1],  # the census's own settings: the same cases
                        target=(finding.kind, finding.signature),
                        on_found=shrunk.append,
                    )
                if shrunk:
                    finding.minimal = shrunk[-1].reproduction
    report.seconds = time.perf_counter() - started
    return report
