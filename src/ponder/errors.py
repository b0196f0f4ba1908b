"""Ponder's exception hierarchy.

Everything Ponder raises on purpose derives from :class:`PonderError`. Library code raises
these typed errors; only :mod:`ponder.server` maps them to OpenAI-shaped HTTP errors, using
the ``status_code``/``error_type``/``code`` attributes declared on each class. An error may
carry the usage already spent before it happened, so that a failing request still accounts
for every token it cost.

::

    PonderError
    ├── ConfigError                  bad configuration file or value
    ├── InvalidRequestError          the request itself is wrong (400)
    │   ├── ContextOverflowError     prompt + max_tokens cannot fit the context
    │   ├── ContentFilterError       a model's content filter refused the request
    │   └── UnsupportedFeatureError  the backend cannot do what was asked
    │       └── SandboxUnavailableError  programs cannot run: no OS sandbox here
    ├── RequestTimeoutError          the request ran past its timeout (504)
    ├── OverloadedError              the engine's queue is full or too slow (503)
    ├── AuthenticationError          no API key, or an unknown or revoked one (401)
    ├── ModelNotFoundError           unknown model name (404)
    ├── TraceNotFoundError           unknown trace id (404)
    ├── ResponseNotFoundError        unknown stored response id (404)
    ├── TenantNotFoundError          unknown team or API key id (404)
    ├── ModelError                   a model cannot be installed or loaded (500/503)
    │   ├── ModelNotInstalledError   a weight package is missing
    │   └── ModelIntegrityError      a checksum does not match
    ├── BackendError                 a backend failed while generating (502)
    │   ├── BackendTimeoutError      the backend did not answer in time (504)
    │   └── BackendUnavailableError  the backend refused or is down (503)
    ├── BudgetExceededError          a token or money budget is spent (402-like, 429)
    ├── RateLimitedError             too many requests or tokens this minute (429)
    ├── StoreUnavailableError        the tenancy database cannot be reached (503)
    ├── PolicyError                  a policy forbids this model or provider (403)
    └── CancelledSequenceError       a sequence was cancelled by its caller (499)
        └── ClientDisconnectedError  the HTTP client left before its reply
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ponder.types import Usage


class PonderError(Exception):
    """Base class of every error Ponder raises on purpose."""

    status_code: int = 500
    error_type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, usage: Usage | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        # Tokens already spent when the error happened; recorded, never lost.
        self.usage = usage


class ConfigError(PonderError):
    """The configuration is invalid."""

    code = "config_error"


class InvalidRequestError(PonderError):
    """The request is malformed or asks for something impossible."""

    status_code = 400
    error_type = "invalid_request_error"


class ContextOverflowError(InvalidRequestError):
    """The prompt plus the requested completion length does not fit the model's context."""

    code = "context_length_exceeded"


class ContentFilterError(InvalidRequestError):
    """A model's content policy refused the request (routing may fall back elsewhere)."""

    code = "content_policy_violation"


class UnsupportedFeatureError(InvalidRequestError):
    """The chosen backend cannot honour a requested feature."""

    code = "unsupported_feature"


class SandboxUnavailableError(UnsupportedFeatureError):
    """Model-written code cannot run here: the OS sandbox cannot be set up (no bwrap, no
    user namespaces, no seccomp). Ponder refuses to run programs rather than run them
    without isolation; ``fix`` says what an operator can do."""

    code = "sandbox_unavailable"

    def __init__(self, message: str, *, fix: str | None = None, param: str | None = None):
        super().__init__(message + (f". Fix: {fix}" if fix else ""), param=param)
        self.cause = message
        self.fix = fix


class ModelNotFoundError(PonderError):
    """No model or route is known under the requested name."""

    status_code = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class TraceNotFoundError(PonderError):
    """No trace is stored under the requested id."""

    status_code = 404
    error_type = "invalid_request_error"
    code = "trace_not_found"


class ResponseNotFoundError(PonderError):
    """No stored response under the requested id (never stored, deleted, or another key's)."""

    status_code = 404
    error_type = "invalid_request_error"
    code = "response_not_found"


class AuthenticationError(PonderError):
    """The request carries no API key, or one that is unknown or revoked."""

    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class TenantNotFoundError(PonderError):
    """No team or API key is known under the given name or id."""

    status_code = 404
    error_type = "invalid_request_error"
    code = "not_found"


class ModelError(PonderError):
    """A model cannot be installed or loaded."""

    status_code = 503
    code = "model_unavailable"


class ModelNotInstalledError(ModelError):
    """A package that holds part of the model's weights is not installed."""

    code = "model_not_installed"


class ModelIntegrityError(ModelError):
    """A weight file or part does not match its published checksum."""

    code = "model_integrity"


class BackendError(PonderError):
    """A backend failed while generating."""

    status_code = 502
    code = "backend_error"
    # Seconds the endpoint asked to wait before the next request (its Retry-After).
    retry_after: float | None = None


class BackendTimeoutError(BackendError):
    """The backend did not answer within the configured timeout."""

    status_code = 504
    code = "backend_timeout"


class BackendUnavailableError(BackendError):
    """The backend refused the connection or reported itself overloaded."""

    status_code = 503
    code = "backend_unavailable"


class BudgetExceededError(PonderError):
    """A token or money budget was exhausted."""

    status_code = 429
    error_type = "insufficient_quota"
    code = "budget_exceeded"


class RateLimitedError(PonderError):
    """A requests-per-minute or tokens-per-minute limit is reached. ``retry_after`` is the
    number of seconds until the current minute window ends (the HTTP edge sends it as
    ``Retry-After``); ``error_type`` says which limit, as OpenAI does ("requests"/"tokens")."""

    status_code = 429
    error_type = "requests"
    code = "rate_limit_exceeded"

    def __init__(
        self, message: str, *, retry_after: float, tokens: bool = False, param: str | None = None
    ):
        super().__init__(message, param=param)
        self.retry_after = retry_after
        if tokens:
            self.error_type = "tokens"


class StoreUnavailableError(PonderError):
    """The tenancy database (keys, budgets, the ledger) cannot be reached. Requests that need
    it are refused rather than served unmetered."""

    status_code = 503
    code = "store_unavailable"


class RequestTimeoutError(PonderError):
    """The request ran past its timeout (the server's ``request_timeout``, or the shorter one
    the client asked for); its work was cancelled, and what it spent is still recorded."""

    status_code = 504
    error_type = "timeout_error"
    code = "request_timeout"


class OverloadedError(PonderError):
    """Ponder itself is at capacity (the embedded engine's queue is full, or a request waited
    in it past its deadline). The client should come back after ``retry_after`` seconds; the
    HTTP edge sends it as ``Retry-After``. Not a deployment's failure: routing does not retry
    it or cool the deployment down, so the load is shed back to the client at once."""

    status_code = 503
    error_type = "server_error"
    code = "engine_overloaded"

    def __init__(self, message: str, *, retry_after: float = 1.0, param: str | None = None):
        super().__init__(message, param=param)
        self.retry_after = retry_after


class PolicyError(PonderError):
    """A policy forbids this model or provider (for example an excluded vendor)."""

    status_code = 403
    error_type = "permission_error"
    code = "policy_denied"


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf of a task group's exception group, so callers meet one typed error."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


class CancelledSequenceError(PonderError):
    """A sequence was cancelled by its caller."""

    status_code = 499
    code = "cancelled"


class ClientDisconnectedError(CancelledSequenceError):
    """The HTTP client went away before its reply; the request's work was cancelled. Nobody
    reads the response, but the usage spent until then is still recorded."""

    code = "client_closed_request"
