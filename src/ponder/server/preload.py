"""Loading the models a server was started with, in the background.

uvicorn opens its socket only once the app's lifespan start-up returns, so models loaded
there would leave every probe with "connection refused" for minutes. The lifespan starts
:meth:`Preload.run` as a task instead and returns at once: ``/health/live`` answers while
models load, ``/health/ready`` reports :meth:`Preload.status` (503 until done), and a request
for a model still loading waits for it (the registry builds each deployment once, under a
lock, so the request and the preload share one load).

A preload that fails is handed to ``on_failure``; ``ponder serve`` stops the server with it
and prints one line. Without a handler the failure is logged and readiness says it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from ponder.gateway import Gateway

log = logging.getLogger("ponder.server")

# Called with the model's name and the error that stopped its load.
FailureHandler = Callable[[str, BaseException], None]


def one_line(error: BaseException) -> str:
    """An error as one line: its message (a Ponder error's own), else its type and text."""
    message = getattr(error, "message", None)
    text = message if isinstance(message, str) else f"{type(error).__name__}: {error}"
    return " ".join(text.split())


class Preload:
    """The state of one server's preloading: what is still loading, and what failed."""

    def __init__(self, names: list[str], on_failure: FailureHandler | None = None) -> None:
        self.names = list(names)
        self.pending = list(names)
        self.failure: tuple[str, BaseException] | None = None
        self.on_failure = on_failure
        self.task: asyncio.Task[None] | None = None

    def start(self, gateway: Gateway) -> None:
        self.task = asyncio.create_task(self.run(gateway), name="ponder-preload")

    async def run(self, gateway: Gateway) -> None:
        # One at a time, in the order given: loading two llama.cpp models at once only
        # competes for the same cores and memory bandwidth.
        for name in self.names:
            try:
                await gateway.registry.get(name)
            except (
                Exception
            ) as error:  # any failure to load is fatal to a server that must serve it
                self.failure = (name, error)
                if self.on_failure is None:
                    log.error("could not load model %s: %s", name, one_line(error))
                else:
                    log.debug("could not load model %s", name, exc_info=error)
                    self.on_failure(name, error)
                return
            self.pending.remove(name)
            log.info("model %s loaded", name)

    async def stop(self) -> None:
        """Stop waiting for a load still running (at shutdown). llama.cpp's own load cannot
        be interrupted; its thread finishes and the model is dropped."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    @property
    def done(self) -> bool:
        return not self.pending and self.failure is None

    def status(self) -> str:
        """ "ok", "loading models: …" or "failed to load …", for ``/health/ready``: the
        error itself is in the log only, since its message may name a file path."""
        if self.failure is not None:
            return f"failed to load {self.failure[0]}"
        if self.pending:
            return f"loading models: {', '.join(self.pending)}"
        return "ok"
