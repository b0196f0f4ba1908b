"""The MCP server bench/agents.py starts for its ``mcp`` tasks: one tool, ``lookup(key)``,
answering from a JSON table of keys to values (the tasks' ``lookup_table``\\s, merged).

    python bench/agent_mcp_server.py TABLE.json     # serves over stdio
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer


def build(table: dict[str, object]) -> MCPServer:
    """The server, its table held by the tool's closure (no module-level state)."""
    server = MCPServer("ponder-bench", log_level="CRITICAL")

    @server.tool()
    def lookup(key: str) -> str:
        """Look up the value stored under a key (for example price:widget)."""
        if key in table:
            value = table[key]
            return value if isinstance(value, str) else json.dumps(value)
        return f"no entry for {key!r}; known keys look like {next(iter(table), 'none')!r}"

    return server


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: agent_mcp_server.py TABLE.json")
    build(json.loads(Path(sys.argv[1]).read_text())).run()


if __name__ == "__main__":
    main()
