"""Log formats: the human one, and JSON lines for log pipelines.

Each request the gateway ends is one ``ponder.requests`` record whose ``extra`` fields carry
the request id (its ledger row's), the key prefix and team, the model, the strategy, the
outcome and HTTP-like status, the tokens and the seconds. :class:`JsonFormatter` writes any
record as one JSON object per line, those fields included; the human format shows them as
``key=value`` after the message.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

# The fields a request record carries (see ponder.gateway.service).
REQUEST_FIELDS = (
    "request_id",
    "key",
    "team",
    "model",
    "strategy",
    "outcome",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "seconds",
    "trace_id",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request fields, error."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in REQUEST_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [
            f"{name}={getattr(record, name)}"
            for name in REQUEST_FIELDS
            if getattr(record, name, None) is not None
        ]
        return f"{line} {' '.join(fields)}" if fields else line


def configure(level: int, fmt: LogFormat = "text") -> None:
    """Send every logger (uvicorn's included) to stderr in ``fmt``."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        logger.setLevel(logging.NOTSET)  # the root's level, until uvicorn sets its own
