"""The client of ``bench/faults.py``: one chat request per connection, read event by event,
that can leave on purpose (after some stream chunks, or some seconds), and that says how the
request ended as it saw it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loopback_client import chat_request, read_chunk, read_head


@dataclass
class Outcome:
    """How one request ended, as its client saw it: ``ok``; ``error`` (a JSON error reply);
    ``cut+error`` (a stream that ended with an error event); ``left`` (the client left on
    purpose); ``cut`` (a stream that ended with neither [DONE] nor an error event);
    ``dropped`` (the connection closed before the reply or stream ended); ``hang`` (nothing
    ended it within its deadline)."""

    kind: str
    status: int = 0
    events: int = 0
    detail: str = ""
    seconds: float = 0.0


async def read_reply(
    reader: asyncio.StreamReader,
    *,
    leave_events: int | None,
    seen: Callable[[int], None],
) -> Outcome:
    status, headers = await read_head(reader)
    if headers.get("transfer-encoding") != "chunked":
        length = headers.get("content-length")
        raw = await (reader.readexactly(int(length)) if length else reader.read())
        try:
            body = json.loads(raw)
        except ValueError:
            return Outcome("bad", status, detail=raw[:200].decode(errors="replace"))
        if status == 200 and isinstance(body, dict) and body.get("choices"):
            return Outcome("ok", status)
        if status >= 400 and isinstance(body, dict) and "error" in body:
            return Outcome("error", status, detail=str(body["error"].get("message", ""))[:160])
        return Outcome("bad", status, detail=str(body)[:200])
    buffer = b""
    events = 0
    done = False
    error = ""
    while (part := await read_chunk(reader)) is not None:
        buffer += part
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            data = b"\n".join(
                line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")
            )
            if data == b"[DONE]":
                done = True
                continue
            try:
                payload = json.loads(data)
            except ValueError:
                continue
            if isinstance(payload, dict) and "error" in payload:
                error = str(payload["error"].get("message", ""))[:160]
            elif isinstance(payload, dict) and payload.get("choices"):
                events += 1
                seen(events)
                if leave_events is not None and events >= leave_events:
                    return Outcome("left", status, events)
    if error:
        return Outcome("cut+error", status, events, error)
    return Outcome("ok" if done else "cut", status, events)


async def call(
    port: int,
    secret: str,
    body: dict[str, Any],
    *,
    deadline: float,
    leave_events: int | None = None,
    leave_after: float | None = None,
    seen: Callable[[int], None] | None = None,
) -> Outcome:
    """One chat request on its own connection (closed at the end, which is how the client
    leaves: after ``leave_events`` stream chunks, or ``leave_after`` seconds)."""
    started = time.perf_counter()
    writer: asyncio.StreamWriter | None = None
    got = [0]

    def count(events: int) -> None:
        got[0] = events
        if seen is not None:
            seen(events)

    try:
        async with asyncio.timeout(deadline):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(chat_request(port, body, secret, close=True))
            try:
                async with asyncio.timeout(leave_after):
                    outcome = await read_reply(reader, leave_events=leave_events, seen=count)
            except TimeoutError:
                if leave_after is None:
                    raise
                outcome = Outcome("left", events=got[0])
    except TimeoutError:
        outcome = Outcome("hang", events=got[0])
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        outcome = Outcome("dropped", events=got[0], detail=type(exc).__name__)
    finally:
        if writer is not None:
            writer.close()
    outcome.seconds = time.perf_counter() - started
    return outcome
