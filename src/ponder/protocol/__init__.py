"""OpenAI-compatible wire models. Imports no backend code."""

from ponder.protocol.chat import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessage,
    ModelCard,
    ModelList,
)
from ponder.protocol.errors import ErrorDetail, ErrorResponse

__all__ = [
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatCompletionResponse",
    "ChatMessage",
    "ErrorDetail",
    "ErrorResponse",
    "ModelCard",
    "ModelList",
]
