"""The gateway: how a chat request reaches a model, with or without a reasoning strategy.

:class:`Gateway` admits, selects, resolves, runs, meters and records every request, for the
HTTP server, the CLI, the bench and the library alike. :mod:`ponder.gateway.passthrough`
forwards requests that no strategy applies to, unchanged.
"""

from ponder.gateway.call import ChatCall, Plan
from ponder.gateway.reply import Reply, ReplyStream
from ponder.gateway.service import Gateway

__all__ = ["ChatCall", "Gateway", "Plan", "Reply", "ReplyStream"]
