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

import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
import httpx

from ponder.backends.endpoint import EndpointConfig
from ponder.errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    PonderError,
)
from ponder.types import Usage

# Upstream statuses that say the endpoint (not the request) failed, besides 5xx.
_UNAVAILABLE = frozenset({429, 502, 503, 529})
_TIMED_OUT = frozenset({408, 504})

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

# The end of one SSE event: a blank line after a line ending of \r\n, \n or \r.
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r|\r\n\n|\n\r\n")
# Endings that close an event whatever came before: a read ending so holds whole events.
_WHOLE = (b"\n\n", b"\r\n\r\n", b"\r\r")
# An event that carries a usage object; only those are parsed (``"usage":null`` is not).
# Inside a JSON string every quote is escaped, so this cannot match text in the content.
_USAGE = re.compile(rb'"usage"\s*:\s*\{')


@dataclass(frozen=True, slots=True)
class Forwarded:
    """An endpoint's JSON reply, as received.

    ``content`` is the body byte for byte (for a non-JSON 4xx body: an OpenAI-shaped error
    wrapping its text), ``body`` the same parsed. ``usage`` is the endpoint's report,
    ``exact`` False where it made none (for a relayed 4xx, True with zero tokens: a refused
    request costs nothing)."""

    status_code: int
    content: bytes
    body: Any
    usage: Usage
    exact: bool

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


class RelayStream:
    """An endpoint's SSE reply, for the caller to relay: ``async for data in stream`` yields
    the upstream bytes unchanged, grouped into whole events (an event is never split across
    two items), minus the usage-only chunk when :attr:`added_usage`.

    :attr:`usage` and :attr:`exact` are final once iteration ends. Closing the stream
    (:meth:`aclose`, or leaving ``async with``) closes the upstream response and so the
    connection, which tells the endpoint to stop; a client that disconnects should cause
    exactly that. A transport failure mid-stream raises a typed :class:`BackendError` carrying
    the usage known so far; an error the endpoint sends as an event is relayed like any other.
    """

    def __init__(self, response: httpx.Response, *, added_usage: bool, where: str) -> None:
        self.status_code = response.status_code
        # True when include_usage was added upstream (and its chunk is dropped here).
        self.added_usage = added_usage
        self._response = response
        self._where = where
        self._chunks: AsyncIterator[bytes] | None = response.aiter_bytes()
        self._pending = b""
        self._usage: Usage | None = None
        self._final_usage = False
        self._ended = False

    @property
    def usage(self) -> Usage:
        """The endpoint's last usage report, or ``Usage(calls=1)`` when none came."""
        return self._usage if self._usage is not None else Usage(calls=1)

    @property
    def exact(self) -> bool:
        """Whether :attr:`usage` is the endpoint's final report: its usage-only chunk came, or
        the stream ended whole after a chunk that carried usage."""
        return self._final_usage or (self._ended and self._usage is not None)

    @property
    def finished(self) -> bool:
        """Whether the endpoint's stream was read to its end."""
        return self._ended

    def __aiter__(self) -> RelayStream:
        return self

    async def __anext__(self) -> bytes:
        while True:
            if self._chunks is None:
                raise StopAsyncIteration
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._ended = True
                tail, self._pending = self._pending, b""
                await self.aclose()
                if tail and self._keep(tail):
                    return tail
                raise
            except httpx.HTTPError as exc:
                await self.aclose()
                raise transport_error(exc, self._where, usage=self.usage) from exc
            except BaseException:
                # Cancelled (the client left): stop the endpoint too.
                await self.aclose()
                raise
            relayed = self._feed(chunk)
            if relayed:
                return relayed

    async def aclose(self) -> None:
        """Close the upstream response (idempotent). Usage known so far is kept."""
        chunks, self._chunks = self._chunks, None
        if chunks is None:
            return
        with anyio.CancelScope(shield=True):
            if isinstance(chunks, AsyncGenerator):
                # RuntimeError: another task is iterating it; closing the response ends that.
                with suppress(RuntimeError):
                    await chunks.aclose()
            await self._response.aclose()

    async def __aenter__(self) -> RelayStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- framing ------------------------------------------------------------------------
    def _feed(self, chunk: bytes) -> bytes:
        """The whole events that ``chunk`` completes, to relay; a partial one waits."""
        if not self._pending and chunk.endswith(_WHOLE) and _USAGE.search(chunk) is None:
            return chunk  # whole events, none with usage: nothing to read or drop
        data = self._pending + chunk if self._pending else chunk
        start = 0
        kept: list[bytes] = []
        dropped = False
        for match in _EVENT_END.finditer(data):
            event = data[start : match.end()]
            start = match.end()
            if self._keep(event):
                kept.append(event)
            else:
                dropped = True
        self._pending = data[start:]
        if not dropped and start == len(data):
            return data
        return b"".join(kept)

    def _keep(self, event: bytes) -> bool:
        """Read an event's usage; False for the usage-only chunk that Ponder asked for."""
        if _USAGE.search(event) is None:
            return True
        try:
            payload = json.loads(_event_data(event))
        except ValueError:
            return True
        if not isinstance(payload, dict):
            return True
        usage = usage_from(payload.get("usage"))
        if usage is None:
            return True
        # Usage on content chunks (vLLM's continuous_usage_stats) is cumulative: the last wins.
        self._usage = usage
        if payload.get("choices"):
            return True
        self._final_usage = True
        return not self.added_usage


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
        where = _where(endpoint, upstream_model)
        try:
            request = self._request(endpoint, payload, headers)
            response = await self._client.send(request)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise transport_error(exc, where) from exc
        return _reply(response, where)

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
        where = _where(endpoint, upstream_model)
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
        return _reply(response, where)

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


