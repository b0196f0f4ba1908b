"""The live server the fuzzers aim at: Ponder on loopback in front of the fake OpenAI
endpoint (``tests/fake_openai.py``), with an in-memory database and an admin key, and a tap
on its error log.

The tests run it in threads of their own process (as ``tests/test_routing.py`` does) and tap
this process's loggers; ``bench/fuzz.py`` runs the same configuration in a process of its
own, to read its memory, and reads its log file. Either way a :class:`ServerLog` gives what
the server logged while one request was being served (requests are sent one at a time).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Protocol

import httpx

from ponder.config import PonderConfig, ProviderConfig, RoutingSettings
from ponder.engine import weights
from ponder.server.app import create_app
from tests.fake_openai import make_app, serve_app

ADMIN = "fuzz-admin-key"
# The models that ship with Ponder, which llama.cpp would run here.
BUNDLED = tuple(spec.name for spec in weights.BUNDLED)


def fuzz_config(upstream: str) -> PonderConfig:
    """Ponder in front of the fake endpoint's well-behaved ``vllm`` profile: ``m`` on a
    remote provider (a request with no strategy is passed through), ``l`` on one marked
    local (for ``X-Ponder-Local-Only``). No default strategy, so that only what a request
    asks for runs; a small ``max_n`` keeps a streamed ``n`` cheap. The bundled models are
    denied: a name that reaches one (``ponder`` is the default model's) would load its
    weights and decode on the CPU, gigabytes and minutes, which is not what is fuzzed here
    (the deny is a 403, which is)."""
    return PonderConfig(
        trace_db=":memory:",
        default_strategy=None,
        max_n=8,
        deny_models=BUNDLED,
        providers=(
            ProviderConfig(name="remote", base_url=f"{upstream}/vllm/v1", models=("m",)),
            ProviderConfig(
                name="onprem", base_url=f"{upstream}/vllm/v1", models=("l",), local=True
            ),
        ),
        routing=RoutingSettings(backoff=0.01),
    )


class ServerLog(Protocol):
    """The server's error records, in order: :meth:`mark` before a request, :meth:`since`
    after it gives what the server logged while serving it."""

    def mark(self) -> int: ...

    def since(self, mark: int) -> list[str]: ...


class LogTap(logging.Handler):
    """Error records of this process's loggers (Ponder's and uvicorn's), formatted with
    their tracebacks."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        self.entries: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append(self.format(record))

    def mark(self) -> int:
        return len(self.entries)

    def since(self, mark: int) -> list[str]:
        return self.entries[mark:]


@dataclass
class Live:
    url: str
    log: ServerLog
    pid: int | None = None  # the server's own process, when it has one


@contextmanager
def tapped() -> Iterator[LogTap]:
    """Tap the root logger and uvicorn's (which does not propagate). Attach after uvicorn
    has configured its logging, which replaces its loggers' handlers."""
    tap = LogTap()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(tap)
    try:
        yield tap
    finally:
        for logger in loggers:
            logger.removeHandler(tap)


@contextmanager
def live_ponder() -> Iterator[Live]:
    """The fake endpoint and a Ponder server in front of it, on loopback, in threads."""
    with serve_app(make_app()) as upstream:
        app = create_app(fuzz_config(upstream), admin_key=ADMIN)
        with serve_app(app) as url, tapped() as tap:
            yield Live(url, tap)


def healthy(url: str) -> bool:
    with suppress(httpx.HTTPError):
        return httpx.get(f"{url}/health", timeout=10).status_code == 200
    return False


class FileLog:
    """A server's error records from its log file, for a server in a process of its own
    that logs each record as a line starting with ``@@ LEVEL``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def mark(self) -> int:
        with open(self.path, "rb") as log:
            return log.seek(0, 2)

    def since(self, mark: int) -> list[str]:
        with open(self.path, "rb") as log:
            log.seek(mark)
            text = log.read().decode("utf-8", "backslashreplace")
        records = [r for r in text.split("@@ ") if r.strip()]
        return [r.strip() for r in records if r.startswith(("ERROR", "CRITICAL"))]
