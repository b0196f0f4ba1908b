"""Data protection: personal data and secrets are replaced by placeholders before a request
leaves for a deployment that is not local, and restored in its reply.

:mod:`ponder.privacy.detect` finds them, :mod:`ponder.privacy.redact` swaps them for
reversible placeholders, :mod:`ponder.privacy.backend` wraps a Backend with both, failing
closed (:class:`DataProtectionError`) when detection fails.
"""

from ponder.privacy.backend import RedactingBackend, RestoringStream, restore_completion
from ponder.privacy.detect import KINDS, STRUCTURED, Detector, Finding, Kind
from ponder.privacy.errors import DataProtectionError
from ponder.privacy.redact import PLACEHOLDER, Redactor, StreamRestorer, Vault

__all__ = [
    "KINDS",
    "PLACEHOLDER",
    "STRUCTURED",
    "DataProtectionError",
    "Detector",
    "Finding",
    "Kind",
    "RedactingBackend",
    "Redactor",
    "RestoringStream",
    "StreamRestorer",
    "Vault",
    "restore_completion",
]