def upstream_body(
    endpoint: EndpointConfig, upstream_model: str, body: Mapping[str, Any]
) -> tuple[bytes, bool]:
    """The JSON sent upstream for ``body``, and whether ``include_usage`` was added to it.

    Key order is the client's; ``model`` keeps its place (or comes last when missing)."""
    out = dict(body)
    out["model"] = upstream_model
    for key, value in endpoint.extra_body.items():
        if key not in out:
            out[key] = value
    added_usage = False
    if out.get("stream") is True:
        options = out.get("stream_options")
        if not (isinstance(options, Mapping) and options.get("include_usage")):
            base = dict(options) if isinstance(options, Mapping) else {}
            out["stream_options"] = {**base, "include_usage": True}
            added_usage = True
    return json.dumps(out, separators=(",", ":")).encode(), added_usage


def usage_from(raw: object) -> Usage | None:
    """A :class:`Usage` from an OpenAI ``usage`` object; None when there is none."""
    if not isinstance(raw, Mapping):
        return None
    completion_details = raw.get("completion_tokens_details")
    prompt_details = raw.get("prompt_tokens_details")
    return Usage(
        prompt_tokens=_count(raw.get("prompt_tokens")),
        completion_tokens=_count(raw.get("completion_tokens")),
        reasoning_tokens=_count(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, Mapping)
        else 0,
        cached_prompt_tokens=_count(prompt_details.get("cached_tokens"))
        if isinstance(prompt_details, Mapping)
        else 0,
        calls=1,
    )


def transport_error(
    exc: httpx.HTTPError | httpx.InvalidURL, where: str, *, usage: Usage | None = None
) -> PonderError:
    """The typed error for an HTTP client failure while talking to ``where``."""
    if isinstance(exc, httpx.PoolTimeout):
        return BackendUnavailableError(
            f"{where}: no free upstream connection in time (pool exhausted)", usage=usage
        )
    if isinstance(exc, httpx.TimeoutException):
        return BackendTimeoutError(
            f"{where}: the endpoint did not answer in time ({type(exc).__name__})", usage=usage
        )
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
        return BackendUnavailableError(
            f"{where}: cannot reach the endpoint ({type(exc).__name__}: {exc})", usage=usage
        )
    return BackendError(f"{where}: {type(exc).__name__}: {exc}", usage=usage)


def status_error(status: int, content: bytes, where: str) -> PonderError:
    """The typed error for an upstream status that says the endpoint failed."""
    message = f"{where}: HTTP {status}: {_error_message(content)}"
    if status in _TIMED_OUT:
        return BackendTimeoutError(message, usage=Usage(calls=1))
    if status in _UNAVAILABLE:
        return BackendUnavailableError(message, usage=Usage(calls=1))
    return BackendError(message, usage=Usage(calls=1))


def _reply(response: httpx.Response, where: str) -> Forwarded:
    status = response.status_code
    content = response.content
    if status >= 500 or status in _TIMED_OUT or status in _UNAVAILABLE:
        raise status_error(status, content, where)
    if not 200 <= status < 500 or 300 <= status < 400:
        raise BackendError(f"{where}: unexpected HTTP {status} from the endpoint")
    try:
        body = json.loads(content)
    except ValueError:
        if status < 300:
            raise BackendError(f"{where}: the endpoint's reply is not JSON") from None
        body = {
            "error": {
                "message": content.decode(errors="replace")[:2000] or f"HTTP {status}",
                "type": "invalid_request_error",
                "param": None,
                "code": str(status),
            }
        }
        content = json.dumps(body, separators=(",", ":")).encode()
    if status >= 400:
        return Forwarded(status, content, body, Usage(calls=1), exact=True)
    usage = usage_from(body.get("usage")) if isinstance(body, dict) else None
    if usage is None:
        return Forwarded(status, content, body, Usage(calls=1), exact=False)
    return Forwarded(status, content, body, usage, exact=True)


def _where(endpoint: EndpointConfig, upstream_model: str) -> str:
    return f"{upstream_model} at {endpoint.base_url}"


def _error_message(content: bytes) -> str:
    try:
        body = json.loads(content)
    except ValueError:
        return content.decode(errors="replace")[:500] or "(empty body)"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return content.decode(errors="replace")[:500]


def _event_data(event: bytes) -> bytes:
    """The data of one SSE event: its ``data:`` lines, joined."""
    return b"\n".join(
        line[5:].removeprefix(b" ") for line in event.splitlines() if line.startswith(b"data:")
    )


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)
