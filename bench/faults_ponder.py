"""Ponder as ``bench/faults.py`` runs it (``faults.py --serve ponder``): four providers of the
fake's one model, a SQLite ledger, an admin key; and the subprocess that is started, killed
with SIGKILL and restarted on the same database.

The providers (see faults.py): ``plain/m`` and ``vllm/m``, the fake speaking as OpenAI and as
vLLM (``continuous_usage_stats`` set in ``extra_body``); ``retry/m``, ``plain/m`` with
``max_retries = 2``; ``patient/m``, ``plain/m`` with a timeout of ``HANG_CAP``. The others
have ``$PONDER_FAULTS_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import os
import signal
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

from faults_endpoint import HANG_CAP, serve_fake
from launch import free_port, serve_uvicorn, server

MODEL = "m"
ADMIN = "bench-faults-admin"
# What clients ask for: a provider's model, or a strategy on one.
PLAIN, VLLM, RETRY, PATIENT = "plain/m", "vllm/m", "retry/m", "patient/m"
COT = "ponder/cot/{}"
VOTE = "ponder/confidence-vote;n=4;warmup=2;window=2/{}"


def ponder_app() -> Any:
    """Ponder on ``$PONDER_DATABASE_URL`` with the fake's providers, for uvicorn."""
    from ponder.config import PonderConfig, ProviderConfig
    from ponder.server.app import create_app

    upstream = os.environ["PONDER_BENCH_UPSTREAM"]
    timeout = float(os.environ["PONDER_FAULTS_TIMEOUT"])

    def provider(name: str, profile: str, retries: int, **extra: Any) -> ProviderConfig:
        return ProviderConfig(
            name=name,
            base_url=f"{upstream}/{profile}/v1",
            models=(MODEL,),
            timeout=extra.pop("timeout", timeout),
            max_retries=retries,
            **extra,
        )

    providers = (
        provider("plain", "plain", 0),
        provider(
            "vllm", "vllm", 0, extra_body={"stream_options": {"continuous_usage_stats": True}}
        ),
        provider("retry", "plain", 2),
        provider("patient", "plain", 0, timeout=HANG_CAP),
    )
    config = PonderConfig(
        providers=providers,
        default_strategy=None,
        database_url=os.environ["PONDER_DATABASE_URL"],
        default_request_tokens=100_000,  # confidence-vote declares no bound
    )
    return create_app(config, admin_key=ADMIN)


def serve(role: str, port: int) -> None:
    if role == "fake":
        asyncio.run(serve_fake(port))
        return
    serve_uvicorn(
        "faults_ponder:ponder_app",
        port,
        log_level="critical",
        access_log=False,
        timeout_graceful_shutdown=5,
    )


class Ponder:
    """The Ponder subprocess: started, killed with SIGKILL, restarted on the same database."""

    def __init__(self, env: dict[str, str], script: str | Path) -> None:
        self.env = env
        self.script = script  # whose ``--serve ponder`` runs :func:`ponder_app`
        self.port = 0
        self.pid = 0
        self._stack: ExitStack | None = None

    def start(self) -> None:
        self.port = free_port()
        self._stack = ExitStack()
        proc = self._stack.enter_context(
            server(
                "ponder", self.port, workers=1, access_log=False, env=self.env, script=self.script
            )
        )
        self.pid = proc.pid

    def kill9(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.stop()

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"
