"""The error raised when personal data cannot be checked for: the request does not leave."""

from __future__ import annotations

from ponder.errors import PonderError


class DataProtectionError(PonderError):
    """Detecting personal data in a request failed, so the request was not sent to the model
    (redaction fails closed). The message names the failure's type only, never the text."""

    status_code = 503
    error_type = "server_error"
    code = "data_protection_unavailable"
