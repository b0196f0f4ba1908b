"""A small MCP server for tests/test_tools_mcp.py, built with the SDK's ``MCPServer``.

Run as a script it serves over stdio (``python tests/mcp_server.py``), or over streamable
HTTP with ``--http PORT`` (on 127.0.0.1, path ``/mcp``). Its tools cover what a client
must survive: an answer (``add``, ``lookup``, ``pid``), structured content
(``stats``), a non-text result (``picture``), a call that outlives any sane timeout
(``slow``), a tool that raises (``boom``) and one that kills the server (``die``).
``whoami`` answers with the ``X-Test-Token`` header an HTTP request carried (or the
``TEST_MCP_SECRET`` variable under stdio), so the tests can see configured secrets arrive.
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.utilities.types import Image

TABLE = {"alpha": "first", "beta": "second"}

# Quiet: the tests provoke errors on purpose, and this process's stderr is the test's.
server = MCPServer("ponder-test", log_level="CRITICAL")


@server.tool()
def add(a: int, b: int) -> str:
    """Add two integers."""
    return str(a + b)


@server.tool()
def lookup(key: str) -> str:
    """Look a key up in a small table."""
    return TABLE.get(key, f"no entry for {key}")


@server.tool()
def stats(values: list[float]) -> dict[str, float]:
    """The count and mean of some numbers, as structured content."""
    return {"count": len(values), "mean": sum(values) / len(values)}


@server.tool()
def picture() -> Image:
    """A one-pixel PNG: content a text-only model cannot read."""
    return Image(data=b"\x89PNG\r\n\x1a\n", format="png")


@server.tool()
async def slow() -> str:
    """Sleeps far longer than any test's timeout."""
    await asyncio.sleep(60)
    return "too late"


@server.tool()
def boom() -> str:
    """Always fails."""
    raise RuntimeError("the boom tool always fails")


@server.tool()
def die() -> str:
    """Ends the server's process in the middle of the call."""
    os._exit(3)


@server.tool()
def pid() -> str:
    """This server's process id (to see a restart, and that a stopped server is gone)."""
    return str(os.getpid())


@server.tool()
def whoami(ctx: Context) -> str:
    """The secret this server was given: the X-Test-Token header, or TEST_MCP_SECRET."""
    request = ctx.request_context.request
    headers = getattr(request, "headers", None)
    if headers is not None:
        return str(headers.get("x-test-token", "no header"))
    return os.environ.get("TEST_MCP_SECRET", "no variable")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()


if __name__ == "__main__":
    main()
