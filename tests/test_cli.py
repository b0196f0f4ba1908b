"""The command line, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from ponder.cli import main


def test_models_lists_and_verifies() -> None:
    result = CliRunner().invoke(main, ["models", "--verify"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "qwen2.5-coder-1.5b-instruct" in result.output
    assert "(default)" in result.output
    assert result.output.count("verified") == 3


def ask_tiny(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``ponder ask`` in a subprocess, as a user would, on the tiny model."""
    config = tmp_path / "ponder.toml"
    config.write_text("[engine]\nn_ctx = 2048\nn_seq_max = 4\n")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ponder.cli",
            "--config",
            str(config),
            "ask",
            "What is 2+3?",
            "--model",
            "smollm2-135m-instruct",
            "--max-tokens",
            "40",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ask_prints_answer_and_tokens(tmp_path: Path) -> None:
    """The default strategy is auto; at minimal effort it answers in one pass."""
    proc = ask_tiny(tmp_path, "--hide-reasoning", "--effort", "minimal")
    assert proc.returncode == 0, proc.stderr
    # Piped with the reasoning hidden, stdout is the answer alone, for $(ponder ask ...).
    assert proc.stdout.strip() and "Reasoning:" not in proc.stdout
    assert "tokens:" in proc.stderr and "completion" in proc.stderr
    assert "in 1 call ·" in proc.stderr and "auto on smollm2" in proc.stderr


def test_ask_shows_reasoning_by_default(tmp_path: Path) -> None:
    proc = ask_tiny(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Reasoning:" in proc.stdout


def test_ask_with_a_strategy_writes_its_trace(tmp_path: Path) -> None:
    trace = tmp_path / "trace.json"
    proc = ask_tiny(tmp_path, "--strategy", "self-consistency", "-p", "n=3", "--trace", str(trace))
    assert proc.returncode == 0, proc.stderr
    assert "in 1 call ·" in proc.stderr
    data = json.loads(trace.read_text())
    assert data["strategy"] == "self-consistency"
    assert data["calls"][0]["n"] == 3


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("nonsense_key = 1\n")
    result = CliRunner().invoke(main, ["--config", str(config), "models"])
    assert result.exit_code != 0
    assert "unknown keys" in result.output


def test_deployments_lists_each_with_the_policy_verdict(tmp_path: Path) -> None:
    config = tmp_path / "ponder.toml"
    config.write_text(
        '[providers.openai]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["gpt-4o"]\n'
        'region = "us"\n\n[[policy.rules]]\neffect = "deny"\nvendor = "openai"\n'
    )
    result = CliRunner().invoke(main, ["--config", str(config), "deployments"])
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    assert "denied by rule vendor='openai'" in rows["openai/gpt-4o"]
    assert "allowed" in rows["qwen2.5-coder-1.5b-instruct"]
