"""Configuration files and model-name routing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.backends.registry import BackendRegistry
from ponder.backends.remote import RemoteBackend
from ponder.config import PonderConfig, config_from_mapping, load_config
from ponder.errors import ConfigError, ModelNotFoundError


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
    assert registry.kind_of("lab/unlisted-model") == "remote"
    assert registry.kind_of("default") == "bundled"
    assert registry.kind_of("/tmp/some.gguf") == "local"
    with pytest.raises(ModelNotFoundError):
        registry.kind_of("other/model")
    backend = await registry.get("lab/org/model:7b@v1")
    assert isinstance(backend, RemoteBackend)
    assert backend.config.model == "org/model:7b@v1"
    await registry.aclose()


def test_config_is_a_value() -> None:
    base = PonderConfig()
    changed = base.replace(max_n=2)
    assert base.max_n == 64 and changed.max_n == 2
