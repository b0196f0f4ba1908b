"""Schemathesis over the live server's own OpenAPI document.

:func:`fuzz_openapi` loads ``/openapi.json`` over HTTP and fuzzes every operation in it,
positive and negative cases, running schemathesis's checks on each response (no 5xx, and
whether the status, content type, headers and body are the ones the document declares),
plus the OpenAI shape of every error body. Cases are sent mostly as the admin, sometimes as
nobody or with a key that does not exist, and sometimes name a team and a key that exist.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import census
from tests.fuzz.findings import Finding, Report, error_shape_problem, signature_of
from tests.fuzz.server import ADMIN, Live

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
    seed: int = census.SEED,
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
                base_url=live.url, session=session, headers=headers, timeout=census.TIMEOUT
            )
        except requests.Timeout:
            count(None)
            what = f"{case.method} {case.formatted_path} no reply in {census.TIMEOUT:.0f} s"
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
        on_found: census.OnFound,
        target: census.Target | None = None,
    ) -> int:
        """Fuzz one operation in one mode; the number of cases sent. With ``target`` (kind,
        signature), raise on that problem so that Hypothesis shrinks it."""
        strategy = st.tuples(
            op.as_strategy(generation_mode=mode), st.sampled_from(AUTHS), st.booleans()
        )
        sent = 0

        @hypothesis.seed(seed_value)
        @census.run_settings(examples, shrinking=target is not None)
        @given(drawn=strategy)
        def run(drawn: tuple[Any, str | None, bool]) -> None:
            nonlocal sent
            sent += 1
            found = one_case(op, drawn, (seed_value, examples), target is None)
            census.pass_on(found, target, on_found)

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

    def rerun(finding: Finding, on_found: census.OnFound) -> None:
        """The census's run of the pair that met ``finding``, aimed at it."""
        seed_value, examples = finding.first
        op, mode = pairs[(seed_value - seed) % 1000]
        target = (finding.kind, finding.signature)
        run_pair(op, mode, seed_value, examples, on_found=on_found, target=target)

    if shrink:
        census.shrink_each(report.of(*census.SHRUNK), rerun)
    report.seconds = time.perf_counter() - started
    return report
