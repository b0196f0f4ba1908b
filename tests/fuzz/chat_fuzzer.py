"""Hostile chat requests sent to the live server, and what is wrong with each reply.

:func:`fuzz_chat` sends the requests of :func:`tests.fuzz.chat_requests.chat_cases` as raw
bytes, one at a time. Every reply must be under 500; an error must be OpenAI-shaped; a
stream that cannot run must be refused with its 4xx, not a 200 and an error event, and one
that starts must end with ``[DONE]``; any other 200 must be a chat completion.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import hypothesis
from hypothesis import given

from tests.fuzz import census
from tests.fuzz.chat_requests import ChatCase, chat_cases
from tests.fuzz.findings import Finding, Report, error_shape_problem, signature_of
from tests.fuzz.server import Live

CHAT = "POST /v1/chat/completions"
HOSTILE_CHAT = f"{CHAT} (hostile bytes)"


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
            Finding("hang", route, None, f"no reply in {census.TIMEOUT:.0f} s", repro, first=where)
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
    seed: int = census.SEED,
    shrink: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Hypothesis's hostile chat requests (``cases`` of them), each checked."""
    started = time.perf_counter()
    report = Report()
    client = httpx.Client(base_url=live.url, timeout=census.TIMEOUT)

    def run_cases(
        examples: int, *, on_found: census.OnFound, target: census.Target | None = None
    ) -> int:
        """The census's run of ``examples`` cases; the number sent. With ``target`` (kind,
        signature), raise on that problem so that Hypothesis shrinks it."""
        sent = 0

        @hypothesis.seed(seed)
        @census.run_settings(examples, shrinking=target is not None)
        @given(case=chat_cases())
        def run(case: ChatCase) -> None:
            nonlocal sent
            sent += 1
            status, found = check_chat(client, live, case, (seed, examples))
            if target is None:
                report.count(HOSTILE_CHAT, status)
                if progress is not None and sent % 500 == 0:
                    progress(f"{HOSTILE_CHAT}: {sent} cases")
            census.pass_on(found, target, on_found)

        run()
        return sent

    def rerun(finding: Finding, on_found: census.OnFound) -> None:
        """The census's own settings (so the same cases), aimed at ``finding``."""
        target = (finding.kind, finding.signature)
        run_cases(finding.first[1], on_found=on_found, target=target)

    with client:
        run_cases(cases, on_found=report.add)
        if shrink:
            census.shrink_each(
                report.of(*census.SHRUNK, "error shape", "error event after 200"), rerun
            )
    report.seconds = time.perf_counter() - started
    return report
