"""The fake OpenAI endpoint of ``bench/faults.py`` (``faults.py --serve fake``): raw asyncio
HTTP/1.1, so that it controls exactly when a connection dies and sees at once when its peer
leaves, and it counts, per tag, exactly the tokens it served and those it never reported.

What each request does is written in its prompt (``[fault cut=3 tag=...]``; see faults.py).
Two ways of speaking, by the path's first segment: ``/plain/v1`` as OpenAI does (usage only
in a stream's last chunk, when asked), ``/vllm/v1`` as vLLM does (with
``stream_options.continuous_usage_stats`` the cumulative usage on every chunk; HTTP 400 for
``stream_options`` on a request that does not stream). ``GET /stats`` returns what it served
and how many requests are open.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter, defaultdict
from contextlib import suppress
from typing import Any

from fake_endpoint import chat_completion, usage_of

HANG_CAP = 30.0  # the longest the fake ever hangs (seconds), so it stops by itself
DIRECTIVE = re.compile(r"\[fault ([^\]]*)\]")


def directive(body: dict[str, Any]) -> dict[str, str]:
    """The ``[fault k=v ...]`` directive in the request's messages (a strategy's prompts
    carry the client's message, so the directive reaches the endpoint through it)."""
    for message in body.get("messages") or []:
        found = DIRECTIVE.search(str(message.get("content", "")))
        if found:
            return dict(p.split("=", 1) for p in found.group(1).split() if "=" in p)
    return {}


def prompt_tokens(body: dict[str, Any]) -> int:
    """The fake's own tokenizer: words. Ponder cannot know this count unless told."""
    return sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])


def http_json(status: int, payload: Any, extra: str = "") -> bytes:
    body = json.dumps(payload).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 503: "Service Unavailable"}
    head = (
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
    )
    return head.encode() + body


def error_json(status: int, message: str, extra: str = "") -> bytes:
    return http_json(status, {"error": {"message": message, "type": "fake", "code": status}}, extra)


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
)


def frame(payload: Any) -> bytes:
    """One SSE event as one HTTP chunk."""
    event = b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    event += b"\n\n"
    return b"%x\r\n%s\r\n" % (len(event), event)


def logprobs_of(token: str, top: int) -> dict[str, Any]:
    alternatives = [{"token": f"alt{k}", "logprob": -2.0 - k, "bytes": None} for k in range(top)]
    first = {"token": token, "logprob": -0.25, "bytes": list(token.encode())}
    return {"content": [{**first, "top_logprobs": [first, *alternatives][: max(top, 0)]}]}


