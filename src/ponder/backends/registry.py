"""Resolves model names to Backends: bundled models, local GGUF paths, remote providers.

Embedded models load on first use and stay loaded; the registry owns every backend it made
and closes them together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ponder.backends.base import Backend
from ponder.backends.remote import RemoteBackend, RemoteConfig
from ponder.config import PonderConfig, ProviderConfig
from ponder.engine.weights import ModelStore
from ponder.errors import InvalidRequestError, ModelError, ModelNotFoundError
from ponder.policy import DenyList, Policy, Purpose

if TYPE_CHECKING:
    from ponder.backends.embedded import EmbeddedBackend

# Names that mean "the configured default model".
DEFAULT_ALIASES = frozenset({"default", "ponder"})


@dataclass(frozen=True, slots=True)
class ModelEntry:
    id: str
    kind: str  # "bundled", "local" or "remote"
    installed: bool | None = None


class BackendRegistry:
    def __init__(
        self,
        config: PonderConfig,
        *,
        store: ModelStore | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.config = config
        self.store = store or ModelStore(config.cache_dir)
        self.policy: Policy = policy or DenyList(config.deny_models)
        self._backends: dict[str, Backend] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._external: set[str] = set()
        self._remote_index = self._index_providers(config.providers)

    @staticmethod
    def _index_providers(
        providers: tuple[ProviderConfig, ...],
    ) -> dict[str, tuple[ProviderConfig, str]]:
        index: dict[str, tuple[ProviderConfig, str]] = {}
        bare: dict[str, list[ProviderConfig]] = {}
        for provider in providers:
            for model in provider.models:
                index[f"{provider.name}/{model}"] = (provider, model)
                bare.setdefault(model, []).append(provider)
        for model, owners in bare.items():
            if len(owners) == 1 and model not in index:
                index[model] = (owners[0], model)
        return index

    def canonical(self, name: str) -> str:
        return self.config.default_model if name in DEFAULT_ALIASES else name

    def kind_of(self, name: str) -> str:
        name = self.canonical(name)
        if name in self._external:
            return "registered"
        if name in self.store.specs:
            return "bundled"
        if name in self._remote_index:
            return "remote"
        provider = self._provider_prefix(name)
        if provider is not None:
            return "remote"
        if name.endswith(".gguf"):
            return "local"
        raise ModelNotFoundError(
            f"the model {name!r} does not exist or is not configured", param="model"
        )

    def _provider_prefix(self, name: str) -> tuple[ProviderConfig, str] | None:
        # "provider/any-model" reaches a provider's model even when it is not listed.
        head, sep, tail = name.partition("/")
        if sep:
            for provider in self.config.providers:
                if provider.name == head and tail:
                    return provider, tail
        return None

    def remote_config(self, name: str) -> RemoteConfig | None:
        """The endpoint settings behind a remote model name, or None for a local model."""
        name = self.canonical(name)
        found = self._remote_index.get(name) or self._provider_prefix(name)
        return _remote_config(*found) if found else None

    def entries(self) -> list[ModelEntry]:
        out = [
            ModelEntry(spec.name, "bundled", self.store.packages_installed(spec))
            for spec in self.store.specs.values()
        ]
        out.extend(ModelEntry(key, "remote") for key in self._remote_index)
        out.extend(ModelEntry(name, "registered", True) for name in sorted(self._external))
        return out

    async def get(
        self,
        name: str,
        progress: Callable[[int, int], Callable[[int], None]] | None = None,
        *,
        purpose: Purpose = "request",
    ) -> Backend:
        """The backend for ``name``, built once; the policy is checked on every lookup."""
        name = self.canonical(name)
        kind = self.kind_of(name)
        self.policy.check(name, purpose=purpose)
        if name in self._backends:
            return self._backends[name]
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            if name in self._backends:
                return self._backends[name]
            backend: Backend
            if kind == "remote":
                provider, model = self._remote_index.get(name) or self._provider_prefix(name)  # type: ignore[misc]
                backend = RemoteBackend(_remote_config(provider, model), name=name)
            else:
                embedded = embedded_backend_class()
                path = await asyncio.to_thread(self._weights_path, name, kind, progress)
                backend = await asyncio.to_thread(
                    embedded.from_path, path, self.config.engine, name
                )
            self._backends[name] = backend
            return backend

    def _weights_path(
        self, name: str, kind: str, progress: Callable[[int, int], Callable[[int], None]] | None
    ) -> Path:
        if kind == "bundled":
            return self.store.ensure(name, progress)
        path = Path(name).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(f"no GGUF file at {path}", param="model")
        return path

    def register(self, name: str, backend: Backend) -> None:
        """Serve an already-built backend under ``name`` (the registry will not close it)."""
        self._backends[name] = backend
        self._external.add(name)

    def loaded(self) -> list[str]:
        return list(self._backends)

    def backends(self) -> dict[str, Backend]:
        """The backends built so far, by model name."""
        return dict(self._backends)

    async def aclose(self) -> None:
        owned = [b for name, b in self._backends.items() if name not in self._external]
        self._backends = {}
        for backend in owned:
            await backend.aclose()

    def check_n(self, n: int) -> None:
        if n < 1 or n > self.config.max_n:
            raise InvalidRequestError(f"n must be between 1 and {self.config.max_n}", param="n")


def embedded_backend_class() -> type[EmbeddedBackend]:
    """The embedded engine, imported on first use: a gateway in front of remote endpoints
    runs without llama.cpp installed."""
    try:
        from ponder.backends.embedded import EmbeddedBackend
    except ImportError as exc:
        raise ModelError(
            f"embedded models need llama.cpp, which is not installed ({exc.name or exc}); "
            'install it with: pip install "ponder[local]"'
        ) from exc
    return EmbeddedBackend


def _remote_config(provider: ProviderConfig, model: str) -> RemoteConfig:
    return RemoteConfig(model=model, **provider.endpoint_fields())
