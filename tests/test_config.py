"""Configuration files and model-name routing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.backends.remote import RemoteBackend
from ponder.config import PonderConfig, config_from_mapping, load_config
from ponder.errors import ConfigError, ModelNotFoundError
from ponder.routing.registry import BackendRegistry


def test_defaults() -> None:
    config = load_config(None)
    assert config.default_model == "qwen2.5-coder-1.5b-instruct"
    assert config.engine.kv_unified


def test_file_with_engine_and_providers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KEY", "secret")
    path = tmp_path / "p.toml"
    path.write_text(
        "max_n = 8\n[engine]\nn_ctx = 8192\n"
        '[providers.lab]\nbase_url = "http://127.0.0.1:9/v1"\napi_key_env = "TEST_KEY"\n'
        'models = ["org/model:7b@v1"]\nprefill = "vllm"\n'
    )
    config = load_config(path)
    assert config.max_n == 8
    assert config.engine.n_ctx == 8192
    (provider,) = config.providers
    assert provider.api_key == "secret"
    assert provider.models == ("org/model:7b@v1",)


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ConfigError, match="engine"):
        config_from_mapping({"engine": {"n_cxt": 1}})


async def test_routing_names_with_slashes_and_colons() -> None:
    config = config_from_mapping(
        {"providers": {"lab": {"base_url": "http://127.0.0.1:9/v1", "models": ["org/model:7b@v1"]}}}
    )
    registry = BackendRegistry(config)
    assert registry.kind_of("org/model:7b@v1") == "remote"
    assert registry.kind_of("lab/org/model:7b@v1") == "remote"
    assert registry.kind_of("default") == "bundled"
    # Only configured names resolve: an unlisted model of a known provider, another
    # provider's, or a GGUF path that is not a file, are all unknown.
    for unknown in ("lab/unlisted-model", "other/model", "/tmp/no-such-file.gguf"):
        with pytest.raises(ModelNotFoundError):
            registry.kind_of(unknown)
    backend = await registry.get("lab/org/model:7b@v1")
    (deployment,) = backend.group.deployments
    leaf = await registry.backend_for(deployment)
    assert isinstance(leaf, RemoteBackend)
    assert leaf.config.model == "org/model:7b@v1"
    assert leaf.config.max_retries == 0  # routing retries, not the SDK
    await registry.aclose()


def test_config_is_a_value() -> None:
    base = PonderConfig()
    changed = base.replace(max_n=2)
    assert base.max_n == 64 and changed.max_n == 2


def test_the_operations_guide_example_config_loads(tmp_path: Path) -> None:
    """The complete example in docs/operations.md is a configuration that loads, and means
    what the guide says it means."""
    guide = (Path(__file__).parents[1] / "docs" / "operations.md").read_text()
    example = guide.split("### A complete example", 1)[1].split("```toml", 1)[1].split("```")[0]
    path = tmp_path / "ponder.toml"
    path.write_text(example)
    registry = BackendRegistry(load_config(path))
    group = registry.resolve("GPT-4o")
    assert {d.id for d in group.deployments} == {
        "openai/gpt-4o-2024-08-06",
        "azure-eu/gpt-4o",
    }
    assert registry.resolve("fast").name == "qwen-local"
    assert registry.resolve("qwen-local").deployments[0].local
    assert registry.scope.layers[0].policy.redact


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"providers": {"x": {"models": ["m"]}}}, r"\[providers.x\] needs base_url: .*base_url = "),
        ({"providers": {"x": "http://h"}}, r"\[providers.x\] must be a table"),
        ({"engine": "big"}, "engine must be a table"),
        ({"deployments": {"a": 1}}, "deployments must be a list of tables"),
        ({"providers": {"x": {"base_url": "u", "timeout": "slow"}}}, r"\[providers.x\] timeout"),
        ({"sandbox": {"seccomp": "maybe"}}, r"\[sandbox\] seccomp"),
        ({"max_n": 0}, "max_n must be at least 1"),
    ],
)
def test_every_malformed_table_is_a_config_error(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_mapping(data)


def test_a_secret_is_named_but_never_quoted() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"providers": {"x": {"base_url": "u", "api_key": 12345678}}})
    assert "api_key" in str(info.value) and "12345678" not in str(info.value)


def test_an_unset_api_key_variable_is_a_warning_naming_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("PONDER_TEST_NO_SUCH_KEY", raising=False)
    with caplog.at_level("WARNING", logger="ponder.config"):
        config = config_from_mapping(
            {"providers": {"x": {"base_url": "u", "api_key_env": "PONDER_TEST_NO_SUCH_KEY"}}}
        )
    assert config.providers[0].api_key is None
    assert "PONDER_TEST_NO_SUCH_KEY" in caplog.text
