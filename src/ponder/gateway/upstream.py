"""The upstream side of a pass-through: the body sent, the reply read back, the usage the
endpoint reported, and the typed error for each way an endpoint fails."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from ponder.backends.endpoint import EndpointConfig
from ponder.backends.openai_wire import retry_after as parse_retry_after
from ponder.errors import BackendError, BackendTimeoutError, BackendUnavailableError, PonderError
from ponder.types import Usage

# Upstream statuses that say the endpoint (not the request) failed, besides 5xx.
_UNAVAILABLE = frozenset({429, 502, 503, 529})
_TIMED_OUT = frozenset({408, 504})


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


def upstream_body(
    endpoint: EndpointConfig, upstream_model: str, body: Mapping[str, Any]
) -> tuple[bytes, bool]:
    """The JSON sent upstream for ``body``, and whether ``include_usage`` was added to it.

    Key order is the client's; ``model`` keeps its place (or comes last when missing)."""
    out = dict(body)
    out["model"] = upstream_model
    streaming = out.get("stream") is True
    for key, value in endpoint.extra_body.items():
        # stream_options go only with a stream: vLLM refuses them on any other request.
        if key not in out and (streaming or key != "stream_options"):
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
    exc: aiohttp.ClientError | TimeoutError, where: str, *, usage: Usage | None = None
) -> PonderError:
    """The typed error for an HTTP client failure while talking to ``where``."""
    if isinstance(exc, TimeoutError):  # aiohttp's connect and read timeouts are TimeoutErrors
        return BackendTimeoutError(
            f"{where}: the endpoint did not answer in time ({type(exc).__name__})", usage=usage
        )
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        # Refused, reset or dropped connections, and a body cut short.
        return BackendUnavailableError(
            f"{where}: cannot reach the endpoint ({type(exc).__name__}: {exc})", usage=usage
        )
    return BackendError(f"{where}: {type(exc).__name__}: {exc}", usage=usage)


def pool_exhausted(where: str) -> PonderError:
    """The typed error for a request that found no free upstream connection in time."""
    return BackendUnavailableError(f"{where}: no free upstream connection in time (pool exhausted)")


def status_error(
    status: int, content: bytes, where: str, retry_after: str | None = None
) -> PonderError:
    """The typed error for an upstream status that says the endpoint failed, with the wait
    its ``Retry-After`` asked for."""
    message = f"{where}: HTTP {status}: {_error_message(content)}"
    error: BackendError
    if status in _TIMED_OUT:
        error = BackendTimeoutError(message, usage=Usage(calls=1))
    elif status in _UNAVAILABLE:
        error = BackendUnavailableError(message, usage=Usage(calls=1))
    else:
        error = BackendError(message, usage=Usage(calls=1))
    error.retry_after = parse_retry_after(retry_after)
    return error


def reply_of(status: int, content: bytes, where: str, retry_after: str | None = None) -> Forwarded:
    """The :class:`Forwarded` for an endpoint's whole reply, or the typed error it means."""
    if status >= 500 or status in _TIMED_OUT or status in _UNAVAILABLE:
        raise status_error(status, content, where, retry_after)
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


def where_of(endpoint: EndpointConfig, upstream_model: str) -> str:
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


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)
