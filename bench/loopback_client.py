"""The bench scripts' HTTP/1.1 client on 127.0.0.1: prepared request bytes, a keep-alive
connection, and the reading of a response head and of a chunked body, on asyncio streams.

Far cheaper than the servers it measures (no HTTP library, no validation), so that the
client takes as little as it can of the cores it shares with them.
"""

from __future__ import annotations

import asyncio
import json
import socket
from contextlib import suppress
from typing import Any


def chat_request(port: int, body: dict[str, Any], bearer: str, *, close: bool = False) -> bytes:
    """A ``POST /v1/chat/completions`` for ``body``, ready to write (``close``: the
    connection closes after the reply)."""
    payload = json.dumps(body).encode()
    connection = "Connection: close\r\n" if close else ""
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {bearer}\r\n"
        f"Content-Length: {len(payload)}\r\n{connection}\r\n"
    )
    return head.encode() + payload


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """A response's status and its headers, names and values lower-cased."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
    return status, headers


async def read_chunk(reader: asyncio.StreamReader) -> bytes | None:
    """The next chunk of a chunked body, or None after the last one (its trailer read)."""
    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
    if size == 0:
        await reader.readuntil(b"\r\n")
        return None
    return (await reader.readexactly(size + 2))[:-2]


class Connection:
    """One keep-alive connection; ``request`` sends prepared bytes and reads one response
    (Content-Length or chunked), returning its status and body."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            sock = self.writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert self.reader is not None
        self.writer.write(raw)
        status, headers = await read_head(self.reader)
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            parts = []
            while (part := await read_chunk(self.reader)) is not None:
                parts.append(part)
            body = b"".join(parts)
        else:
            body = await self.reader.read()
            headers["connection"] = "close"
        if headers.get("connection") == "close":
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None
