"""A LiteLLM proxy config.yaml read as Ponder deployments and routing (ponder.config.litellm)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ponder.config import DeploymentConfig, RoutingSettings, load_config
from ponder.config.litellm import load_model_list, model_list_from_mapping
from ponder.config.tables import EndpointConfig, Price
from ponder.errors import ConfigError

LITELLM_YAML = """\
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_KEY_A
      rpm: 500
      timeout: 30
    model_info:
      id: openai-a
      input_cost_per_token: 0.0000025
      output_cost_per_token: 0.00001
      max_input_tokens: 128000
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_KEY_B
      weight: 3
    tpm: 90000
  - model_name: gpt-4o-eu
    litellm_params:
      model: azure/my-deploy
      api_base: https://example-eu.openai.azure.com/
      api_key: os.environ/AZURE_KEY
      api_version: "2024-02-01"
      region_name: eu
      temperature: 0.2
  - model_name: qwen
    litellm_params:
      model: hosted_vllm/Qwen/Qwen2.5-7B-Instruct
      api_base: http://10.0.0.5:8000/v1
    model_info:
      local: true
      max_tokens: 32768
  - model_name: text-embedding-3-small
    litellm_params:
      model: openai/text-embedding-3-small
      api_key: os.environ/OPENAI_KEY_A
    model_info:
      mode: embedding

router_settings:
  routing_strategy: least-busy
  num_retries: 4
  allowed_fails: 2
  cooldown_time: 15
  timeout: 45
  redis_host: localhost
  fallbacks: [{"gpt-4o": ["gpt-4o-eu", "qwen"]}]
  context_window_fallbacks: [{"gpt-4o-eu": ["gpt-4o"]}]
  model_group_alias:
    gpt4: gpt-4o
    legacy: {"model": "qwen", "hidden": true}

litellm_settings:
  drop_params: true
  content_policy_fallbacks: [{"gpt-4o": ["qwen"]}]
  fallbacks: [{"qwen": ["gpt-4o"]}]
  num_retries: 9

general_settings:
  master_key: sk-not-read
