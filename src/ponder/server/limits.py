"""The server's outer guard, one ASGI middleware around every route:

* **Body size.** A body over ``max_body_bytes`` is refused with 413 before it is read:
  by its ``Content-Length``, or, for a chunked body, as soon as it passes the limit.
* **Overload.** At most ``max_concurrent_requests`` chat requests are served at once (a
  stream counts until its last byte); past that a request gets 503 with ``Retry-After``
  at once, instead of waiting without bound behind the others.
* **The unexpected.** An exception nothing else handled becomes a logged 500 with a request
  id (``X-Request-Id``), and the connection stays usable. Starlette's own last-resort
  handler re-raises after answering, which makes the server drop a keep-alive connection;
  this one does not. An exception after a response has started cannot change its status:
  it is logged and the response is cut.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from ponder.server.errors import error_response

log = logging.getLogger("ponder.server")

Scope = dict[str, Any]
Receive = Any
Send = Any

# Paths whose requests count against max_concurrent_requests (the ones that do work).
LIMITED_PATHS = frozenset({"/v1/chat/completions"})
# Seconds a client told "overloaded" is asked to wait.
OVERLOAD_RETRY_AFTER = 1


class BodyTooLarge(Exception):
    """A chunked body passed the limit while it was read."""


class Limits:
    def __init__(
        self, app: Any, *, max_body_bytes: int, max_concurrent_requests: int | None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_concurrent = max_concurrent_requests
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        limited = scope.get("path") in LIMITED_PATHS and self.max_concurrent is not None
        if limited and self.in_flight >= self.max_concurrent:  # type: ignore[operator]
            response = error_response(
                503,
                f"the server is serving its limit of {self.max_concurrent} requests; retry",
                "server_error",
                code="server_overloaded",
                headers={"Retry-After": str(OVERLOAD_RETRY_AFTER)},
            )
            await response(scope, receive, send)
            return
        started = False
        received = 0

        async def counted_receive() -> Any:
            nonlocal received
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        async def watched_send(message: Any) -> None:
            nonlocal started
            if message.get("type") == "http.response.start":
                started = True
            await send(message)

        if limited:
            self.in_flight += 1
        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            await self._too_large(scope, receive, send)
        except Exception:
            request_id = f"req-{uuid.uuid4().hex[:16]}"
            log.exception("unexpected error (request %s)", request_id)
            if started:
                raise
            response = error_response(
                500,
                f"internal server error (request {request_id})",
                "server_error",
                code="internal_error",
                headers={"X-Request-Id": request_id},
            )
            await response(scope, receive, send)
        finally:
            if limited:
                self.in_flight -= 1

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            f"the request body is larger than {self.max_body_bytes} bytes",
            "invalid_request_error",
            code="request_too_large",
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
