"""The load generator of ``bench/load.py``, run in a process of its own so that it takes no
event loop time from the server it measures:

    python bench/load_client.py --port P --clients N --seconds T --timeout S \
        --body JSON [--canned] --out PATH

N clients, each on one keep-alive connection to 127.0.0.1:P, send a streamed chat request
(``--body``), read its SSE to the end, and send the next, until T seconds have passed; a
request still running then is finished (within its timeout) and counted. Every request is
bounded by ``--timeout`` seconds, connecting included; one that runs past it is a
``timeout``, and its connection is dropped. A 429 or 503 with ``Retry-After`` is honoured
(the client waits that long, at most RETRY_AFTER_CAP seconds) unless ``--no-retry-after``.

Each request ends as one outcome: ``served`` (status 200, a stream ending in
``data: [DONE]``, no error event; with ``--canned`` also the canned endpoint's whole reply),
``HTTP <status> <error code>``, ``error event`` (a 200 stream carrying an error),
``truncated`` (a 200 stream that ended without ``[DONE]``), ``bad reply`` (a whole stream
that is not the canned one), ``not a stream`` (a 200 that is not chunked), ``timeout``, or
``connect error: <exception>`` / ``connection error: <exception>``. The summary, written to
``--out`` as JSON: the counts by outcome, latency and time-to-first-byte percentiles of the
served requests, the refusals' latencies and whether they carried Retry-After, the served
requests per second of the run, the SLOWEST longest requests (when each started, its time
to first byte), and this process's CPU time.

Plain HTTP/1.1 on asyncio streams (``loopback_client``'s), far cheaper per request than
aiohttp or httpx, so that the client takes as little as it can of the cores it shares with
the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import resource
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fake_endpoint import CONTENT_CHUNKS
from loopback_client import chat_request, read_chunk, read_head

DONE = b"data: [DONE]\n\n"
ERROR_EVENT = b'data: {"error"'
RETRY_AFTER_CAP = 5.0  # seconds: the longest Retry-After a client waits
CONNECT_PAUSE = 0.1  # seconds a client waits after failing to connect, before it tries again
SERVED = "served"
SLOWEST = 5  # how many of the longest requests the summary lists


@dataclass(frozen=True, slots=True)
class Reply:
    """How one request ended."""

    kind: str  # SERVED, or what went wrong
    ttfb: float | None = None  # seconds from sending to the first byte of the body
    retry_after: str | None = None  # the Retry-After header, if any
    keep: bool = True  # whether the connection can carry the next request


@dataclass(slots=True)
class Tally:
    """Everything the clients saw; latencies in seconds."""

    latency: list[float] = field(default_factory=list)  # served requests
    ttfb: list[float] = field(default_factory=list)  # served requests
    refused_latency: list[float] = field(default_factory=list)  # 429s and 503s
    outcomes: Counter[str] = field(default_factory=Counter)
    retry_after: Counter[str] = field(default_factory=Counter)  # refusals: with / without
    examples: dict[str, str] = field(default_factory=dict)  # the first of each failure
    per_second: Counter[int] = field(default_factory=Counter)  # served, by second of the run
    served_in_window: int = 0  # served by the deadline
    # The SLOWEST longest requests of any outcome: (seconds, started at, ttfb, outcome).
    slowest: list[tuple[float, float, float | None, str]] = field(default_factory=list)

    def note_time(self, elapsed: float, started: float, reply: Reply) -> None:
        entry = (elapsed, started, reply.ttfb, reply.kind)
        if len(self.slowest) < SLOWEST:
            heapq.heappush(self.slowest, entry)
        elif elapsed > self.slowest[0][0]:
            heapq.heapreplace(self.slowest, entry)


class Conn:
    """One keep-alive connection, opened on first use and after a failure."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self.reader, self.writer

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()


async def read_rest(reader: asyncio.StreamReader, headers: dict[str, str]) -> tuple[bytes, bool]:
    """A (non-streamed) body, and whether the connection stays open after it."""
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"])), True
    if headers.get("transfer-encoding") == "chunked":
        parts = []
        while (part := await read_chunk(reader)) is not None:
            parts.append(part)
        return b"".join(parts), True
    return await reader.read(), False


