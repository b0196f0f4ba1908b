"""The server's outer guard: bodies over the limit are a 413, requests past the concurrency
bound a 503 with Retry-After, and an unexpected exception a logged 500 with a request id
after which the same keep-alive connection still serves."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from ponder.backends.scripted import ScriptedBackend
from ponder.config import PonderConfig
from ponder.routing.registry import BackendRegistry
from ponder.server.app import create_app
from ponder.types import GenerationRequest
from tests.fake_openai import serve_app

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


class Broken(ScriptedBackend):
    async def generate(self, request: GenerationRequest) -> Any:
        raise RuntimeError("a bug nobody foresaw")

    def stream(self, request: GenerationRequest) -> Any:
        raise RuntimeError("a bug nobody foresaw")


def server(**config: Any) -> Any:
    settings = PonderConfig(default_model="m", trace_db=":memory:", default_strategy=None)
    settings = settings.replace(**config)
    registry = BackendRegistry(settings)
    slow = ScriptedBackend.cycle(["one two three four"])
    slow.token_delay = 0.3
    registry.register("m", slow)
    registry.register("broken", Broken(lambda request, index: "x"))
    return serve_app(create_app(settings, registry=registry))


def test_a_body_over_the_limit_is_a_413_however_it_is_sent() -> None:
    with server(max_body_bytes=2000) as url:
        big = {**BODY, "messages": [{"role": "user", "content": "x" * 5000}]}
        reply = httpx.post(f"{url}/v1/chat/completions", json=big)
        assert reply.status_code == 413
        assert reply.json()["error"]["code"] == "request_too_large"

        def chunks() -> Iterator[bytes]:
            raw = json.dumps(big).encode()
            for i in range(0, len(raw), 500):
                yield raw[i : i + 500]

        chunked = httpx.post(
            f"{url}/v1/chat/completions",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert chunked.status_code == 413
        assert httpx.post(f"{url}/v1/chat/completions", json=BODY).status_code == 200


def test_past_the_concurrency_bound_a_request_is_told_to_retry() -> None:
    with server(max_concurrent_requests=1) as url:
        started = threading.Event()

        def long_stream() -> None:
            with httpx.stream(
                "POST", f"{url}/v1/chat/completions", json={**BODY, "stream": True}
            ) as reply:
                for _ in reply.iter_bytes():
                    started.set()

        worker = threading.Thread(target=long_stream)
        worker.start()
        assert started.wait(10)
        refused = httpx.post(f"{url}/v1/chat/completions", json=BODY)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.json()["error"]["code"] == "server_overloaded"
        worker.join(10)
        assert httpx.post(f"{url}/v1/chat/completions", json=BODY).status_code == 200


def test_an_unexpected_error_is_a_500_and_the_connection_stays_usable() -> None:
    with server() as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            replies = []
            for model in ("broken", "m"):
                body = json.dumps({**BODY, "model": model}).encode()
                sock.sendall(
                    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                replies.append(_read_response(sock))
        (status, headers, payload), (second, _, answer) = replies
        assert status == 500
        assert payload["error"]["code"] == "internal_error"
        assert headers["x-request-id"] in payload["error"]["message"]
        assert second == 200 and answer["choices"][0]["message"]["content"]


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], Any]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers["content-length"])
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(lines[0].split()[1]), headers, json.loads(rest[:length])
