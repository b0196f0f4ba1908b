"""What Ponder adds to a request it only passes through, measured side by side in one run.

Three processes on 127.0.0.1: a fast fake OpenAI endpoint (a raw ASGI app under uvicorn
returning a canned completion, or a canned stream of chunks), a Ponder server in
pass-through mode (``default_strategy = "none"``, the fake registered as a provider's model,
``ponder.server.app.create_app`` under uvicorn), and this script as the client, a minimal
keep-alive HTTP/1.1 client on asyncio, far cheaper than either server. The same requests go
direct to the fake and through Ponder, alternating:

* sequential latency: N requests one at a time, direct and through Ponder taking turns
  request by request (the first of each pair alternating); "added" is Ponder's percentile
  minus the direct one;
* throughput: C concurrent connections, each sending its next request when the last
  answered, for S seconds; direct and through Ponder take turns round by round.

Both for plain (non-streaming) and streaming requests. Then the verdict on the P3 goals:
added latency <= 1 ms p50 and <= 5 ms p99 sequential (non-streaming), >= 1,000 req/s through
one Ponder worker at 32 concurrent (non-streaming).

    python bench/overhead.py                       # about 40 s
    python bench/overhead.py --workers 2 --json bench/results/overhead.json

Every process runs on this machine, so on few cores the client and the fake take CPU from
Ponder: the numbers are an upper bound on what Ponder adds. Access logs are off in both
servers unless --access-log (``ponder serve`` logs at info, access log included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack, asynccontextmanager, contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MODEL = "fake-model"
PROVIDER = "fake"
CONTENT_CHUNKS = 8
GOALS = {"added_p50_ms": 1.0, "added_p99_ms": 5.0, "through_rps": 1000.0}


# -- the fake endpoint -------------------------------------------------------------------
def fake_app() -> Callable[..., Awaitable[None]]:
    """A minimal OpenAI chat endpoint: one canned completion, or CONTENT_CHUNKS content
    chunks (plus a usage chunk when asked) as SSE. No framework, no validation."""
    usage = {"prompt_tokens": 9, "completion_tokens": CONTENT_CHUNKS, "total_tokens": 17}
    json_headers = [(b"content-type", b"application/json")]
    sse_headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]

    def completion(model: str) -> bytes:
        return json.dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": 1700000000,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "canned " * CONTENT_CHUNKS},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            },
            separators=(",", ":"),
        ).encode()

    def chunk(model: str, choices: list[Any], usage_: Any = None) -> bytes:
        payload = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "choices": choices,
            "usage": usage_,
        }
        return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            await send({"type": "http.response.start", "status": 200, "headers": json_headers})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        request = json.loads(body)
        model = str(request.get("model", MODEL))
        if not request.get("stream"):
            reply = completion(model)
            headers = [*json_headers, (b"content-length", str(len(reply)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": reply})
            return
        await send({"type": "http.response.start", "status": 200, "headers": sse_headers})
        first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        events = [chunk(model, [first])]
        for k in range(CONTENT_CHUNKS):
            last = k == CONTENT_CHUNKS - 1
            delta = {"index": 0, "delta": {"content": "canned "}, "finish_reason": None}
            if last:
                delta["finish_reason"] = "stop"
            events.append(chunk(model, [delta]))
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append(chunk(model, [], usage))
        events.append(b"data: [DONE]\n\n")
        for event in events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def ponder_app() -> Any:
    """The Ponder server in pass-through mode, for uvicorn's factory import (workers)."""
    from ponder.config import PonderConfig, ProviderConfig
    from ponder.server.app import create_app

    provider = ProviderConfig(
        name=PROVIDER,
        base_url=os.environ["PONDER_BENCH_UPSTREAM"],
        models=(MODEL,),
        max_retries=0,
    )
    config = PonderConfig(providers=(provider,), default_strategy=None, trace_db=":memory:")
    return create_app(config)


