"""The catalog: which names resolve to which deployments, built from the configuration."""

from __future__ import annotations

import pytest

from ponder.config import (
    DeploymentConfig,
    PonderConfig,
    Price,
    ProviderConfig,
    RoutingSettings,
)
from ponder.errors import ConfigError, ModelNotFoundError
from ponder.routing.catalog import Catalog
from ponder.routing.names import normalise


def provider(name: str, *models: str, **meta: object) -> ProviderConfig:
    return ProviderConfig(
        name=name, base_url=f"http://127.0.0.1:9/{name}/v1", models=models, **meta
    )  # type: ignore[arg-type]


def test_a_bare_name_is_served_by_every_provider_that_lists_it() -> None:
    catalog = Catalog(
        PonderConfig(providers=(provider("a", "m"), provider("b", "m", vendor="acme"))), ()
    )
    group = catalog.resolve("m")
    assert [d.id for d in group.deployments] == ["a/m", "b/m"]
    assert [d.vendor for d in group.deployments] == ["a", "acme"]
    assert [d.id for d in catalog.resolve("b/m").deployments] == ["b/m"]
    # An endpoint's own retries are off: routing retries.
    assert all(d.endpoint and d.endpoint.max_retries == 0 for d in group.deployments)


def test_deployments_aliases_and_prices() -> None:
    config = PonderConfig(
        providers=(provider("openai"),),
        deployments=(
            DeploymentConfig(
                model_name="gpt-4o",
                provider="openai",
                model="gpt-4o-2024",
                region="us",
                price=Price(2.5, 10.0),
                weight=2.0,
            ),
            DeploymentConfig(model_name="gpt-4o", model="qwen2.5-coder-0.5b-instruct"),
        ),
        routing=RoutingSettings(aliases={"smart": "gpt-4o", "clever": "smart"}),
        prices={"other": Price(1.0, 1.0)},
    )
    catalog = Catalog(config, ("qwen2.5-coder-0.5b-instruct",))
    remote, local = catalog.resolve("Clever#tag").deployments
    assert (remote.id, remote.model, remote.region, remote.weight) == (
        "openai/gpt-4o-2024",
        "gpt-4o-2024",
        "us",
        2.0,
    )
    assert remote.price == Price(2.5, 10.0) and not remote.local
    assert local.kind == "bundled" and local.local and local.price == Price()
    assert catalog.deployment("openai/gpt-4o-2024") == remote


@pytest.mark.parametrize("name", ["gpt-4o", "GPT-4O", "gpt\u20104o", "ｇｐｔ-4o", "gpt-\u200b4o"])
def test_names_are_compared_normalised(name: str) -> None:
    catalog = Catalog(PonderConfig(providers=(provider("openai", "gpt-4o"),)), ())
    assert catalog.resolve(name).name == "gpt-4o"
    assert normalise(name) == "gpt-4o"


def test_only_configured_names_resolve() -> None:
    catalog = Catalog(PonderConfig(providers=(provider("lab", "m"),)), ())
    for name in ("lab/other", "other", "lab/", "/nonexistent.gguf"):
        with pytest.raises(ModelNotFoundError):
            catalog.resolve(name)


def test_names_that_clients_could_not_tell_apart_are_refused() -> None:
    with pytest.raises(ConfigError, match="differ only"):
        Catalog(PonderConfig(providers=(provider("a", "Model"), provider("b", "model"))), ())


def test_an_unknown_provider_is_a_config_error() -> None:
    entry = DeploymentConfig(model_name="m", provider="nowhere", model="m")
    with pytest.raises(ConfigError, match="unknown provider"):
        Catalog(PonderConfig(deployments=(entry,)), ())


def test_normalising_ascii_takes_the_short_way_to_the_same_result() -> None:
    assert normalise("OpenAI/GPT-4o") == "openai/gpt-4o"
    assert normalise("gpt 4o\t") == "gpt4o"  # whitespace goes, as in any other name
    assert normalise("ＯｐｅｎＡＩ／gpt—4o") == "openai/gpt-4o"
