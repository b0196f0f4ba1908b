"""What a model name means: the deployments that serve it.

A public name maps to one or more :class:`Deployment`\\ s, each a place the model runs with
its metadata (vendor, region, ``local``, price, context window, rpm/tpm). The catalog is
built once from the configuration:

* each bundled model is a local deployment under its own name;
* each model a ``[providers.NAME]`` lists is a deployment ``NAME/MODEL``, served under that
  name and under the bare ``MODEL`` (by every provider that lists it);
* each ``[[deployments]]`` entry (or LiteLLM ``model_list`` entry) serves its ``model_name``;
* ``[routing] aliases`` name other names.

Only these names resolve (and GGUF files by path, for the local operator): a name such as
``provider/anything`` that no one configured is a 404, never a new backend. Names are
compared normalised (:mod:`ponder.routing.names`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from ponder.backends.remote import RemoteConfig
from ponder.config import DeploymentConfig, PonderConfig, Price, ProviderConfig
from ponder.errors import ConfigError, ModelNotFoundError
from ponder.routing.names import normalise, strip_tag

Kind = Literal["bundled", "gguf", "remote", "registered"]

# Names that mean "the configured default model".
DEFAULT_ALIASES = ("default", "ponder")
# Aliases may name aliases, this deep at most.
MAX_ALIAS_DEPTH = 8
# Resolved names kept (each maps to a configured group; unknown names are not kept).
MAX_RESOLVED = 4096
MAX_RESOLVED_NAME = 256  # characters; a longer name is resolved each time


@dataclass(frozen=True, slots=True)
class Deployment:
    """One place a public model is served."""

    id: str  # unique: "provider/model", or the configured id
    model_name: str  # the public name it serves
    model: str  # the endpoint's id for it; a bundled model's name; a GGUF path
    kind: Kind
    vendor: str
    local: bool  # data sent here stays on the operator's own machines
    endpoint: RemoteConfig | None = None  # a remote one's endpoint
    region: str | None = None
    price: Price | None = None  # None: unknown (an unpriced remote deployment)
    context_window: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Group:
    """A public name and its deployments (at least one)."""

    name: str
    deployments: tuple[Deployment, ...]

    @property
    def kind(self) -> Kind:
        return self.deployments[0].kind


class Catalog:
    def __init__(self, config: PonderConfig, bundled: Iterable[str]) -> None:
        self.default_model = config.default_model
        # [prices] by deployment id or model name: the older way to price a remote model.
        self._prices = config.prices
        # Routing retries and falls back itself: an endpoint client's own retries would
        # multiply every wait and hide a failing deployment from the cooldown.
        self._timeout = config.routing.timeout
        self._groups: dict[str, list[Deployment]] = {}
        self._by_id: dict[str, Deployment] = {}
        # Names already resolved, as sent (a request resolves its model several times).
        self._resolved: dict[str, Group] = {}
        self._names: dict[str, str] = {}  # normalised -> as configured
        for name in bundled:
            self._add(_local(name, "bundled", vendor="ponder"))
        by_name = {p.name: p for p in config.providers}
        for provider in config.providers:
            for model in provider.models:
                self._add(_provider_deployment(provider, model, f"{provider.name}/{model}"))
        for provider in config.providers:
            for model in provider.models:
                deployment = self._groups[normalise(f"{provider.name}/{model}")][0]
                if normalise(model) not in self._groups or self._serves_bare(model):
                    self._add(replace(deployment, model_name=model))
        for index, entry in enumerate(config.deployments):
            self._add(_configured(entry, by_name, index))
        self._aliases = {
            normalise(alias): target
            for alias, target in {
                **{a: config.default_model for a in DEFAULT_ALIASES},
                **config.routing.aliases,
            }.items()
        }
        self._check_ids()

    def _serves_bare(self, model: str) -> bool:
        """Whether the bare name's group so far is made of provider deployments (so another
        provider listing the same model joins it), rather than a bundled model's own."""
        return all(d.kind == "remote" for d in self._groups[normalise(model)])

    def _add(self, deployment: Deployment) -> None:
        if deployment.endpoint is not None:
            endpoint = replace(
                deployment.endpoint,
                max_retries=0,
                timeout=self._timeout or deployment.endpoint.timeout,
            )
            deployment = replace(deployment, endpoint=endpoint)
        if deployment.price is None:
            for name in (deployment.id, deployment.model_name):
                if name in self._prices:
                    deployment = replace(deployment, price=self._prices[name])
                    break
        key = normalise(deployment.model_name)
        known = self._names.setdefault(key, deployment.model_name)
        if known != deployment.model_name:
            raise ConfigError(
                f"the model names {known!r} and {deployment.model_name!r} differ only in "
                "case or punctuation; clients could not tell them apart"
            )
        self._groups.setdefault(key, []).append(deployment)

    def _check_ids(self) -> None:
        seen: dict[str, Deployment] = {}
        for group in self._groups.values():
            for d in group:
                other = seen.setdefault(d.id, d)
                if other is not d and replace(other, model_name=d.model_name) != d:
                    raise ConfigError(
                        f"two different deployments have the id {d.id!r} (a [[deployments]] "
                        "entry for a model its provider also lists: list it in one place, or "
                        "give the entry an id)"
                    )
        self._by_id = seen

    # -- lookups -------------------------------------------------------------------------
    def canonical(self, name: str) -> str:
        """The public name ``name`` means (aliases followed), as configured; unknown names
        come back as sent, for an error message. A ``#tag`` is not part of the name."""
        key = normalise(strip_tag(name)[0])
        for _ in range(MAX_ALIAS_DEPTH):
            target = self._aliases.get(key)
            if target is None:
                break
            key = normalise(target)
        return self._names.get(key, name)

    def resolve(self, name: str, *, paths: bool = True) -> Group:
        """The deployments behind ``name``; a GGUF file by path when ``paths`` is allowed."""
        known = self._resolved.get(name)
        if known is not None:
            return known
        public = self.canonical(name)
        found = self._groups.get(normalise(public))
        if found:
            group = Group(public, tuple(found))
            if len(name) <= MAX_RESOLVED_NAME:  # names are the clients': bounded
                if len(self._resolved) >= MAX_RESOLVED:
                    self._resolved.clear()
                self._resolved[name] = group
            return group
        if paths and public.endswith(".gguf") and Path(public).expanduser().is_file():
            # One file is one deployment, however its path is spelled.
            path = str(Path(public).expanduser().resolve())
            return Group(path, (_local(path, "gguf", vendor="local"),))
        raise ModelNotFoundError(
            f"the model {name!r} does not exist or is not configured", param="model"
        )

    def register(self, name: str, *, vendor: str = "registered", local: bool = True) -> None:
        """A name served by a backend built outside (tests, the library)."""
        self._resolved.clear()
        key = normalise(name)
        self._groups.pop(key, None)
        self._names.pop(key, None)
        self._add(
            Deployment(
                id=name,
                model_name=name,
                model=name,
                kind="registered",
                vendor=vendor,
                local=local,
                price=Price() if local else None,
            )
        )

    def groups(self) -> Mapping[str, tuple[Deployment, ...]]:
        return {self._names[k]: tuple(v) for k, v in self._groups.items()}

    def deployment(self, deployment_id: str) -> Deployment | None:
        return self._by_id.get(deployment_id)

    def deployments(self) -> list[Deployment]:
        """Every configured deployment, once."""
        out: dict[str, Deployment] = {}
        for group in self._groups.values():
            for d in group:
                out.setdefault(d.id, d)
        return list(out.values())


