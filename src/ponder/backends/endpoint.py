"""How to reach and treat one OpenAI-compatible endpoint.

Shared by a configured provider (``[providers.NAME]`` in the TOML file, which serves several
models) and the remote backend built for one of its models, so the two cannot drift apart.
Imports nothing heavy: configuration loads it without pulling in an HTTP client.
"""

from ponder.config import EndpointConfig

__all__ = ["EndpointConfig"]
