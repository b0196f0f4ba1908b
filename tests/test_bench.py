"""The benchmark harness: graders, resume, bootstrap intervals, the report command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ponder.backends.scripted import Reply, ScriptedBackend
from ponder.bench.report import bootstrap_ci, markdown_table, summarize
from ponder.bench.runner import Record, RunDir, StrategySystem, parse_systems, run_bench
from ponder.bench.tasks import Example, Gsm8k, HumanEval, JsonlTask, load_task
from ponder.cli import main
from ponder.types import GenerationRequest


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def test_gsm8k_grader(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "work\n#### 1,080"}])
    (example,) = Gsm8k().load(data)
    assert example.answer == "1080"
    assert await Gsm8k().grade(example, "so The answer is: $1,080.00", None)
    assert await Gsm8k().grade(example, "", "1080")
    assert not await Gsm8k().grade(example, "The answer is 108", None)


async def test_jsonl_grader_numbers_and_text(tmp_path: Path) -> None:
    task = JsonlTask()
    number = Example("1", "q", "42")
    word = Example("2", "q", "Paris")
    assert await task.grade(number, "The answer is: 42.0", None)
    assert await task.grade(word, "The answer is: paris.", "paris")
    assert not await task.grade(word, "", "london")


async def test_humaneval_grader_runs_the_unit_tests() -> None:
    example = Example(
        "HumanEval/x",
        "def add(a, b):\n",
        "add",
        meta={"prompt": "def add(a, b):\n", "test": "def check(f):\n    assert f(2, 3) == 5\n"},
    )
    task = HumanEval()
    assert await task.grade(example, "```python\ndef add(a, b):\n    return a + b\n```", None)
    assert not await task.grade(example, "```python\ndef add(a, b):\n    return a - b\n```", None)


def test_user_task_by_import_path() -> None:
    assert isinstance(load_task("ponder.bench.tasks:Gsm8k"), Gsm8k)
    with pytest.raises(Exception, match="unknown task"):
        load_task("nope")


def test_bootstrap_interval_is_reproducible() -> None:
    outcomes = [True] * 7 + [False] * 3
    assert bootstrap_ci(outcomes) == bootstrap_ci(outcomes)
    low, high = bootstrap_ci(outcomes)
    assert low < 0.7 < high
    assert bootstrap_ci([True] * 5) == (1.0, 1.0)


async def test_run_resumes_without_repeating_work(tmp_path: Path) -> None:
    def script(request: GenerationRequest, index: int) -> str:
        question = request.messages[-1].content
        return f"The answer is: {len(question)}"

    backend = ScriptedBackend(script)
    examples = [Example(str(i), "x" * (i + 1), str(i + 1)) for i in range(4)]
    systems = [
        StrategySystem(label, spec, backend)
        for label, spec in parse_systems("cot,self-consistency;n=3")
    ]
    run_dir = RunDir(tmp_path / "run")
    await run_bench(Gsm8k(), examples[:2], systems, run_dir)
    assert len(backend.calls) == 4
    records = await run_bench(Gsm8k(), examples, systems, run_dir)
    assert len(backend.calls) == 8  # only the two new examples, for both systems
    assert len(records) == 8 and all(r.correct for r in records)
    summary = summarize(records)
    assert [s.system for s in summary] == ["cot", "self-consistency;n=3"]
    assert summary[1].completion_tokens == 3 * summary[0].completion_tokens
    assert "| cot | 4 | 100.0%" in markdown_table(summary)


def test_report_command_rerenders_from_records(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.append(Record("cot", "0", True, "1", "1", 10, 20, 0, 1, 1.0))
    run.append(Record("cot", "1", False, "2", "3", 10, 30, 0, 1, 1.0))
    result = CliRunner().invoke(main, ["bench", "report", str(run.path)])
    assert result.exit_code == 0, result.output
    assert "| cot | 2 | 50.0%" in result.output
    assert (run.path / "report.md").exists()


def test_report_command_keeps_the_runs_order(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.write_config(
        {"strategies": "self-consistency;n=4,cot", "systems": [{"name": "proxy"}], "task": "t"}
    )
    for system in ("proxy", "cot", "older", "self-consistency;n=4"):
        run.append(Record(system, "0", True, "1", "1", 10, 20, 0, 1, 1.0))
    result = CliRunner().invoke(main, ["bench", "report", str(run.path)])
    assert result.exit_code == 0, result.output
    rows = [line.split(" | ")[0] for line in result.output.splitlines() if line.startswith("| ")]
    # The asked strategies, then the systems, then what an earlier resume also recorded.
    assert rows[2:] == ["| self-consistency;n=4", "| cot", "| proxy", "| older"]


async def test_record_then_replay_is_identical_without_a_model(tmp_path: Path) -> None:
    from ponder.bench.cassette import Cassette, CassetteBackend

    answers = iter(range(10**6))

    def script(request: GenerationRequest, index: int) -> Reply:
        return Reply(f"work\nThe answer is: {next(answers) % 3}", [-0.2, -1.5, -0.1, -0.3, -2.0])

    examples = [Example(str(i), f"question {i}", "1") for i in range(3)]
    labels = "cot,self-consistency;n=4,adaptive-consistency;window=2;max_n=6,confidence-vote;n=6;warmup=2;window=2"
    cassette = tmp_path / "calls.jsonl"
    recorder = CassetteBackend(
        ScriptedBackend(script, token_delay=0.0), Cassette(cassette), "record"
    )
    live = await run_bench(
        Gsm8k(),
        examples,
        [StrategySystem(lb, sp, recorder) for lb, sp in parse_systems(labels)],
        RunDir(tmp_path / "live"),
        concurrency=1,
    )
    player = CassetteBackend(None, Cassette(cassette), "replay")
    replayed = await run_bench(
        Gsm8k(),
        examples,
        [StrategySystem(lb, sp, player) for lb, sp in parse_systems(labels)],
        RunDir(tmp_path / "replay"),
        concurrency=1,
    )

    def key(records: list[Record]) -> list[tuple[object, ...]]:
        return sorted(
            (
                r.system,
                r.example_id,
                r.answer,
                r.correct,
                r.prompt_tokens,
                r.completion_tokens,
                r.calls,
            )
            for r in records
        )

    assert key(live) == key(replayed)
    assert player.misses == 0 and player.hits == recorder.misses


async def test_replay_without_a_recording_fails_clearly(tmp_path: Path) -> None:
    from ponder.bench.cassette import Cassette, CassetteBackend
    from ponder.errors import BackendError

    player = CassetteBackend(None, Cassette(tmp_path / "empty.jsonl"), "replay")
    with pytest.raises(BackendError, match="no recording"):
        await player.generate(GenerationRequest(messages=()))


async def test_external_endpoint_system_and_under_reporting(
    tmp_path: Path, fake_endpoint: tuple[str, object]
) -> None:
    from ponder.bench.runner import EndpointSystem

    url, _ = fake_endpoint
    examples = [Example("0", "What is six times seven?", "40")]
    system = EndpointSystem("vllm-plain", f"{url}/vllm/v1", "m")
    (record,) = await run_bench(Gsm8k(), examples, [system], RunDir(tmp_path / "ext"))
    assert record.correct and record.completion_tokens == 5 and record.usage_complete


async def test_a_system_that_times_out_fails_its_question_not_the_run(
    tmp_path: Path, fake_endpoint: tuple[str, object]
) -> None:
    from ponder.bench.runner import EndpointSystem

    url, _ = fake_endpoint
    examples = [Example("0", "What is six times seven?", "40")]
    slow = EndpointSystem("slow", f"{url}/slow/v1", "m", timeout=0.5)
    fine = EndpointSystem("fine", f"{url}/vllm/v1", "m")
    records = await run_bench(Gsm8k(), examples, [slow, fine], RunDir(tmp_path / "t"))
    by_system = {r.system: r for r in records}
    assert not by_system["slow"].correct
    assert "did not answer in time" in (by_system["slow"].error or "")
    assert by_system["fine"].correct and by_system["fine"].error is None


async def test_counting_hop_gives_exact_tokens_behind_an_under_reporting_proxy(
    tmp_path: Path,
) -> None:
    """A proxy that hides prompt tokens sits in front of a Ponder server; the bench reads the
    exact per-question spend from the server's ledger by usage tag, with questions in flight
    together."""
    from ponder.bench.runner import EndpointSystem
    from ponder.config import PonderConfig
    from ponder.routing.registry import BackendRegistry
    from ponder.server.app import create_app
    from tests.fake_openai import make_proxy, serve_app

    registry = BackendRegistry(
        PonderConfig(default_model="m", trace_db=":memory:", default_strategy=None)
    )
    registry.register("m", ScriptedBackend.cycle([Reply("so The answer is: 42")]))
    app = create_app(registry.config, registry=registry, close_backends=False)
    with serve_app(app) as hop:
        proxy = make_proxy(hop, samples=2)
        with serve_app(proxy) as url:
            plain = EndpointSystem("proxy", f"{url}/v1", "m")
            counted = EndpointSystem("proxy-counted", f"{url}/v1", "m", count_via=hop)
            examples = [Example(str(i), f"What is {i} + 42 - {i}?", "42") for i in range(3)]
            records = await run_bench(
                Gsm8k(), examples, [plain, counted], RunDir(tmp_path / "hop"), concurrency=6
            )
    by_system = {s: [r for r in records if r.system == s] for s in ("proxy", "proxy-counted")}
    assert all(r.correct for r in records)
    # The proxy's own reply under-reports, and the report is told so.
    assert not any(r.usage_complete for r in by_system["proxy"])
    assert all(r.prompt_tokens == 0 for r in by_system["proxy"])
    # Through the hop: every upstream call, prompt included, per question.
    seen = proxy.state.seen
    per_call_prompt = seen[0]["prompt_tokens"]
    assert per_call_prompt > 0
    for record in by_system["proxy-counted"]:
        assert record.usage_complete and record.calls == 2
        assert record.prompt_tokens == 2 * per_call_prompt
        assert record.completion_tokens == 2 * seen[0]["completion_tokens"]
    # The tagged counts add up to everything the server did for the counted system.
    counted_total = sum(r.total_tokens for r in by_system["proxy-counted"])
    assert counted_total == sum(u["total_tokens"] for u in seen) // 2


def test_report_files_and_plot(tmp_path: Path) -> None:
    from ponder.bench.report import pareto_front, write_report
    from ponder.bench.runner import Record

    records = [
        Record("cheap", "0", True, "1", "1", 10, 10, 0, 1, 1.0),
        Record("cheap", "1", False, "2", "1", 10, 10, 0, 1, 1.0),
        Record("costly", "0", True, "1", "1", 10, 100, 0, 1, 1.0),
        Record("costly", "1", True, "1", "1", 10, 100, 0, 1, 1.0),
        Record("wasteful", "0", False, "1", "1", 10, 500, 0, 1, 1.0, usage_complete=False),
        Record("wasteful", "1", True, "1", "1", 10, 500, 0, 1, 1.0, usage_complete=False),
    ]
    table = write_report(records, tmp_path)
    assert "(under-reported)" in table
    assert [s.system for s in pareto_front(summarize(records))] == ["cheap", "costly"]
    assert "Pareto frontier (accuracy against mean total tokens): cheap, costly" in table
    assert "every system finished" not in table  # all finished the same questions
    partial = [*records, Record("late", "1", True, "1", "1", 10, 20, 0, 1, 1.0)]
    paired = write_report(partial, tmp_path).split("every system finished:")[1]
    assert "| cheap | 1 | 0.0%" in paired and "| costly | 1 | 100.0%" in paired
    assert (tmp_path / "report.md").read_text().strip().endswith(paired.strip())
    png = tmp_path / "accuracy_vs_tokens.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(json.loads((tmp_path / "records.json").read_text())) == 7


def test_bench_command_end_to_end_on_the_tiny_model(tmp_path: Path) -> None:
    """Live with a sample bank and two orderings, then the same run replayed from its cassette."""
    data = write_jsonl(
        tmp_path / "math.jsonl",
        [
            {"question": "What is 2 + 3?", "answer": "#### 5"},
            {"question": "What is 4 + 4?", "answer": "#### 8"},
        ],
    )
    config = tmp_path / "ponder.toml"
    config.write_text('trace_db = ":memory:"\n[engine]\nn_ctx = 4096\nn_seq_max = 8\n')
    common = [
        "--config",
        str(config),
        "bench",
        "--data",
        str(data),
        "--model",
        "smollm2-135m-instruct",
        "--strategies",
        "cot,self-consistency;n=3",
        "--max-tokens",
        "24",
        "--concurrency",
        "2",
    ]
    cassette = tmp_path / "calls.jsonl"
    live = CliRunner().invoke(
        main,
        [
            *common,
            "--out",
            str(tmp_path / "live"),
            "--record",
            str(cassette),
            "--bank",
            str(tmp_path / "bank.jsonl"),
            "--bank-size",
            "4",
            "--bank-concurrency",
            "1",
            "--replicates",
            "2",
        ],
        catch_exceptions=False,
    )
    assert live.exit_code == 0, live.output
    assert json.loads((tmp_path / "live" / "run.json").read_text())["bank_concurrency"] == 1
    assert "| cot | 2 |" in live.output and "| self-consistency;n=3 | 2 |" in live.output
    records = json.loads((tmp_path / "live" / "records.json").read_text())
    assert len(records) == 2 * 2 * 2  # systems x questions x orderings
    assert (tmp_path / "live" / "accuracy_vs_tokens.png").exists()

    replay = CliRunner().invoke(
        main,
        [
            *common,
            "--out",
            str(tmp_path / "replay"),
            "--replay",
            str(cassette),
            "--bank",
            str(tmp_path / "bank.jsonl"),
            "--bank-size",
            "4",
            "--replicates",
            "2",
        ],
        catch_exceptions=False,
    )
    assert replay.exit_code == 0, replay.output
    again = json.loads((tmp_path / "replay" / "records.json").read_text())

    def key(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
        return sorted(
            (r["system"], r["example_id"], r["replicate"], r["answer"], r["completion_tokens"])
            for r in rows
        )

    assert key(again) == key(records)


def test_cost_column_from_a_price_table(tmp_path: Path) -> None:
    from ponder.bench.report import Price

    records = [Record("cot", "0", True, "1", "1", 1000, 500, 0, 1, 1.0)]
    summary = summarize(records, prices={"*": Price(prompt=0.5, completion=2.0)})
    assert summary[0].cost == pytest.approx((1000 * 0.5 + 500 * 2.0) / 1e6)
    assert "$/question" in markdown_table(summary)
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"cot": {"prompt": 1, "completion": 1}}))
    run = RunDir(tmp_path / "r")
    run.append(records[0])
    result = CliRunner().invoke(main, ["bench", "report", str(run.path), "--prices", str(prices)])
    assert result.exit_code == 0, result.output
    assert "0.001500" in result.output
