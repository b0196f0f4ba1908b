"""Pass-through: a chat request forwarded to an OpenAI-compatible endpoint, unchanged.

When no strategy applies, Ponder is a proxy, and a proxy must be faithful and cheap. No
request is rebuilt through a schema or an SDK: the client's JSON body goes upstream as it
was sent, with exactly these changes:

* ``model`` becomes the endpoint's name for the model (``upstream_model``), in place;
* each key of the provider's ``extra_body`` is added where the client did not set that
  top-level key (a key the client set wins whole; nothing is merged into it), except
  ``stream_options`` on a request that does not stream (vLLM refuses it there). A vLLM
  provider with ``extra_body = {stream_options = {continuous_usage_stats = true}}`` gets
  the usage so far on every chunk, so that a stream cut short is still metered exactly;
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

One :class:`PassThrough` holds one ``aiohttp.ClientSession`` shared by every request to
every endpoint, so connections are pooled and kept alive (aiohttp, not httpx: on loopback its
pool costs a fraction of httpx's per request). The session is made on first use, inside the
running event loop as aiohttp requires, so a :class:`PassThrough` can be built anywhere (and
then serves that loop only); its owner closes it with :meth:`PassThrough.aclose`. Authorization upstream is
``Bearer {endpoint.api_key}`` when the endpoint has a key; a client's own ``Authorization``
is never forwarded, and no cookie an endpoint sets is kept.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import aiohttp
from yarl import URL

from ponder.backends.endpoint import EndpointConfig
from ponder.errors import BackendError
from ponder.gateway.relay import RelayStream
from ponder.gateway.upstream import (
    Forwarded,
    pool_exhausted,
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


class _Target:
    """Where one endpoint's requests go, worked out once: the URL, the proxy (from the
    environment) and the timeouts."""

    __slots__ = ("proxy", "timeout", "url")

    def __init__(self, endpoint: EndpointConfig, *, trust_env: bool) -> None:
        try:
            self.url = URL(endpoint.base_url.rstrip("/") + "/chat/completions")
        except (TypeError, ValueError) as exc:
            raise BackendError(f"invalid endpoint URL {endpoint.base_url!r}: {exc}") from exc
        self.proxy = _env_proxy(self.url) if trust_env else None
        # Connecting (DNS included), and each wait for the next bytes of the reply; no bound
        # on the whole, so a long stream is not cut while it keeps sending.
        self.timeout = aiohttp.ClientTimeout(
            total=None,
            connect=endpoint.timeout,
            sock_connect=endpoint.timeout,
            sock_read=endpoint.timeout,
        )


class PassThrough:
    """Forwards chat requests to OpenAI-compatible endpoints over one pooled HTTP client.

    ``max_connections`` bounds concurrent upstream requests across all endpoints (a request
    beyond it waits up to the endpoint's timeout, then fails as unavailable); idle
    connections are kept alive for ``keepalive_expiry`` seconds, so that a busy gateway does
    not open a connection per request. Timeouts come from each endpoint's ``timeout``,
    applied to connecting and to each wait for the next bytes of a reply (a long stream is
    not cut while it keeps sending). ``trust_env`` reads proxy settings (``HTTPS_PROXY``,
    ``NO_PROXY``, ...) from the environment, as the OpenAI SDK does, once per endpoint.
    """

    def __init__(
        self,
        *,
        max_connections: int = 1000,
        keepalive_expiry: float = 5.0,
        trust_env: bool = True,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._trust_env = trust_env
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._targets: dict[tuple[str, float], _Target] = {}
        self._closed = False

    async def aclose(self) -> None:
        """Close the pooled connections (idempotent; nothing to do if none was made)."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

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
        slots = await self._acquire(endpoint, where)
        try:
            response = await self._send(endpoint, payload, headers)
            try:
                content = await response.read()
            finally:
                response.close()  # a no-op once read: the connection is back in the pool
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc, where) from exc
        finally:
            slots.release()
        return reply_of(response.status, content, where, response.headers.get("Retry-After"))

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
        slots = await self._acquire(endpoint, where)
        try:
            response = await self._send(endpoint, payload, headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            slots.release()
            raise transport_error(exc, where) from exc
        except BaseException:
            slots.release()
            raise
        content_type = response.headers.get("content-type", "")
        if response.status == 200 and not content_type.startswith("application/json"):

            def close() -> None:
                # Closes the connection unless the reply was read to its end (then it is
                # already back in the pool): an endpoint that is cut off stops generating.
                response.close()
                slots.release()

            return RelayStream(
                response.content.iter_any(),
                status_code=response.status,
                added_usage=added_usage,
                where=where,
                on_close=close,
            )
        try:
            content = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc, where) from exc
        finally:
            response.close()
            slots.release()
        return reply_of(response.status, content, where, response.headers.get("Retry-After"))

    # -- the client ---------------------------------------------------------------------
    async def _acquire(self, endpoint: EndpointConfig, where: str) -> asyncio.Semaphore:
        """A slot among ``max_connections``, waiting up to the endpoint's timeout for one."""
        slots = self._slots
        if slots is None:
            slots = self._slots = asyncio.Semaphore(self._max_connections)
        if not slots.locked():
            await slots.acquire()  # free: returns at once
            return slots
        try:
            async with asyncio.timeout(endpoint.timeout):
                await slots.acquire()
        except TimeoutError:
            raise pool_exhausted(where) from None
        return slots

    async def _send(
        self, endpoint: EndpointConfig, payload: bytes, headers: Mapping[str, str] | None
    ) -> aiohttp.ClientResponse:
        target = self._target(endpoint)
        sent: dict[str, str] = {"Content-Type": "application/json"}
        if headers:
            sent.update((k, v) for k, v in headers.items() if k.lower() not in _NEVER_FORWARDED)
        if endpoint.api_key:
            sent["Authorization"] = f"Bearer {endpoint.api_key}"
        return await self._client().post(
            target.url,
            data=payload,
            headers=sent,
            proxy=target.proxy,
            timeout=target.timeout,
            allow_redirects=False,
        )

    def _target(self, endpoint: EndpointConfig) -> _Target:
        key = (endpoint.base_url, endpoint.timeout)
        target = self._targets.get(key)
        if target is None:
            target = self._targets[key] = _Target(endpoint, trust_env=self._trust_env)
        return target

    def _client(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None:
            if self._closed:
                raise RuntimeError("this PassThrough is closed")
            connector = aiohttp.TCPConnector(
                limit=0,  # bounded by _acquire, which can tell an exhausted pool apart
                keepalive_timeout=self._keepalive_expiry,
            )
            session = self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # proxies are read once per endpoint, in _Target
            )
        return session


def _env_proxy(url: URL) -> URL | None:
    """The proxy the environment names for ``url`` (credentials in its URL), if any."""
    host = url.host or ""
    if not host or urllib.request.proxy_bypass(host):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    return URL(proxy) if proxy else None