def _local(name: str, kind: Kind, *, vendor: str) -> Deployment:
    return Deployment(
        id=name, model_name=name, model=name, kind=kind, vendor=vendor, local=True, price=Price()
    )


def _provider_deployment(provider: ProviderConfig, model: str, public: str) -> Deployment:
    endpoint = RemoteConfig(model=model, **provider.endpoint_fields())
    return Deployment(
        id=f"{provider.name}/{model}",
        model_name=public,
        model=model,
        kind="remote",
        vendor=provider.vendor or provider.name,
        local=provider.local,
        endpoint=endpoint,
        region=provider.region,
    )


def _configured(
    entry: DeploymentConfig, providers: Mapping[str, ProviderConfig], index: int
) -> Deployment:
    where = f"deployment {entry.id or entry.model_name!r}"
    if entry.provider is not None:
        provider = providers.get(entry.provider)
        if provider is None:
            raise ConfigError(f"{where} names an unknown provider {entry.provider!r}")
        base = _provider_deployment(provider, entry.model, entry.model_name)
    elif entry.endpoint is not None:
        endpoint = RemoteConfig(model=entry.model, **entry.endpoint.endpoint_fields())
        base = Deployment(
            id=f"{entry.model_name}/{index}",
            model_name=entry.model_name,
            model=entry.model,
            kind="remote",
            vendor=entry.vendor or "unknown",
            local=False,
            endpoint=endpoint,
        )
    else:
        kind: Kind = "gguf" if entry.model.endswith(".gguf") else "bundled"
        vendor = "ponder" if kind == "bundled" else "local"
        base = replace(_local(entry.model, kind, vendor=vendor), model_name=entry.model_name)
    local = entry.local if entry.local is not None else base.local
    return replace(
        base,
        id=entry.id or base.id,
        vendor=entry.vendor or base.vendor,
        region=entry.region or base.region,
        local=local,
        price=entry.price or base.price,
        context_window=entry.context_window,
        rpm=entry.rpm,
        tpm=entry.tpm,
        weight=entry.weight,
    )