def module_app() -> Any:
    """A bare FastAPI route on :class:`ponder.gateway.passthrough.PassThrough`: no routing,
    metering or validation, so the floor for a server that passes through with it."""
    from fastapi import FastAPI, Request
    from fastapi.responses import Response, StreamingResponse

    from ponder.backends.endpoint import EndpointConfig
    from ponder.gateway.passthrough import Forwarded, PassThrough

    endpoint = EndpointConfig(base_url=os.environ["PONDER_BENCH_UPSTREAM"])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with PassThrough() as passthrough:
            app.state.passthrough = passthrough
            yield

    app = FastAPI(lifespan=lifespan)

    # Plain Starlette routes: the handler gets the request as it is, nothing validated.
    async def health(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def chat(request: Request) -> Response:
        body = json.loads(await request.body())
        passthrough: PassThrough = request.app.state.passthrough
        if body.get("stream"):
            reply = await passthrough.open_stream(endpoint, MODEL, body)
            if not isinstance(reply, Forwarded):
                return StreamingResponse(reply, media_type="text/event-stream")
        else:
            reply = await passthrough.forward(endpoint, MODEL, body)
        return Response(reply.content, reply.status_code, media_type="application/json")

    app.add_route("/health", health, methods=["GET"])
    app.add_route("/v1/chat/completions", chat, methods=["POST"])
    return app


def serve(role: str, port: int, workers: int, access_log: bool) -> None:
    import uvicorn

    if role == "fake":
        uvicorn.run(
            fake_app(),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=access_log,
            lifespan="off",
        )
        return
    uvicorn.run(
        f"overhead:{role}_app",
        factory=True,
        app_dir=str(Path(__file__).resolve().parent),
        host="127.0.0.1",
        port=port,
        workers=workers,
        log_level="info" if access_log else "warning",
        access_log=access_log,
    )


# -- a cheap keep-alive HTTP/1.1 client ---------------------------------------------------
class Connection:
    """One keep-alive connection; ``request`` sends prepared bytes and reads one response
    (Content-Length or chunked), returning its status and body."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            sock = self.writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip().lower()
        if b"content-length" in headers:
            body = await self.reader.readexactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding") == b"chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append((await self.reader.readexactly(size + 2))[:-2])
            body = b"".join(parts)
        else:
            body = await self.reader.read()
            headers[b"connection"] = b"close"
        if headers.get(b"connection") == b"close":
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def prepared(port: int, stream: bool) -> bytes:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say something canned."}],
        "max_tokens": 16,
    }
    if stream:
        body["stream"] = True
    payload = json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer bench\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def check(status: int, body: bytes, stream: bool) -> bool:
    if status != 200:
        return False
    if stream:
        return body.count(b"canned") == CONTENT_CHUNKS and body.endswith(b"data: [DONE]\n\n")
    return b"canned" in body


# -- measurements ---------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    port: int


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def sequential(
    targets: list[Target], stream: bool, n: int, warmup: int
) -> dict[str, list[float]]:
    """Latencies in ms, the targets taking turns request by request."""
    conns = {t.name: Connection(t.port) for t in targets}
    raws = {t.name: prepared(t.port, stream) for t in targets}
    out: dict[str, list[float]] = {t.name: [] for t in targets}
    try:
        for i in range(warmup + n):
            order = targets if i % 2 == 0 else targets[::-1]
            for t in order:
                started = time.perf_counter()
                status, body = await conns[t.name].request(raws[t.name])
                elapsed = (time.perf_counter() - started) * 1000
                if not check(status, body, stream):
                    raise RuntimeError(f"{t.name}: bad reply {status}: {body[:300]!r}")
                if i >= warmup:
                    out[t.name].append(elapsed)
    finally:
        for conn in conns.values():
            await conn.close()
    return out


async def throughput(target: Target, stream: bool, concurrency: int, seconds: float) -> float:
    raw = prepared(target.port, stream)
    done = 0
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done, errors
        conn = Connection(target.port)
        try:
            while time.perf_counter() < deadline:
                status, body = await conn.request(raw)
                if check(status, body, stream):
                    done += 1
                else:
                    errors += 1
        finally:
            await conn.close()

    started = time.perf_counter()
    async with asyncio.timeout(seconds + 30):
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{target.name}: {errors} bad replies under load")
    return done / elapsed


@dataclass
class Row:
    kind: str  # "plain" or "stream"
    target: str  # what the direct calls are compared with
    direct_p50_ms: float
    direct_p99_ms: float
    p50_ms: float
    p99_ms: float
    added_p50_ms: float
    added_p99_ms: float
    direct_rps: float
    rps: float
    rounds_direct_rps: list[float]
    rounds_rps: list[float]


async def measure(args: argparse.Namespace, direct: Target, others: list[Target]) -> list[Row]:
    targets = [direct, *others]
    rows = []
    for stream in (False, True):
        kind = "stream" if stream else "plain"
        lat = await sequential(targets, stream, args.requests, args.warmup)
        # Warm every connection of each pool before counting.
        for target in targets:
            await throughput(target, stream, args.concurrency, 0.3)
        rps: dict[str, list[float]] = {t.name: [] for t in targets}
        for r in range(args.rounds):
            for target in targets if r % 2 == 0 else targets[::-1]:
                rps[target.name].append(
                    await throughput(target, stream, args.concurrency, args.seconds)
                )
        d = lat[direct.name]
        for other in others:
            o = lat[other.name]
            rows.append(
                Row(
                    kind=kind,
                    target=other.name,
                    direct_p50_ms=percentile(d, 50),
                    direct_p99_ms=percentile(d, 99),
                    p50_ms=percentile(o, 50),
                    p99_ms=percentile(o, 99),
                    added_p50_ms=percentile(o, 50) - percentile(d, 50),
                    added_p99_ms=percentile(o, 99) - percentile(d, 99),
                    direct_rps=statistics.median(rps[direct.name]),
                    rps=statistics.median(rps[other.name]),
                    rounds_direct_rps=rps[direct.name],
                    rounds_rps=rps[other.name],
                )
            )
    return rows


# -- processes ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(
    role: str,
    port: int,
    *,
    workers: int,
    access_log: bool,
    env: dict[str, str],
    script: str | Path | None = None,
) -> Any:
    """Run ``script --serve role`` (this script by default; the other bench scripts pass
    their own, with the same flags) in a process group of its own, until the block ends."""
    command = [
        sys.executable,
        str(Path(script or __file__).resolve()),
        "--serve",
        role,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    if access_log:
        command.append("--access-log")
    proc = subprocess.Popen(command, env={**os.environ, **env}, start_new_session=True)
    try:
        wait_ready(port, proc, "/" if role == "fake" else "/health")
        yield proc
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def wait_ready(port: int, proc: subprocess.Popen[bytes], path: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(request)
            if sock.recv(64).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start in {timeout:.0f} s")


def environment() -> dict[str, str]:
    def have(module: str) -> bool:
        try:
            __import__(module)
        except ImportError:
            return False
        return True

    return {
        "python": platform.python_version(),
        "cpus": str(os.cpu_count()),
        "loop": "uvloop" if have("uvloop") else "asyncio",
        "http": "httptools" if have("httptools") else "h11",
    }


def report(rows: list[Row], args: argparse.Namespace, env: dict[str, str]) -> bool:
    print(
        f"\nPonder pass-through overhead: {args.requests} sequential requests per target and "
        f"kind, {args.rounds} rounds x {args.seconds:g} s at {args.concurrency} concurrent; "
        f"ponder workers={args.workers}; " + ", ".join(f"{k}={v}" for k, v in env.items())
    )
    header = (
        f"{'kind':<7}{'via':<8}{'direct p50':>11}{'p99':>8}{'via p50':>10}{'p99':>8}"
        f"{'added p50':>11}{'p99':>8}{'direct rps':>12}{'via rps':>10}{'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.kind:<7}{r.target:<8}{r.direct_p50_ms:>11.2f}{r.direct_p99_ms:>8.2f}"
            f"{r.p50_ms:>10.2f}{r.p99_ms:>8.2f}"
            f"{r.added_p50_ms:>11.2f}{r.added_p99_ms:>8.2f}"
            f"{r.direct_rps:>12,.0f}{r.rps:>10,.0f}{r.rps / r.direct_rps:>7.2f}"
        )
    print("(latencies in ms; rps: median of rounds; ratio: via / direct)")
    if any(r.target == "module" for r in rows):
        print(
            "module: a bare FastAPI route on ponder.gateway.passthrough, not the Ponder server "
            "(the floor an integration can reach)"
        )
    plain = next(r for r in rows if r.kind == "plain" and r.target == "ponder")
    checks = [
        (
            f"added latency p50 <= {GOALS['added_p50_ms']:g} ms",
            plain.added_p50_ms,
            plain.added_p50_ms <= GOALS["added_p50_ms"],
        ),
        (
            f"added latency p99 <= {GOALS['added_p99_ms']:g} ms",
            plain.added_p99_ms,
            plain.added_p99_ms <= GOALS["added_p99_ms"],
        ),
        (
            f">= {GOALS['through_rps']:,.0f} req/s through Ponder at {args.concurrency} concurrent",
            plain.rps,
            plain.rps >= GOALS["through_rps"],
        ),
    ]
    print(f"\nP3 goals (the Ponder server, non-streaming, {args.workers} worker(s)):")
    for label, value, ok in checks:
        print(f"  {'MET   ' if ok else 'MISSED'} {label}: {value:,.2f}")
    met = all(ok for _, _, ok in checks)
    print("verdict:", "all P3 goals met" if met else "P3 goals not met")
    return met


async def run(args: argparse.Namespace) -> list[Row]:
    fake_port, ponder_port, module_port = free_port(), free_port(), free_port()
    upstream = {"PONDER_BENCH_UPSTREAM": f"http://127.0.0.1:{fake_port}/v1"}
    log = args.access_log
    with ExitStack() as stack:
        stack.enter_context(server("fake", fake_port, workers=1, access_log=log, env={}))
        stack.enter_context(
            server("ponder", ponder_port, workers=args.workers, access_log=log, env=upstream)
        )
        others = [Target("ponder", ponder_port)]
        if args.module:
            stack.enter_context(
                server("module", module_port, workers=args.workers, access_log=log, env=upstream)
            )
            others.append(Target("module", module_port))
        return await measure(args, Target("direct", fake_port), others)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="sequential, per target")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="per throughput round")
    parser.add_argument("--workers", type=int, default=1, help="Ponder's uvicorn workers")
    parser.add_argument("--access-log", action="store_true", help="as `ponder serve` does")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--module",
        action="store_true",
        help="also measure a bare FastAPI route on ponder.gateway.passthrough",
    )
    parser.add_argument("--serve", choices=["fake", "ponder", "module"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.workers, args.access_log)
        return
    env = environment()
    if env["loop"] == "uvloop":
        import uvloop

        rows = uvloop.run(run(args))
    else:
        rows = asyncio.run(run(args))
    met = report(rows, args, env)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
        data["environment"] = env
        data |= {"goals": GOALS, "met": met, "rows": [asdict(r) for r in rows]}
        args.json.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
