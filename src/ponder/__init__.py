"""Ponder: make any LLM think before it answers.

The library's face is :class:`ponder.gateway.Gateway` (``async with Gateway.from_config() as
gw: reply = await gw.chat("...")``); :func:`ask` is its one-line synchronous form. Both take
the same path as the server and the CLI. Importing ``ponder`` loads nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ponder.gateway import Reply

__version__ = "0.1.0"


def ask(
    question: str,
    *,
    model: str | None = None,
    strategy: str | dict[str, Any] | None = None,
    effort: str | None = None,
    config: str | None = None,
    **options: Any,
) -> Reply:
    """Answer ``question`` as the server would (the configured default strategy, ``auto``,
    unless ``strategy`` or ``effort`` says otherwise) and return the whole reply:
    ``ask("What is 17 * 23?").text``. ``config`` is a TOML file; ``options`` are ``chat``'s
    (``max_tokens``, ``temperature``, ``seed``, ``n``). Not for use inside a running event
    loop: there, ``await Gateway.chat`` instead."""
    import asyncio

    from ponder.gateway import Gateway

    async def run() -> Reply:
        async with Gateway.from_config(config) as gateway:
            return await gateway.chat(
                question, model=model, strategy=strategy, effort=effort, **options
            )

    return asyncio.run(run())
