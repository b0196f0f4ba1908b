"""What ``ponder ask`` shows while a strategy works.

The strategy's progress lines (paths landing, the running vote, the rung being climbed)
arrive through ``on_progress``. Between them a model may write for minutes, so the request's
own model is wrapped in :class:`WatchedBackend`, which draws every call from the model's
stream and shows its tokens as they come. Only embedded models are wrapped: there
``generate`` is itself the collected stream (``backends/embedded.py``), so watching changes
nothing about what is sampled or metered.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from typing import Protocol

import click
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from ponder.backends.base import Backend, GenerationStream, collect
from ponder.types import Completion, Delta, GenerationRequest, Usage

# How much of a single path's text the live view keeps on screen while it is written.
TAIL_CHARACTERS = 240


class Display(Protocol):
    """Where ``ponder ask`` reports while it works."""

    def progress(self, line: str) -> None:
        """A progress line from the strategy."""

    def call_started(self, n: int) -> None:
        """A call to the model, sampling ``n`` paths, has begun."""

    def delta(self, delta: Delta) -> None:
        """A piece of a path, as the model writes it."""

    def call_ended(self) -> None:
        """The call has ended."""

    def close(self) -> None:
        """The work is over: clear anything live."""


class QuietDisplay:
    """Shows nothing (``--json``, ``--hide-reasoning``)."""

    def progress(self, line: str) -> None:
        pass

    def call_started(self, n: int) -> None:
        pass

    def delta(self, delta: Delta) -> None:
        pass

    def call_ended(self) -> None:
        pass

    def close(self) -> None:
        pass


class PlainDisplay(QuietDisplay):
    """Not a terminal: each progress line, plain, on stderr as it arrives."""

    def progress(self, line: str) -> None:
        click.echo(line.rstrip("\n"), err=True)
        sys.stderr.flush()


class RichDisplay:
    """A terminal: progress lines printed dim above a live line that shows the call in
    flight (paths, tokens so far, seconds) and the tail of a single path as it is written."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.width = 0
        self.tokens = 0
        self.text = ""
        self.call_start = time.perf_counter()
        self.live = Live(
            get_renderable=self._render,
            console=console,
            transient=True,  # the live line goes when the answer comes
            refresh_per_second=8,
        )
        self.live.start()

    def progress(self, line: str) -> None:
        self.live.console.print(Text(line.rstrip("\n"), style="bright_black"))

    def call_started(self, n: int) -> None:
        self.width, self.tokens, self.text = n, 0, ""
        self.call_start = time.perf_counter()

    def delta(self, delta: Delta) -> None:
        if delta.text or delta.reasoning:
            self.tokens += 1  # the embedded engine sends one delta per token
        if self.width == 1:
            self.text = (self.text + delta.reasoning + delta.text)[-TAIL_CHARACTERS:]

    def call_ended(self) -> None:
        self.width = 0

    def close(self) -> None:
        self.live.stop()

    def _render(self) -> RenderableType:
        if self.width == 0:
            return Spinner("dots", Text("thinking", style="cyan"))
        paths = "1 path" if self.width == 1 else f"{self.width} paths"
        seconds = time.perf_counter() - self.call_start
        status = Spinner(
            "dots", Text(f"writing {paths}: {self.tokens} tokens, {seconds:.0f}s", style="cyan")
        )
        if not self.text:
            return status
        tail = " ".join(self.text.split())[-self.console.width * 2 :]
        return Group(status, Text(tail, style="bright_black italic"))


class WatchedBackend:
    """The request's model, each call drawn from its stream so that ``display`` sees it."""

    def __init__(self, inner: Backend, display: Display) -> None:
        self.inner = inner
        self.display = display
        self.name = inner.name
        self.capabilities = inner.capabilities

    async def generate(self, request: GenerationRequest) -> Completion:
        return await collect(self.stream(request), request, self.inner.name)

    def stream(self, request: GenerationRequest) -> GenerationStream:
        return WatchedStream(self.inner.stream(request), request.n, self.display)

    async def aclose(self) -> None:
        """The model belongs to the gateway's registry, which closes it."""


class WatchedStream:
    """A model's stream, every delta shown to the display on its way through."""

    def __init__(self, inner: GenerationStream, n: int, display: Display) -> None:
        self.inner = inner
        self.n = n
        self.display = display

    def __aiter__(self) -> AsyncIterator[Delta]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Delta]:
        self.display.call_started(self.n)
        try:
            async for delta in self.inner:
                self.display.delta(delta)
                yield delta
        finally:
            self.display.call_ended()

    def cancel(self, index: int) -> None:
        self.inner.cancel(index)

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def usage(self) -> Usage:
        return self.inner.usage
