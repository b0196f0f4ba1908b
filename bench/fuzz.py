"""The long fuzzing pass (goal R1: no 5xx in at least 10,000 fuzzed requests, and the server
healthy afterwards).

The fuzzers of ``tests/fuzz`` (:mod:`tests.fuzz.openapi_fuzzer` and
:mod:`tests.fuzz.chat_fuzzer`), for longer than the suite runs them: schemathesis over every
operation of the live ``/openapi.json``, and Hypothesis's hostile ``POST /v1/chat/completions``
requests aimed at Ponder's own extensions, sent one at a time. The Ponder server runs in a
process of its own (the suite's configuration, in front of the fake OpenAI endpoint, which
runs in a thread of this one), logging to a file from which each request's traceback is
read, so that its memory can be read before and after.

Printed: per route, the cases sent, their statuses and the 5xx among them; every server-side
problem (5xx, hang, dropped connection, an exception logged while answering) with a minimal
reproduction (shrunk by Hypothesis) and the server's traceback; the other findings (error
bodies, streams, where the OpenAPI document is untrue) one line each; the server's RSS
before and after; and whether it is healthy afterwards, a normal request included. The exit
status is 1 on any server-side problem or an unhealthy server, else 0.

    python bench/fuzz.py                         # 10,000 cases, about 4 minutes on 2 cores
    python bench/fuzz.py --cases 50000 --seed 7
    python bench/fuzz.py --only chat --cases 2000 --no-shrink
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.fuzz.server import Live

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def serve(port: int, upstream: str) -> None:
    """The server process: the suite's configuration under uvicorn, every log record on
    stderr as a line starting with ``@@ LEVEL``."""
    import logging

    import uvicorn
    from tests.fuzz.server import ADMIN, fuzz_config

    from ponder.server.app import create_app

    logging.basicConfig(
        level=logging.WARNING, format="@@ %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    app = create_app(fuzz_config(upstream), admin_key=ADMIN)
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_config=None, log_level="warning", access_log=False
    )


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def ponder_process(log_path: str) -> Iterator[Live]:
    """The fake endpoint in a thread here, Ponder in a process of its own."""
    import httpx
    from tests.fake_openai import free_port, make_app, serve_app
    from tests.fuzz.server import FileLog, Live

    with serve_app(make_app()) as upstream, open(log_path, "ab") as log:
        port = free_port()
        command = [sys.executable, __file__, "--serve", str(port), "--upstream", upstream]
        proc = subprocess.Popen(command, stdout=log, stderr=log, cwd=ROOT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {proc.returncode}: {log_path}")
                with suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start: {log_path}")
                time.sleep(0.1)
            yield Live(url, FileLog(log_path), pid=proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def normal_request(url: str) -> tuple[bool, str]:
    """An invalid request, then a plain one and a streamed one, on one keep-alive
    connection: the error must leave it open and both others must succeed on it."""
    import httpx
    from tests.fuzz.chat_requests import normal_body
    from tests.fuzz.server import ADMIN

    def port(response: httpx.Response) -> object:
        with suppress(OSError, KeyError):  # closed already: no port
            return response.extensions["network_stream"].get_extra_info("client_addr")
        return None

    auth = {"Authorization": f"Bearer {ADMIN}"}
    body = normal_body()
    ports = []
    with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
        refused = client.post(
            "/v1/chat/completions", content=b"{", headers={"content-type": "application/json"}
        )
        ports.append(port(refused))
        plain = client.post("/v1/chat/completions", json=body)
        ports.append(port(plain))
        streamed = client.post("/v1/chat/completions", json={**body, "stream": True})
        ports.append(port(streamed))
    ok = refused.status_code == 400 and plain.status_code == 200 and streamed.status_code == 200
    ok = ok and streamed.text.rstrip().endswith("data: [DONE]")
    same = ports[0] is not None and len(set(ports)) == 1
    detail = (
        f"invalid JSON {refused.status_code}, then plain {plain.status_code}, streamed "
        f"{streamed.status_code}, {'on one connection' if same else f'on {ports}'}"
    )
    return ok and same, detail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="fuzzed requests in all")
    parser.add_argument("--seed", type=int, default=None, help="default: the suite's seed")
    parser.add_argument(
        "--only", choices=("openapi", "chat"), help="one fuzzer (default: half the cases each)"
    )
    parser.add_argument(
        "--no-shrink", action="store_true", help="show the census's first case, unshrunk"
    )
    parser.add_argument("--log", help="the server's log file (default: a temporary file)")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.upstream)
        return 0

    from tests.fuzz.census import SEED
    from tests.fuzz.chat_fuzzer import fuzz_chat
    from tests.fuzz.findings import SERVER_SIDE, Report, describe
    from tests.fuzz.openapi_fuzzer import fuzz_openapi
    from tests.fuzz.server import healthy

    seed = SEED if args.seed is None else args.seed
    shares = {"openapi": 0.5, "chat": 0.5} if args.only is None else {args.only: 1.0}
    log_path = args.log or tempfile.mkstemp(prefix="ponder-fuzz-", suffix=".log")[1]

    def progress(line: str) -> None:
        print(f"  {line}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    with ponder_process(log_path) as live:
        assert live.pid is not None
        warm, detail = normal_request(live.url)  # warm up before the first reading
        before = rss_mib(live.pid)
        report = Report()
        for fuzzer, share in shares.items():
            cases = round(args.cases * share)
            print(f"{fuzzer}: {cases} cases, seed {seed}", file=sys.stderr, flush=True)
            run = fuzz_openapi if fuzzer == "openapi" else fuzz_chat
            report = report.merge(
                run(live, cases=cases, seed=seed, shrink=not args.no_shrink, progress=progress)
            )
        after = rss_mib(live.pid)
        alive = healthy(live.url)
        served, served_detail = normal_request(live.url)
        after_checks = rss_mib(live.pid)

    total = sum(report.cases.values())
    print(f"\n{total} cases in {time.perf_counter() - started:.0f} s (seed {seed})\n")
    print("cases  5xx  route  (statuses; 0: no reply)")
    print(report.table())
    problems = report.server_side()
    print(
        f"\nserver-side problems (5xx, hangs, dropped connections, logged exceptions): {len(problems)}"
    )
    if problems:
        print(describe(problems))
    others = [f for f in report.findings.values() if f.kind not in SERVER_SIDE]
    print(f"\nother findings: {len(others)}")
    for finding in sorted(others, key=lambda f: (f.kind, f.route, f.signature)):
        status = f" [{finding.status}]" if finding.status is not None else ""
        print(
            f"- {finding.kind}{status} {finding.route}: {finding.signature} ({finding.count} cases)"
        )
    print(
        f"\nserver RSS: {before:.1f} MiB before, {after:.1f} MiB after "
        f"({after - before:+.1f} MiB), {after_checks:.1f} MiB after the last checks"
    )
    print(f"/health afterwards: {'200' if alive else 'FAILED'}")
    print(f"after the fuzzing: {served_detail}")
    print(f"server log: {log_path}")
    if not warm:
        print(f"(the warm-up requests failed: {detail})")
    failed = bool(problems) or not alive or not served
    print("\nR1: " + ("FAILED" if failed else f"passed, 0 5xx in {total} fuzzed requests"))
    if args.log is None and not failed:
        with suppress(OSError):
            os.unlink(log_path)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