def error_code(body: bytes) -> str:
    try:
        error = json.loads(body)["error"]
        return str(error.get("code") or error.get("type") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return "(not an OpenAI error)"


def classify(body: bytes, canned: bool) -> str:
    """The outcome of a 200 stream, read to its end."""
    if ERROR_EVENT in body:
        return "error event"
    if not body.endswith(DONE):
        return "truncated"
    if canned and body.count(b"canned") != CONTENT_CHUNKS:
        return "bad reply"
    return SERVED


async def exchange(conn: Conn, raw: bytes, started: float, canned: bool) -> Reply:
    """Send one prepared request and read its reply to the end."""
    reader, writer = await conn.open()
    writer.write(raw)
    status, headers = await read_head(reader)
    if status != 200:
        body, open_ = await read_rest(reader, headers)
        keep = open_ and headers.get("connection") != "close"
        return Reply(f"HTTP {status} {error_code(body)}", None, headers.get("retry-after"), keep)
    if headers.get("transfer-encoding") != "chunked":
        _, open_ = await read_rest(reader, headers)
        return Reply("not a stream", keep=open_ and headers.get("connection") != "close")
    ttfb = None
    parts = []
    while (part := await read_chunk(reader)) is not None:
        if ttfb is None:
            ttfb = time.perf_counter() - started
        parts.append(part)
    return Reply(
        classify(b"".join(parts), canned), ttfb, None, headers.get("connection") != "close"
    )


def retry_wait(value: str | None) -> float:
    try:
        seconds = float(value) if value is not None else 1.0
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


async def client(
    port: int,
    raw: bytes,
    *,
    canned: bool,
    t0: float,
    deadline: float,
    request_timeout: float,
    honour_retry_after: bool,
    tally: Tally,
) -> None:
    """One client: a request after another on one connection, until the deadline."""
    conn = Conn(port)
    try:
        while (started := time.perf_counter()) < deadline:
            fresh = conn.writer is None
            try:
                async with asyncio.timeout(request_timeout):
                    reply = await exchange(conn, raw, started, canned)
            except TimeoutError:
                reply = Reply("timeout", keep=False)
            except (OSError, EOFError, asyncio.LimitOverrunError, ValueError, IndexError) as exc:
                where = "connect" if fresh and conn.writer is None else "connection"
                reply = Reply(f"{where} error: {type(exc).__name__}", keep=False)
                tally.examples.setdefault(reply.kind, repr(exc)[:300])
            ended = time.perf_counter()
            elapsed = ended - started
            tally.outcomes[reply.kind] += 1
            tally.note_time(elapsed, started - t0, reply)
            if reply.kind == SERVED:
                assert reply.ttfb is not None
                tally.latency.append(elapsed)
                tally.ttfb.append(reply.ttfb)
                tally.per_second[int(ended - t0)] += 1
                if ended <= deadline:
                    tally.served_in_window += 1
            if not reply.keep:
                await conn.close()
            if reply.kind.startswith(("HTTP 429", "HTTP 503")):
                tally.refused_latency.append(elapsed)
                tally.retry_after["with" if reply.retry_after else "without"] += 1
                if honour_retry_after:
                    wait = retry_wait(reply.retry_after)
                    await asyncio.sleep(min(wait, max(0.0, deadline - time.perf_counter())))
            elif reply.kind.startswith("connect error"):
                await asyncio.sleep(CONNECT_PAUSE)
    finally:
        await conn.close()


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50, p99 and the largest, in ms (None when there are none)."""
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))] * 1000

    return {"p50_ms": at(50), "p99_ms": at(99), "max_ms": ordered[-1] * 1000}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    body = json.loads(args.body)
    raw = chat_request(args.port, body, "bench")
    tally = Tally()
    t0 = time.perf_counter()
    deadline = t0 + args.seconds
    async with asyncio.TaskGroup() as group:
        for _ in range(args.clients):
            group.create_task(
                client(
                    args.port,
                    raw,
                    canned=args.canned,
                    t0=t0,
                    deadline=deadline,
                    request_timeout=args.timeout,
                    honour_retry_after=not args.no_retry_after,
                    tally=tally,
                )
            )
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    per_second = [tally.per_second.get(s, 0) for s in range(int(args.seconds))]
    return {
        "clients": args.clients,
        "seconds": args.seconds,
        "timeout_s": args.timeout,
        "wall_s": wall,
        "drain_s": max(0.0, wall - args.seconds),
        "requests": sum(tally.outcomes.values()),
        "served": tally.outcomes[SERVED],
        "served_in_window": tally.served_in_window,
        "rps": tally.served_in_window / args.seconds,
        "outcomes": dict(tally.outcomes.most_common()),
        "errors": sum(n for kind, n in tally.outcomes.items() if kind != SERVED),
        "refusals_retry_after": dict(tally.retry_after),
        "examples": tally.examples,
        "latency": percentiles(tally.latency),
        "ttfb": percentiles(tally.ttfb),
        "refused_latency": percentiles(tally.refused_latency),
        "longest_ms": max((s[0] for s in tally.slowest), default=0.0) * 1000,
        "slowest": [
            {
                "ms": elapsed * 1000,
                "started_at_s": started,
                "ttfb_ms": None if ttfb is None else ttfb * 1000,
                "outcome": kind,
            }
            for elapsed, started, ttfb, kind in sorted(tally.slowest, reverse=True)
        ],
        "served_per_second": per_second,
        "client_cpu_s": usage.ru_utime + usage.ru_stime,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--timeout", type=float, required=True, help="per request, seconds")
    parser.add_argument("--body", required=True, help="the chat request, as JSON")
    parser.add_argument("--canned", action="store_true", help="expect the canned fake's reply")
    parser.add_argument("--no-retry-after", action="store_true", help="do not wait on 429/503")
    parser.add_argument("--out", type=Path, required=True, help="where the summary goes")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        summary = asyncio.run(run(args))
    else:
        summary = uvloop.run(run(args))
    args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
