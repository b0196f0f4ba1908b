"""Pass-through: a chat request forwarded to an OpenAI-compatible endpoint, unchanged.

When no strategy applies, Ponder is a proxy, and a proxy must be faithful and cheap. No
request is rebuilt through a schema or an SDK: the client's JSON body goes upstream as it
was sent, with exactly these changes:

* ``model`` becomes the endpoint's name for the model (``upstream_model``), in place;
* each key of the provider's ``extra_body`` is added where the client did not set that
  top-level key (a key the client set wins whole; nothing is merged into it);
* for ``stream: true`` without ``stream_options.include_usage``, ``include_usage: true`` is
  added upstream (the client's other ``stream_options`` kept), and the final usage-only chunk
  this produces is dropped before relaying. This is the one rewrite metering needs: without
  it a stream's cost is unknown.

Replies come back as received. A JSON reply is kept byte for byte in
:attr:`Forwarded.content`, its ``model`` left as the endpoint said it: OpenAI itself answers
with a resolved snapshot name, so clients already cope, and a caller can relay the bytes
without encoding them again. A stream's SSE bytes are relayed unchanged, minus that one chunk.

Errors: a 4xx other than 408 and 429 is the client's own mistake; it comes back as a
:class:`Forwarded` reply (status and JSON body as received) for the caller to relay. What
says the endpoint, not the request, failed raises Ponder's typed errors so routing can fall
back: :class:`BackendUnavailableError` for 429, 502, 503, 529, refused or dropped connections
and an exhausted pool; :class:`BackendTimeoutError` for 408, 504 and timeouts;
:class:`BackendError` for any other 5xx, a redirect, or a success that is not JSON. Nothing
is retried here and ``Retry-After`` is not honoured (routing decides), so the endpoint's
``max_retries`` is not used.

Usage is read from the endpoint's ``usage`` (reasoning tokens from
``completion_tokens_details.reasoning_tokens``, cached prompt tokens from
``prompt_tokens_details.cached_tokens``) and is as exact as the endpoint's report; ``n > 1``
is passed through and metered as reported. ``exact`` is False when there was no report: a
reply without ``usage``, or a stream cut (or failed) before its usage chunk. Then the usage
holds what is known (``calls=1``, zero tokens, or the last cumulative usage a stream carried)
and is never an estimate.

One :class:`PassThrough` holds one ``httpx.AsyncClient`` shared by every request to every
endpoint, so connections are pooled and kept alive; its owner creates it once and closes it
with :meth:`PassThrough.aclose`. Authorization upstream is ``Bearer {endpoint.api_key}`` when
the endpoint has a key; a client's own ``Authorization`` is never forwarded.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from ponder.backends.endpoint import EndpointConfig
from ponder.gateway.relay import RelayStream
from ponder.gateway.upstream import (
    Forwarded,
    reply_of,
    status_error,
    transport_error,
    upstream_body,
    usage_from,
    where_of,
)

__all__ = [
    "Forwarded",
    "PassThrough",
    "RelayStream",
    "status_error",
    "transport_error",
    "upstream_body",
    "usage_from",
]

# Request headers a caller's extra headers may not set: authorization comes from the endpoint
# alone, and the rest describe the client's own connection or body, not the upstream one.
_NEVER_FORWARDED = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "host",
        "content-length",
        "content-type",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "accept-encoding",
    }
)


class PassThrough:
    """Forwards chat requests to OpenAI-compatible endpoints over one pooled HTTP client.

    ``max_connections`` bounds concurrent upstream requests across all endpoints (a request
    beyond it waits up to the endpoint's timeout, then fails as unavailable);
    ``max_keepalive`` idle connections are kept for ``keepalive_expiry`` seconds, enough that
    a busy gateway does not open a connection per request. Timeouts come from each
    endpoint's ``timeout``, applied to connecting, writing, waiting for the pool, and to each
    wait for the next bytes of a reply (a long stream is not cut while it keeps sending).
    ``trust_env`` reads proxy settings from the environment, as the OpenAI SDK does.
    """

    def __init__(
        self,
        *,
        max_connections: int = 1000,
        max_keepalive: int = 256,
        keepalive_expiry: float = 5.0,
        trust_env: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=min(max_keepalive, max_connections),
                keepalive_expiry=keepalive_expiry,
            ),
            headers={"Content-Type": "application/json"},
            follow_redirects=False,
            trust_env=trust_env,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> PassThrough:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def forward(
        self,
        endpoint: EndpointConfig,
        upstream_model: str,
        body: Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Forwarded:
        """Send a non-streaming chat request and return the endpoint's reply as received.

        ``headers`` are extra request headers (say, a provider's own); ones that describe the
        client's connection or authorization are left out. Raises ``ValueError`` for a body
        with ``stream: true`` (use :meth:`open_stream`) and the typed errors above."""
        if body.get("stream"):
            raise ValueError("forward() is for non-streaming requests; use open_stream()")
        payload, _ = upstream_body(endpoint, upstream_model, body)
        where = where_of(endpoint, upstream_model)
        try:
            request = self._request(endpoint, payload, headers)
            response = await self._client.send(request)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise transport_error(exc, where) from exc
        return reply_of(response, where)

    async def open_stream(
        self,
        endpoint: EndpointConfig,
        upstream_model: str,
        body: Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
    ) -> RelayStream | Forwarded:
        """Send a streaming chat request (``stream: true``) and wait for the reply's headers.

        Returns a :class:`RelayStream` to relay, which the caller must close; or, when the
        endpoint answered with JSON instead of a stream (a relayed 4xx error, or an endpoint
        that ignores ``stream``), a :class:`Forwarded` to relay as a plain reply. Raises
        ``ValueError`` for a body without ``stream: true`` and the typed errors above."""
        if body.get("stream") is not True:
            raise ValueError("open_stream() needs a body with stream: true; use forward()")
        payload, added_usage = upstream_body(endpoint, upstream_model, body)
        where = where_of(endpoint, upstream_model)
        try:
            request = self._request(endpoint, payload, headers)
            response = await self._client.send(request, stream=True)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise transport_error(exc, where) from exc
        content_type = response.headers.get("content-type", "")
        if response.status_code == 200 and not content_type.startswith("application/json"):
            return RelayStream(response, added_usage=added_usage, where=where)
        try:
            await response.aread()
        except httpx.HTTPError as exc:
            raise transport_error(exc, where) from exc
        finally:
            await response.aclose()
        return reply_of(response, where)

    def _request(
        self, endpoint: EndpointConfig, payload: bytes, headers: Mapping[str, str] | None
    ) -> httpx.Request:
        sent: dict[str, str] = {}
        if headers:
            sent.update((k, v) for k, v in headers.items() if k.lower() not in _NEVER_FORWARDED)
        if endpoint.api_key:
            sent["Authorization"] = f"Bearer {endpoint.api_key}"
        return self._client.build_request(
            "POST",
            endpoint.base_url.rstrip("/") + "/chat/completions",
            content=payload,
            headers=sent,
            timeout=httpx.Timeout(endpoint.timeout),
        )
