"""The servers ``bench/failover.py`` runs, each as ``failover.py --serve ROLE``: a fake OpenAI
chat endpoint whose failures it chooses and counts (``fake``), and Ponder in pass-through
mode with a few public names of two deployments each (``ponder``).

The fake is raw asyncio HTTP/1.1 (keep-alive), so that it can drop a connection or hang
exactly as it means to. A request's path says which deployment it is for and how that
deployment behaves: ``/INSTANCE/PROVIDER/PROFILE/v1/chat/completions``, the profile being

* ``ok``: always answers;
* ``flaky``: answers 503 to a seeded-random share (``$FAILOVER_FAIL_RATE``, default half)
  of its requests;
* ``mixed``: fails as often as ``flaky``, its failures cycling through a 503, a hang (no
  reply until the peer leaves, at most ``HANG_CAP`` seconds) and a dropped connection, all
  before any byte of the reply;
* ``down``: always 503.

Every reply, and every 503 or drop, comes after ``$FAILOVER_DELAY_MS`` (the service time).
``GET /counts`` returns, per ``INSTANCE/PROVIDER`` and per mode (``plain``, ``stream``),
how many requests came and how each ended (``ok``, ``503``, ``hang``, ``drop``).

Ponder's instance (uvicorn keeping idle connections 30 s, see :func:`serve_ponder`) is
described by ``$FAILOVER_PONDER`` (JSON: the fake's URL, the instance's name, its
``[routing]`` table and its public names, each with its providers and their profiles),
turned into a configuration as a TOML file's mapping would be.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import zlib
from collections import Counter, defaultdict
from contextlib import suppress
from typing import Any

from fake_endpoint import chat_completion, usage_of
from launch import serve_uvicorn

ADMIN = "bench-failover-admin"
CHUNKS = 6  # content chunks in a streamed reply
WORD = "ok "
HANG_CAP = 30.0  # the longest the fake hangs (seconds), so it stops by itself
MIXED = ("503", "hang", "drop")  # the order a mixed deployment's failures come in


def reply_text() -> str:
    """What every successful reply says (streamed: in CHUNKS deltas)."""
    return WORD * CHUNKS


# -- the fake endpoint --------------------------------------------------------------------
def http_reply(status: int, payload: Any) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}.get(status, "Error")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def sse_chunk(payload: Any) -> bytes:
    """One SSE event as one HTTP chunk."""
    event = b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(event), event)


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
DONE = b"data: [DONE]\n\n"
LAST = b"%x\r\n%s\r\n0\r\n\r\n" % (len(DONE), DONE)


class FakeEndpoint:
    """The fake: per deployment, a seeded random source and the counts of how requests
    ended, by mode."""

    def __init__(self, delay: float, fail_rate: float, seed: int) -> None:
        self.delay = delay
        self.fail_rate = fail_rate
        self.seed = seed
        self.counts: defaultdict[str, defaultdict[str, Counter[str]]] = defaultdict(
            lambda: defaultdict(Counter)
        )
        self._rngs: dict[str, random.Random] = {}
        self._failures: Counter[str] = Counter()

    def outcome(self, key: str, profile: str) -> str:
        """How this request to ``key`` ends: ``ok`` or a failure's kind."""
        if profile == "down":
            return "503"
        if profile not in ("flaky", "mixed"):
            return "ok"
        rng = self._rngs.get(key)
        if rng is None:
            rng = self._rngs[key] = random.Random(self.seed ^ zlib.crc32(key.encode()))
        if rng.random() >= self.fail_rate:
            return "ok"
        if profile == "flaky":
            return "503"
        self._failures[key] += 1
        return MIXED[(self._failures[key] - 1) % len(MIXED)]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # one request after another on a kept-alive connection
                head = await reader.readuntil(b"\r\n\r\n")
                method, path, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
                length = 0
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                raw = await reader.readexactly(length)
                if method == "GET":
                    writer.write(http_reply(200, self.counts if path == "/counts" else {}))
                elif not path.endswith("/v1/chat/completions"):
                    writer.write(http_reply(404, {"error": {"message": f"no route {path}"}}))
                elif not await self.chat(reader, writer, path, json.loads(raw)):
                    return
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def chat(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        path: str,
        body: dict[str, Any],
    ) -> bool:
        """Answer one chat request; False when the connection is to close."""
        *where, profile = path[1 : -len("/v1/chat/completions")].split("/")
        key = "/".join(where)
        stream = body.get("stream") is True
        outcome = self.outcome(key, profile)
        self.counts[key]["stream" if stream else "plain"][outcome] += 1
        if outcome == "hang":
            with suppress(TimeoutError):
                await asyncio.wait_for(reader.read(1), HANG_CAP)  # until the peer leaves
            return False
        await asyncio.sleep(self.delay)
        if outcome == "drop":
            return False
        if outcome == "503":
            error = {"message": "overloaded", "type": "server_error", "code": 503}
            writer.write(http_reply(503, {"error": error}))
            return True
        model = str(body.get("model", "m"))
        usage = usage_of(9, CHUNKS)
        if not stream:
            message = {"role": "assistant", "content": reply_text()}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            writer.write(http_reply(200, chat_completion("chatcmpl-fo", model, [choice], usage)))
            return True
        parts = [SSE_HEAD]
        first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        parts.append(sse_chunk(chat_completion("chatcmpl-fo", model, [first], None, chunk=True)))
        for k in range(CHUNKS):
            delta = {
                "index": 0,
                "delta": {"content": WORD},
                "finish_reason": "stop" if k == CHUNKS - 1 else None,
            }
            payload = chat_completion("chatcmpl-fo", model, [delta], None, chunk=True)
            parts.append(sse_chunk(payload))
        if (body.get("stream_options") or {}).get("include_usage"):
            parts.append(sse_chunk(chat_completion("chatcmpl-fo", model, [], usage, chunk=True)))
        parts.append(LAST)
        writer.write(b"".join(parts))
        return True