class Link:
    """One upstream connection: writes that say whether they went out, and an event set as
    soon as the peer closes (it sends nothing after its request, so any read ends it)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.gone = asyncio.Event()
        self._watch = asyncio.ensure_future(self._eof(reader))

    async def _eof(self, reader: asyncio.StreamReader) -> None:
        with suppress(Exception):
            await reader.read(1)
        self.gone.set()

    async def pause(self, seconds: float) -> bool:
        """Wait ``seconds``; True if the peer left (before or meanwhile)."""
        if seconds > 0 and not self.gone.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(self.gone.wait(), seconds)
        return self.gone.is_set()

    async def send(self, data: bytes) -> bool:
        if self.gone.is_set():
            return False
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, RuntimeError):
            self.gone.set()
            return False
        return True

    def close(self) -> None:
        self._watch.cancel()
        self.writer.close()


class Endpoint:
    """The fake: per tag, what it served (``requests``, ``prompt_tokens``,
    ``completion_tokens``, ``unreported_prompt``, ``unreported_completion``, ``errors``),
    and how many requests are open."""

    def __init__(self) -> None:
        self.served: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.failed: Counter[str] = Counter()
        self.active = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link: Link | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, path, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            headers = {}
            for line in head.decode().split("\r\n")[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
            if method == "GET":
                stats = {"active": self.active, "served": self.served}
                writer.write(http_json(200, stats if path == "/stats" else {}))
                await writer.drain()
                return
            link = Link(reader, writer)
            if not path.endswith("/chat/completions"):
                await link.send(error_json(404, f"no route {path}"))
                return
            self.active += 1
            try:
                await self.chat(link, path.split("/")[1], json.loads(raw))
            finally:
                self.active -= 1
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
            ValueError,
        ):
            pass
        finally:
            if link is not None:
                link.close()
            else:
                writer.close()

    async def chat(self, link: Link, profile: str, body: dict[str, Any]) -> None:
        d = directive(body)
        stats = self.served[d.get("tag", "-")]
        stream = body.get("stream") is True
        options = body.get("stream_options") or {}
        if profile == "vllm" and options and not stream:
            stats["errors"] += 1
            message = "Stream options can only be defined when `stream=True`."
            await link.send(error_json(400, message))
            return
        tag = d.get("tag", "-")
        if self.failed[tag] < int(d.get("fail", 0)):
            self.failed[tag] += 1
            stats["errors"] += 1
            await link.send(error_json(503, "overloaded", "Retry-After-Ms: 10\r\n"))
            return
        stats["requests"] += 1
        prompt = prompt_tokens(body)
        n = int(body.get("n") or 1)
        max_tokens = int(body.get("max_tokens") or 16)
        per_choice = min(int(d.get("tokens", max_tokens)), max_tokens)
        if await link.pause(float(d.get("delay", 0)) / 1000):
            return
        if not stream:
            if "hang" in d:
                await link.pause(HANG_CAP)
                return
            if "cut" in d:
                return  # dies before replying: nothing was served
            total = n * per_choice
            top = int(body.get("top_logprobs") or 0)
            choices = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": " tok" * per_choice},
                    "logprobs": {
                        "content": [
                            logprobs_of(" tok", top)["content"][0] for _ in range(per_choice)
                        ]
                    }
                    if body.get("logprobs")
                    else None,
                    "finish_reason": "length",
                }
                for i in range(n)
            ]
            reply = chat_completion(
                "chatcmpl-fault", body.get("model"), choices, usage_of(prompt, total)
            )
            if await link.send(http_json(200, reply)):
                stats["prompt_tokens"] += prompt
                stats["completion_tokens"] += total
            return
        await self.stream(link, stats, d, body, profile, prompt, n, per_choice)

    async def stream(
        self,
        link: Link,
        stats: Counter[str],
        d: dict[str, str],
        body: dict[str, Any],
        profile: str,
        prompt: int,
        n: int,
        per_choice: int,
    ) -> None:
        options = body.get("stream_options") or {}
        include = bool(options.get("include_usage"))
        continuous = include and profile == "vllm" and bool(options.get("continuous_usage_stats"))
        cut = d.get("cut", d.get("scut"))
        hang = d.get("hang", d.get("shang"))
        pace = float(d.get("pace", 10)) / 1000
        top = int(body.get("top_logprobs") or 0) if body.get("logprobs") else -1

        def chunk(choices: list[Any], usage: Any) -> bytes:
            return frame(
                chat_completion("chatcmpl-fault", body.get("model"), choices, usage, chunk=True)
            )

        served_prompt = sent = reported_prompt = reported = 0
        try:
            if not await link.send(STREAM_HEAD):
                return
            for i in range(n):
                role = {"index": i, "delta": {"role": "assistant", "content": ""}}
                usage = usage_of(prompt, 0) if continuous else None
                if not await link.send(chunk([{**role, "finish_reason": None}], usage)):
                    return
                served_prompt = prompt
                reported_prompt = prompt if continuous else 0
            for step in range(per_choice):
                for i in range(n):
                    if cut is not None and sent >= int(cut):
                        return  # the connection closes with no end chunk: the endpoint died
                    if hang is not None and sent >= int(hang):
                        await link.pause(HANG_CAP)
                        return
                    if await link.pause(pace):
                        return
                    entry = {
                        "index": i,
                        "delta": {"content": " tok"},
                        "logprobs": logprobs_of(" tok", top) if top >= 0 else None,
                        "finish_reason": "length" if step == per_choice - 1 else None,
                    }
                    usage = usage_of(prompt, sent + 1) if continuous else None
                    if not await link.send(chunk([entry], usage)):
                        return
                    sent += 1
                    if continuous:
                        reported = sent
            if include:
                if not await link.send(chunk([], usage_of(prompt, sent))):
                    return
                reported_prompt, reported = prompt, sent
            if await link.send(frame(b"[DONE]")):
                await link.send(b"0\r\n\r\n")
        finally:
            stats["prompt_tokens"] += served_prompt
            stats["completion_tokens"] += sent
            stats["unreported_prompt"] += served_prompt - reported_prompt
            stats["unreported_completion"] += sent - reported


async def serve_fake(port: int) -> None:
    endpoint = Endpoint()
    listener = await asyncio.start_server(endpoint.handle, "127.0.0.1", port, backlog=512)
    async with listener:
        await listener.serve_forever()
