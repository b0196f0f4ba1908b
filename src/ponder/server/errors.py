"""Errors on the wire: Ponder's exception tree mapped to OpenAI-shaped HTTP responses, here
and nowhere else."""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ponder.errors import (
    AuthenticationError,
    BackendError,
    OverloadedError,
    PonderError,
    RateLimitedError,
)
from ponder.protocol.errors import ErrorDetail, ErrorResponse

log = logging.getLogger("ponder.server")


# The error statuses every route may answer, each with an OpenAI-shaped body: declared in
# the OpenAPI document, so that it says what the server does.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "The request is invalid."),
        (401, "No API key, or an unknown or revoked one."),
        (403, "The caller may not use this model, strategy or route."),
        (404, "No such model, trace, team or key."),
        (413, "The request body is too large."),
        (429, "A rate limit or budget is reached."),
        (500, "An unexpected error (its request id is in the message)."),
        (502, "The model's endpoint failed."),
        (503, "The server or the model's endpoint is overloaded or unavailable."),
        (504, "The model's endpoint did not answer in time."),
    )
}


def error_response(
    status: int,
    message: str,
    type_: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(message=message, type=type_, param=param, code=code))
    return JSONResponse(status_code=status, content=body.model_dump(), headers=headers)


def error_body(exc: PonderError) -> dict[str, object]:
    detail = ErrorDetail(message=exc.message, type=exc.error_type, param=exc.param, code=exc.code)
    return ErrorResponse(error=detail).model_dump()


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into an OpenAI-shaped body."""

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        if first.get("type") == "json_invalid":
            return error_response(
                400,
                "the request body is not valid JSON",
                "invalid_request_error",
                code="invalid_json",
            )
        message = first.get("msg", "invalid request")
        where = ".".join(loc)
        return error_response(
            400,
            f"{where}: {message}" if where else message,
            "invalid_request_error",
            param=where or None,
            code="invalid_value",
        )

    @app.exception_handler(PonderError)
    async def _ponder(request: Request, exc: PonderError) -> JSONResponse:
        headers = None
        wait = (
            exc.retry_after
            if isinstance(exc, RateLimitedError | BackendError | OverloadedError)
            else None
        )
        if wait is not None:
            headers = {"Retry-After": str(max(1, math.ceil(wait)))}
        elif isinstance(exc, AuthenticationError):
            headers = {"WWW-Authenticate": "Bearer"}
        return error_response(
            exc.status_code,
            exc.message,
            exc.error_type,
            param=exc.param,
            code=exc.code,
            headers=headers,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(
            exc.status_code, str(exc.detail), "invalid_request_error", code=str(exc.status_code)
        )

    # Anything else is ponder.server.limits's: a logged 500 that keeps the connection.
