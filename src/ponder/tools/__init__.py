"""Tools an agent loop can call on the caller's behalf: Ponder's built-in ones and those of
configured MCP servers, behind one small interface (:mod:`ponder.tools.base`)."""
