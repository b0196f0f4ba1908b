"""Model names to Backends: the catalog's deployments, routed, under a policy scope.

:meth:`BackendRegistry.get` turns a name into a :class:`RoutedBackend` for one request's
scope; the leaf backends behind it (one per deployment: an embedded model, an endpoint
client) are built on first use, kept, and closed together with the registry. There is one
leaf per configured deployment, so the number of backends is bounded by the configuration,
whatever names clients send.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.backends.base import Backend, Capabilities
from ponder.backends.remote import RemoteBackend, RemoteConfig
from ponder.config import PolicyRule, PolicySettings, PonderConfig, Price
from ponder.engine.weights import ModelStore
from ponder.errors import InvalidRequestError, ModelError, ModelNotFoundError
from ponder.routing.attempts import lookup
from ponder.routing.backend import RoutedBackend
from ponder.routing.catalog import Catalog, Deployment, Group
from ponder.routing.health import Health
from ponder.routing.policy import Scope
from ponder.types import Purpose

if TYPE_CHECKING:
    from ponder.backends.embedded import EmbeddedBackend
    from ponder.privacy.redact import Redactor

Progress = Callable[[int, int], Callable[[int], None]]


@dataclasses.dataclass(frozen=True, slots=True)
class ModelEntry:
    id: str
    kind: str  # "bundled", "gguf", "remote" or "registered"
    installed: bool | None = None


class BackendRegistry:
    def __init__(self, config: PonderConfig, *, store: ModelStore | None = None) -> None:
        self.config = config
        self.settings = config.routing
        self.store = store or ModelStore(config.cache_dir)
        self.catalog = Catalog(config, self.store.specs)
        self.health = Health(config.routing)
        self.rng = random.Random()
        # The operator's policy: [policy], with deny_models as deny rules on the model.
        self.scope = Scope().with_layer("global", global_policy(config))
        self._backends: dict[str, Backend] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._external: set[str] = set()
        self._redactor_instance: Redactor | None = None

    # -- names -----------------------------------------------------------------------------
    def canonical(self, name: str) -> str:
        return self.catalog.canonical(name)

    def resolve(self, name: str, *, paths: bool = True) -> Group:
        return self.catalog.resolve(name, paths=paths)

    def kind_of(self, name: str) -> str:
        return self.resolve(name).kind

    def remote_config(self, name: str) -> RemoteConfig | None:
        """The endpoint of a remote name's first deployment (the bench's recordings)."""
        return self.resolve(name).deployments[0].endpoint

    def entries(self) -> list[ModelEntry]:
        out = []
        for name, deployments in self.catalog.groups().items():
            kind = deployments[0].kind
            installed = None
            if kind == "bundled":
                installed = self.store.packages_installed(self.store.spec(deployments[0].model))
            elif kind == "registered":
                installed = True
            out.append(ModelEntry(name, kind, installed))
        return out

    # -- backends --------------------------------------------------------------------------
    async def get(
        self,
        name: str,
        progress: Progress | None = None,
        *,
        purpose: Purpose = "request",
        scope: Scope | None = None,
        paths: bool = True,
    ) -> RoutedBackend:
        """``name`` routed under ``scope`` (the operator's policy by default). Fails with
        PolicyError when the scope allows none of its deployments (nor a fallback's), and
        builds the allowed ones' backends, so capabilities are known and models loaded."""
        scope = scope or self.scope
        group = self.resolve(name, paths=paths)
        allowed = [d for d in group.deployments if scope.denial(d, purpose) is None]
        if not allowed:  # PolicyError, unless a fallback is allowed
            await RoutedBackend(self, group, scope, purpose, Capabilities()).attempts().next()
        built = [self._backends.get(d.id) or await self._leaf(d, progress) for d in allowed]
        if len(built) == 1:
            capabilities = built[0].capabilities
        else:
            capabilities = meet([b.capabilities for b in built]) if built else Capabilities()
        return RoutedBackend(self, group, scope, purpose, capabilities)

    async def backend_for(
        self, deployment: Deployment, scope: Scope | None = None, progress: Progress | None = None
    ) -> Backend:
        """The leaf backend of ``deployment`` (built once), behind PII redaction when the
        scope asks for it and the deployment is not local."""
        return self._protected(deployment, await self._leaf(deployment, progress), scope)

    def built(self, deployment: Deployment, scope: Scope | None = None) -> Backend | None:
        """``deployment``'s backend (as :meth:`backend_for` gives it) if already built."""
        leaf = self._backends.get(deployment.id)
        return self._protected(deployment, leaf, scope) if leaf is not None else None

    def _protected(self, deployment: Deployment, leaf: Backend, scope: Scope | None) -> Backend:
        if scope is not None and scope.redact and not deployment.local:
            from ponder.privacy.backend import RedactingBackend

            return RedactingBackend(leaf, self._redactor())
        return leaf

    def _redactor(self) -> Redactor:
        # Imported and built on first use: its detectors load phone metadata and compile
        # many patterns (about 90 ms), which a gateway that never redacts need not pay.
        if self._redactor_instance is None:
            from ponder.privacy.redact import Redactor

            self._redactor_instance = Redactor()
        return self._redactor_instance

    async def _leaf(self, deployment: Deployment, progress: Progress | None) -> Backend:
        found = self._backends.get(deployment.id)
        if found is None:
            lock = self._locks.setdefault(deployment.id, asyncio.Lock())
            async with lock:
                found = self._backends.get(deployment.id)
                if found is None:
                    found = await self._build(deployment, progress)
                    self._backends[deployment.id] = found
        return found

    async def _build(self, deployment: Deployment, progress: Progress | None) -> Backend:
        if deployment.kind == "remote":
            assert deployment.endpoint is not None
            return RemoteBackend(deployment.endpoint, name=deployment.id)
        if deployment.kind == "registered":
            raise ModelNotFoundError(f"the model {deployment.id!r} is no longer registered")
        embedded = embedded_backend_class()
        path = await asyncio.to_thread(self._weights_path, deployment, progress)
        return await asyncio.to_thread(embedded.from_path, path, self.config.engine, deployment.id)

    def _weights_path(self, deployment: Deployment, progress: Progress | None) -> Path:
        if deployment.kind == "bundled":
            return self.store.ensure(deployment.model, progress)
        path = Path(deployment.model).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(f"no GGUF file at {path}", param="model")
        return path

    def reachable(self, routed: RoutedBackend) -> list[Deployment]:
        """Every deployment a routed model may reach under its scope: its own and its
        fallbacks' (of every kind), as a budget must price them."""
        settings = self.settings
        names = [routed.group.name]
        names += routed.scope.fallbacks(routed.group.name)
        for table in (
            settings.fallbacks,
            settings.context_window_fallbacks,
            settings.content_policy_fallbacks,
        ):
            names += lookup(table, routed.group.name)
        out: dict[str, Deployment] = {}
        for name in names:
            try:
                group = self.resolve(name, paths=name == routed.group.name)
            except ModelNotFoundError:
                continue
            for d in group.deployments:
                if routed.scope.denial(d, routed.purpose) is None:
                    out.setdefault(d.id, d)
        return list(out.values())

    def model_price(self, name: str) -> tuple[float, float] | None:
        """The highest prompt and completion prices among ``name``'s deployments; None if
        the name is unknown or one of them has no price."""
        try:
            group = self.resolve(name, paths=False)
        except ModelNotFoundError:
            return None
        prices = [d.price for d in group.deployments]
        known = [p for p in prices if p is not None]
        if len(known) < len(prices):
            return None
        return max(p.prompt for p in known), max(p.completion for p in known)

    def price_of(self, deployment_id: str) -> Price | None:
        """A deployment's price by its id (as call records name it); None if unknown."""
        found = self.catalog.deployment(deployment_id)
        return found.price if found is not None else self.config.prices.get(deployment_id)

    def register(
        self, name: str, backend: Backend, *, vendor: str = "registered", local: bool = True
    ) -> None:
        """Serve an already-built backend under ``name`` (the registry will not close it)."""
        self.catalog.register(name, vendor=vendor, local=local)
        self._backends[name] = backend
        self._external.add(name)

    def loaded(self) -> list[str]:
        return list(self._backends)

    def backends(self) -> dict[str, Backend]:
        """The leaf backends built so far, by deployment id."""
        return dict(self._backends)

    def status(self) -> list[dict[str, Any]]:
        """Every deployment with its routing state (``GET /v1/deployments``)."""
        return [
            {
                "id": d.id,
                "model": d.model_name,
                "kind": d.kind,
                "vendor": d.vendor,
                "region": d.region,
                "local": d.local,
                "loaded": d.id in self._backends,
                **self.health.snapshot(d),
            }
            for d in self.catalog.deployments()
        ]

    async def aclose(self) -> None:
        owned = [b for name, b in self._backends.items() if name not in self._external]
        self._backends = {}
        for backend in owned:
            await backend.aclose()

    def check_n(self, n: int) -> None:
        if n < 1 or n > self.config.max_n:
            raise InvalidRequestError(f"n must be between 1 and {self.config.max_n}", param="n")


def global_policy(config: PonderConfig) -> PolicySettings:
    """``[policy]`` with each ``deny_models`` glob as a deny rule on the model."""
    policy = config.policy
    if not config.deny_models:
        return policy
    denied = tuple(PolicyRule(effect="deny", model=g) for g in config.deny_models)
    return dataclasses.replace(policy, rules=(*denied, *policy.rules))


def meet(capabilities: list[Capabilities]) -> Capabilities:
    """What every one of several backends can do (a group's deployments are interchangeable
    only in what they all support)."""
    return Capabilities(
        logprobs=all(c.logprobs for c in capabilities),
        max_top_logprobs=min(c.max_top_logprobs for c in capabilities),
        prefill=all(c.prefill for c in capabilities),
        json_schema=all(c.json_schema for c in capabilities),
        tools=all(c.tools for c in capabilities),
        cancel_frees_compute=all(c.cancel_frees_compute for c in capabilities),
    )


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