"""


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_KEY_A", "sk-a")
    monkeypatch.setenv("OPENAI_KEY_B", "sk-b")
    monkeypatch.setenv("AZURE_KEY", "az-key")


def test_model_list_becomes_deployments(tmp_path: Path, keys: None) -> None:
    (tmp_path / "litellm.yaml").write_text(LITELLM_YAML)
    listed = load_model_list(Path("litellm.yaml"), tmp_path)
    first, second, azure, vllm = listed.deployments  # the embedding model is skipped
    assert first == DeploymentConfig(
        model_name="gpt-4o",
        model="gpt-4o",
        endpoint=EndpointConfig(
            base_url="https://api.openai.com/v1", api_key="sk-a", timeout=30.0, max_retries=0
        ),
        id="openai-a",
        vendor="openai",
        local=False,
        price=Price(2.5, 10.0),
        context_window=128000,
        rpm=500,
    )
    assert second.endpoint is not None
    assert second.endpoint.api_key == "sk-b"
    assert second.endpoint.timeout == EndpointConfig(base_url="x").timeout
    assert (second.id, second.weight, second.tpm, second.rpm) == (None, 3.0, 90000, None)
    assert second.price is None

    assert azure.model == "my-deploy"
    assert azure.vendor == "azure"
    assert azure.region == "eu"
    assert azure.endpoint is not None
    assert azure.endpoint.base_url == "https://example-eu.openai.azure.com/openai/v1"
    assert azure.endpoint.api_key == "az-key"

    assert vllm.model == "Qwen/Qwen2.5-7B-Instruct"
    assert vllm.vendor == "vllm"
    assert vllm.local is True
    assert vllm.context_window == 32768
    assert vllm.endpoint is not None
    assert vllm.endpoint.base_url == "http://10.0.0.5:8000/v1"
    assert vllm.endpoint.api_key is None
    assert vllm.endpoint.prefill == "vllm"


def test_router_settings_become_routing(tmp_path: Path, keys: None) -> None:
    (tmp_path / "litellm.yaml").write_text(LITELLM_YAML)
    routing = load_model_list(tmp_path / "litellm.yaml", None).merged_into(RoutingSettings())
    assert routing.strategy == "least-busy"
    assert routing.num_retries == 4  # router_settings over litellm_settings
    assert (routing.allowed_fails, routing.cooldown_time, routing.timeout) == (2, 15.0, 45.0)
    assert routing.fallbacks == {"gpt-4o": ("gpt-4o-eu", "qwen"), "qwen": ("gpt-4o",)}
    assert routing.context_window_fallbacks == {"gpt-4o-eu": ("gpt-4o",)}
    assert routing.content_policy_fallbacks == {"gpt-4o": ("qwen",)}
    assert routing.aliases == {"gpt4": "gpt-4o", "legacy": "qwen"}


def test_loaded_through_the_toml(tmp_path: Path, keys: None) -> None:
    (tmp_path / "litellm.yaml").write_text(LITELLM_YAML)
    toml = tmp_path / "ponder.toml"
    toml.write_text(
        'model_list = "litellm.yaml"\n'
        "[routing]\n"
        "num_retries = 1\n"
        'fallbacks = {"gpt-4o" = ["qwen"]}\n'
        'aliases = {"gpt4" = "qwen"}\n'
    )
    config = load_config(toml)
    assert [d.model_name for d in config.deployments] == ["gpt-4o", "gpt-4o", "gpt-4o-eu", "qwen"]
    routing = config.routing
    assert routing.num_retries == 1  # the TOML set it
    assert routing.strategy == "least-busy"  # the TOML left it at its default
    assert routing.fallbacks == {"gpt-4o": ("qwen",), "qwen": ("gpt-4o",)}
    assert routing.aliases == {"gpt4": "qwen", "legacy": "qwen"}


def test_missing_key_variable_is_no_key(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("PONDER_TEST_UNSET_KEY", raising=False)
    data = {
        "model_list": [
            {
                "model_name": "m",
                "litellm_params": {
                    "model": "gpt-4o",
                    "api_key": "os.environ/PONDER_TEST_UNSET_KEY",
                },
            }
        ]
    }
    with caplog.at_level(logging.WARNING, logger="ponder.config"):
        (deployment,) = model_list_from_mapping(data).deployments
    assert deployment.endpoint is not None
    assert deployment.endpoint.api_key is None
    assert deployment.vendor == "openai"  # a bare name is OpenAI's
    assert "PONDER_TEST_UNSET_KEY" in caplog.text


def test_secrets_never_reach_logs_or_errors(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv("SECRET_KEY_VAR", "sk-very-secret")
    data = {
        "model_list": [
            {
                "model_name": "m",
                "litellm_params": {
                    "model": "openai/m",
                    "api_key": "os.environ/SECRET_KEY_VAR",
                    "organization": "sk-literal-secret",
                },
            }
        ]
    }
    with caplog.at_level(logging.DEBUG, logger="ponder.config"):
        model_list_from_mapping(data)
    assert "organization" in caplog.text  # named as unused, its value never shown
    assert "secret" not in caplog.text.replace("SECRET_KEY_VAR", "")
    path = tmp_path / "bad.yaml"
    path.write_text("model_list:\n  - model_name: m\n    api_key: sk-in-a-bad-line: [\n")
    with pytest.raises(ConfigError) as info:
        load_model_list(path)
    assert "sk-in-a-bad-line" not in str(info.value)


def test_environment_variables_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_BASE", "http://from-process:1/v1")
    data = {
        "environment_variables": {"VLLM_BASE": "http://from-file:2/v1"},
        "model_list": [
            {
                "model_name": "m",
                "litellm_params": {"model": "hosted_vllm/m", "api_base": "os.environ/VLLM_BASE"},
            }
        ],
    }
    (deployment,) = model_list_from_mapping(data).deployments
    assert deployment.endpoint is not None
    assert deployment.endpoint.base_url == "http://from-file:2/v1"


def _one(params: dict[str, object], **extra: object) -> dict[str, object]:
    return {"model_list": [{"model_name": "m", "litellm_params": params}], **extra}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        # Not OpenAI-compatible HTTP without an address of its own.
        (_one({"model": "deepseek/deepseek-chat"}), r"model_list\[0\] \('m'\).*api_base"),
        (_one({"model": "azure/my-deploy"}), "api_base"),
        # Reached through its own API by LiteLLM.
        (_one({"model": "anthropic/claude-3", "api_base": "https://x/v1"}), "OpenAI-compatible"),
        (
            _one({"model": "gpt-4o"}, router_settings={"routing_strategy": "usage-based-routing"}),
            "simple-shuffle, least-busy, latency-based-routing, cost-based-routing",
        ),
        (_one({"model": "openai/*"}), "wildcard"),
        (_one({"model": "gpt-4o", "api_base": "os.environ/PONDER_TEST_UNSET_BASE"}), "not set"),
        (_one({"model": "gpt-4o", "rpm": "lots"}), "rpm must be a positive integer"),
        (_one({"model": "gpt-4o", "weight": 0}), "weight must be a positive number"),
        (_one({"model": "gpt-4o", "api_base": "ftp://x"}), "http"),
        (_one({"model": "gpt-4o"}, router_settings={"fallbacks": [{"*": ["m"]}]}), r"'\*'"),
        (_one({"model": "gpt-4o"}, router_settings={"fallbacks": ["m"]}), "must be a list like"),
        (_one({"model": "gpt-4o"}, router_settings={"fallbacks": [{"m": [1]}]}), "list model"),
        (_one({"model": "gpt-4o"}, router_settings="fast"), "router_settings must be a mapping"),
        (_one({"model": "gpt-4o"}, router_settings={"num_retries": -1}), "non-negative"),
        ({"model_list": [{"model_name": "m"}]}, "litellm_params must be a mapping"),
        ({"model_list": [{"litellm_params": {"model": "x"}}]}, "model_name"),
        ({"model_list": "gpt-4o"}, "model_list must be a list"),
        (["model_list"], "must be a mapping"),
        (None, "must be a mapping"),
    ],
)
def test_refused(data: object, match: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PONDER_TEST_UNSET_BASE", raising=False)
    with pytest.raises(ConfigError, match=match):
        model_list_from_mapping(data, source="litellm.yaml")


def test_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "litellm.yaml"
    path.write_text("model_list:\n  - model_name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"litellm\.yaml: not valid YAML at line \d+"):
        load_model_list(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_model_list(tmp_path / "missing.yaml")
    path.write_text(
        "model_list:\n  - model_name: m\n    litellm_params: {model: !!python/object:os.system x}\n"
    )
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_model_list(path)  # safe_load only: no Python objects


def test_ollama_and_custom_vendor() -> None:
    data = {
        "model_list": [
            {
                "model_name": "llama",
                "litellm_params": {"model": "ollama_chat/llama3.1"},
                "model_info": {"vendor": "meta", "local": True},
            },
            {
                "model_name": "ds",
                "litellm_params": {
                    "model": "deepseek/deepseek-chat",
                    "api_base": "https://api.deepseek.com/v1",
                    "input_cost_per_token": 2.7e-7,
                },
            },
        ]
    }
    llama, ds = model_list_from_mapping(data).deployments
    assert llama.endpoint is not None
    assert llama.endpoint.base_url == "http://localhost:11434/v1"
    assert (llama.model, llama.vendor, llama.local) == ("llama3.1", "meta", True)
    assert (ds.model, ds.vendor, ds.price) == ("deepseek-chat", "deepseek", Price(0.27, 0.0))


def test_retry_after_sets_the_backoff() -> None:
    listed = model_list_from_mapping(_one({"model": "gpt-4o"}, router_settings={"retry_after": 5}))
    routing = listed.merged_into(RoutingSettings())
    assert (routing.backoff, routing.backoff_max) == (5.0, 5.0)
    untouched = model_list_from_mapping(_one({"model": "gpt-4o"})).merged_into(RoutingSettings())
    assert untouched == RoutingSettings()
