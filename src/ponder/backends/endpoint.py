"""How to reach and treat one OpenAI-compatible endpoint.

Shared by a configured provider (``[providers.NAME]`` in the TOML file, which serves several
models) and the remote backend built for one of its models, so the two cannot drift apart.
Imports nothing heavy: configuration loads it without pulling in an HTTP client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointConfig:
    base_url: str
    api_key: str | None = None
    timeout: float = 120.0
    max_retries: int = 3
    # None: try native n and fall back to fan-out if the endpoint ignores it.
    native_n: bool | None = None
    # "auto": count each choice's tokens from logprobs when n>1 is native;
    # "reported": trust the endpoint's usage as it is.
    usage: Literal["auto", "reported"] = "auto"
    # How to continue a partial assistant message: "vllm" sends continue_final_message,
    # "trailing" sends a trailing assistant message (llama-server, Ollama), None: unsupported.
    prefill: Literal["vllm", "trailing"] | None = None
    supports_logprobs: bool = True
    extra_body: Mapping[str, Any] = field(default_factory=dict)

    def endpoint_fields(self) -> dict[str, Any]:
        """This endpoint's settings alone, to build a config of another kind from them."""
        return {f.name: getattr(self, f.name) for f in fields(EndpointConfig)}