async def serve_fake(port: int) -> None:
    fake = FakeEndpoint(
        delay=float(os.environ.get("FAILOVER_DELAY_MS", "20")) / 1000,
        fail_rate=float(os.environ.get("FAILOVER_FAIL_RATE", "0.5")),
        seed=int(os.environ.get("FAILOVER_SEED", "0")),
    )
    server = await asyncio.start_server(fake.handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


# -- Ponder -------------------------------------------------------------------------------
def ponder_mapping(setup: dict[str, Any]) -> dict[str, Any]:
    """The configuration, as a TOML file's mapping, of one Ponder instance: each public name
    listed by two (or more) providers on the fake, pass-through, the instance's [routing]."""
    providers = {}
    for model, deployments in setup["models"].items():
        for provider, profile in deployments:
            providers[provider] = {
                "base_url": f"{setup['upstream']}/{setup['instance']}/{provider}/{profile}/v1",
                "models": [model],
                "timeout": setup["timeout"],
                "max_retries": 0,
            }
    return {
        "default_strategy": "none",
        "trace_db": ":memory:",
        "providers": providers,
        "routing": setup["routing"],
    }


def serve_ponder(port: int) -> None:
    from ponder.config import config_from_mapping
    from ponder.server.app import create_app

    config = config_from_mapping(ponder_mapping(json.loads(os.environ["FAILOVER_PONDER"])))
    app = create_app(config, admin_key=ADMIN)
    # Idle client connections are kept 30 s: at uvicorn's default, 5 s, the openai SDK's pool
    # (which drops them after 5 s idle) now and then reuses one just as the server closes it,
    # and a request between the bench's rounds fails with a connection error before reaching
    # Ponder's routing at all.
    serve_uvicorn(
        app,
        port,
        log_level="error",
        access_log=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=3,
    )


def serve(role: str, port: int) -> None:
    if role == "fake":
        asyncio.run(serve_fake(port))
    else:
        serve_ponder(port)
