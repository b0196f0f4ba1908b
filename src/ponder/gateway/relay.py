"""Relaying an endpoint's server-sent events: whole events, bytes unchanged, with the usage
read on the way and the one usage chunk Ponder asked for dropped."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import suppress
from types import TracebackType

import aiohttp
import anyio

from ponder.gateway.upstream import transport_error, usage_from
from ponder.types import Usage

# The end of one SSE event: a blank line after a line ending of \r\n, \n or \r.
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r|\r\n\n|\n\r\n")
# Endings that close an event whatever came before: a read ending so holds whole events.
_WHOLE = (b"\n\n", b"\r\n\r\n", b"\r\r")
# An event that carries a usage object; only those are parsed (``"usage":null`` is not).
# Inside a JSON string every quote is escaped, so this cannot match text in the content.
_USAGE = re.compile(rb'"usage"\s*:\s*\{')
# A delta that carries generated text (or tool-call arguments): an OpenAI-style endpoint
# streams about one token per such delta. Counted to estimate what a stream cut before its
# usage report spent (see :attr:`RelayStream.generated`); unescaped quotes cannot occur
# inside a JSON string, so text in the content cannot match.
_GENERATED = re.compile(rb'"(?:content|reasoning_content|reasoning|arguments)"\s*:\s*"[^"]')


class RelayStream:
    """An endpoint's SSE reply, for the caller to relay: ``async for data in stream`` yields
    the upstream bytes unchanged, grouped into whole events (an event is never split across
    two items), minus the usage-only chunk when :attr:`added_usage`.

    ``chunks`` are the reply's body bytes as they arrive (any split); ``on_close`` is called
    once, when the stream ends or is closed, to close the upstream response.

    :attr:`usage` and :attr:`exact` are final once iteration ends. Closing the stream
    (:meth:`aclose`, or leaving ``async with``) closes the upstream response and so the
    connection, which tells the endpoint to stop; a client that disconnects should cause
    exactly that. A transport failure mid-stream raises a typed :class:`BackendError` carrying
    the usage known so far; an error the endpoint sends as an event is relayed like any other.
    """

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        added_usage: bool,
        where: str,
        status_code: int = 200,
        on_close: Callable[[], object] | None = None,
    ) -> None:
        self.status_code = status_code
        # True when include_usage was added upstream (and its chunk is dropped here).
        self.added_usage = added_usage
        self._on_close = on_close
        self._where = where
        self._chunks: AsyncIterator[bytes] | None = chunks
        self._pending = b""
        self._usage: Usage | None = None
        self._final_usage = False
        self._ended = False
        self.generated = 0  # deltas with generated text seen (see _GENERATED)
        self.received = False  # whether any of the reply's body arrived

    @property
    def reported(self) -> Usage | None:
        """The endpoint's last usage report so far (None: none yet)."""
        return self._usage

    @property
    def usage(self) -> Usage:
        """The endpoint's last usage report, or ``Usage(calls=1)`` when none came."""
        return self._usage if self._usage is not None else Usage(calls=1)

    @property
    def exact(self) -> bool:
        """Whether :attr:`usage` is the endpoint's final report: its usage-only chunk came, or
        the stream ended whole after a chunk that carried usage."""
        return self._final_usage or (self._ended and self._usage is not None)

    @property
    def finished(self) -> bool:
        """Whether the endpoint's stream was read to its end."""
        return self._ended

    def __aiter__(self) -> RelayStream:
        return self

    async def __anext__(self) -> bytes:
        while True:
            if self._chunks is None:
                raise StopAsyncIteration
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._ended = True
                tail, self._pending = self._pending, b""
                await self.aclose()
                if tail and self._keep(tail):
                    return tail
                raise
            except (aiohttp.ClientError, TimeoutError) as exc:
                await self.aclose()
                raise transport_error(exc, self._where, usage=self.usage) from exc
            except BaseException:
                # Cancelled (the client left): stop the endpoint too.
                await self.aclose()
                raise
            relayed = self._feed(chunk)
            if relayed:
                return relayed

    async def aclose(self) -> None:
        """Close the upstream response (idempotent). Usage known so far is kept."""
        chunks, self._chunks = self._chunks, None
        if chunks is None:
            return
        with anyio.CancelScope(shield=True):
            if isinstance(chunks, AsyncGenerator):
                # RuntimeError: another task is iterating it; closing the response ends that.
                with suppress(RuntimeError):
                    await chunks.aclose()
            if self._on_close is not None:
                self._on_close()

    async def __aenter__(self) -> RelayStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- framing ------------------------------------------------------------------------
    def _feed(self, chunk: bytes) -> bytes:
        """The whole events that ``chunk`` completes, to relay; a partial one waits."""
        self.received = True
        self.generated += len(_GENERATED.findall(chunk))
        if not self._pending and chunk.endswith(_WHOLE) and _USAGE.search(chunk) is None:
            return chunk  # whole events, none with usage: nothing to read or drop
        data = self._pending + chunk if self._pending else chunk
        start = 0
        kept: list[bytes] = []
        dropped = False
        for match in _EVENT_END.finditer(data):
            event = data[start : match.end()]
            start = match.end()
            if self._keep(event):
                kept.append(event)
            else:
                dropped = True
        self._pending = data[start:]
        if not dropped and start == len(data):
            return data
        return b"".join(kept)

    def _keep(self, event: bytes) -> bool:
        """Read an event's usage; False for the usage-only chunk that Ponder asked for."""
        if _USAGE.search(event) is None:
            return True
        try:
            payload = json.loads(_event_data(event))
        except ValueError:
            return True
        if not isinstance(payload, dict):
            return True
        usage = usage_from(payload.get("usage"))
        if usage is None:
            return True
        # Usage on content chunks (vLLM's continuous_usage_stats) is cumulative: the last wins.
        self._usage = usage
        if payload.get("choices"):
            return True
        self._final_usage = True
        return not self.added_usage


def _event_data(event: bytes) -> bytes:
    """The data of one SSE event: its ``data:`` lines, joined."""
    return b"\n".join(
        line[5:].removeprefix(b" ") for line in event.splitlines() if line.startswith(b"data:")
    )
