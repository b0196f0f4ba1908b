"""The Ray path: questions fan out as Ray tasks on a local Ray instance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ponder.bench.session import BenchOptions, run_session
from ponder.config import PonderConfig, ProviderConfig
from ponder.errors import ConfigError

ray = pytest.importorskip("ray")


async def test_bench_on_a_local_ray_instance(
    tmp_path: Path, fake_endpoint: tuple[str, Any]
) -> None:
    url, app = fake_endpoint
    data = tmp_path / "q.jsonl"
    data.write_text(
        "".join(
            json.dumps({"question": f"Question {i}?", "answer": "#### 40"}) + "\n" for i in range(3)
        )
    )
    config = PonderConfig(
        providers=(ProviderConfig(name="lab", base_url=f"{url}/vllm/v1", models=("m",)),),
        trace_db=":memory:",
    )
    options = BenchOptions(
        data=data,
        strategies="cot,self-consistency;n=3",
        model="lab/m",
        out_dir=tmp_path / "run",
        ray="local",
        systems=({"name": "plain", "base_url": f"{url}/vllm/v1", "model": "m"},),
        concurrency=4,
    )
    before = len(app.state.requests)
    try:
        run_dir, table = await run_session(options, config)
    finally:
        ray.shutdown()
    records = run_dir.records()
    assert len(records) == 3 * 3
    assert {r.system for r in records} == {"cot", "self-consistency;n=3", "plain"}
    # Every answer came back from a worker through the endpoint: 1 + 1 + 1 calls per question.
    assert len(app.state.requests) - before == 9
    assert all(r.correct for r in records if r.system != "self-consistency;n=3")
    assert "| cot | 3 | 100.0%" in table


async def test_ray_needs_a_remote_model(tmp_path: Path) -> None:
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n")
    options = BenchOptions(
        data=data,
        strategies="cot",
        model="smollm2-135m-instruct",
        ray="local",
        out_dir=tmp_path / "r",
    )
    with pytest.raises(ConfigError, match="remote model"):
        await run_session(options, PonderConfig(trace_db=":memory:"))
