"""The processes ``bench/budget_race.py`` races against: its fake endpoint, which spends each
request's worst case and counts what it served (``budget_race.py --serve fake``), Ponder in
pass-through mode on a database (``--serve ponder``), and a throwaway PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fake_endpoint import chat_completion, read_body, send_json, usage_of
from launch import serve_uvicorn

ROOT = Path(__file__).resolve().parents[1]
MODEL = "race-model"
ADMIN = "bench-admin-secret"
# Dollars per million tokens: whole micro-dollars per token, so money sums are exact.
PRICE_PROMPT, PRICE_COMPLETION = 10.0, 30.0


# -- the fake endpoint --------------------------------------------------------------------
def prompt_bound(messages: list[dict[str, Any]]) -> int:
    """Ponder's own upper bound on a prompt's tokens (what it reserves for it)."""
    from ponder.types import GenerationRequest, Message

    request = GenerationRequest(
        messages=tuple(Message(role=m["role"], content=str(m["content"])) for m in messages)
    )
    return request.prompt_token_bound()


def fake_app(delay: float, overrun: int = 0) -> Callable[..., Awaitable[None]]:
    """A chat endpoint that spends each request's worst case (the prompt bound plus ``n`` x
    ``max_tokens``, and ``overrun`` tokens more, as an endpoint that ignores ``max_tokens``
    would) after ``delay`` seconds; ``GET /stats`` returns what it has served."""
    served = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            await send_json(
                send, 200, json.dumps(served).encode() if scope["path"] == "/stats" else b"{}"
            )
            return
        request = json.loads(await read_body(receive))
        n, max_tokens = int(request.get("n") or 1), int(request["max_tokens"])
        prompt, completion = prompt_bound(request["messages"]), n * max_tokens + overrun
        await asyncio.sleep(delay)
        served["requests"] += 1
        served["prompt_tokens"] += prompt
        served["completion_tokens"] += completion
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": " tok" * max_tokens},
                "finish_reason": "length",
            }
            for i in range(n)
        ]
        body = chat_completion(
            "chatcmpl-race", request["model"], choices, usage_of(prompt, completion)
        )
        await send_json(send, 200, json.dumps(body).encode())

    return app


# -- Ponder -------------------------------------------------------------------------------
def ponder_app() -> Any:
    """Ponder in pass-through mode on ``$PONDER_DATABASE_URL``, for uvicorn's factory."""
    from ponder.config import PonderConfig, Price, ProviderConfig
    from ponder.server.app import create_app

    provider = ProviderConfig(
        name="fake", base_url=os.environ["PONDER_BENCH_UPSTREAM"], models=(MODEL,), max_retries=0
    )
    config = PonderConfig(
        providers=(provider,),
        default_strategy=None,
        prices={MODEL: Price(PRICE_PROMPT, PRICE_COMPLETION)},
    )
    return create_app(config, admin_key=ADMIN)


def serve(role: str, port: int) -> None:
    if role == "fake":
        delay = float(os.environ.get("PONDER_BENCH_DELAY_MS", "0")) / 1000
        overrun = int(os.environ.get("PONDER_BENCH_OVERRUN", "0"))
        serve_uvicorn(fake_app(delay, overrun), port, log_level="warning", lifespan="off")
        return
    serve_uvicorn("budget_race_servers:ponder_app", port, log_level="warning", access_log=False)


# -- databases ----------------------------------------------------------------------------
@contextmanager
def postgres() -> Iterator[Callable[[], str]]:
    """A throwaway PostgreSQL server (tests/postgres.py's), yielding a function that creates
    a fresh database on it and returns its URL; everything is dropped and stopped after."""
    sys.path.insert(0, str(ROOT))
    import pytest
    from tests.postgres import _start, postgres_bin_dir

    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise LookupError("no PostgreSQL binaries (apt-get install postgresql)")
    try:
        pg, base, stop = _start(bin_dir)
    except pytest.fail.Exception as error:
        raise RuntimeError(str(error)) from None
    made: list[str] = []

    def new_database() -> str:
        made.append(pg.create_database())
        return pg.url(made[-1])

    try:
        yield new_database
    finally:
        for name in made:
            pg.drop_database(name)
        subprocess.run(stop, cwd=base, capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
