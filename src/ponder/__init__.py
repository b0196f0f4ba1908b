"""Ponder: make any LLM think before it answers."""

__version__ = "0.1.0"
