"""The sample bank: paths drawn once, strategies evaluated offline over many orderings."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ponder.backends.scripted import Reply, ScriptedBackend
from ponder.bench.bank import BankBackend, SampleBank, path_key
from ponder.bench.report import summarize
from ponder.bench.runner import RunDir, StrategySystem, build_bank, parse_systems, run_bench
from ponder.bench.tasks import Example, Gsm8k
from ponder.types import Completion, GenerationRequest, Message, SamplingParams


def counting_script() -> ScriptedBackend:
    counter = iter(range(10**6))

    def script(request: GenerationRequest, index: int) -> Reply:
        k = next(counter)
        return Reply(f"work\nThe answer is: {1 if k % 3 else 2}", [-0.05] * 5)

    return ScriptedBackend(script)


EXAMPLES = [Example(str(i), f"question number {i}", "1") for i in range(4)]


async def test_bank_drawing_keeps_at_most_concurrency_questions_in_flight(tmp_path: Path) -> None:
    live = ScriptedBackend(lambda request, index: "The answer is: 1", token_delay=0.01)
    in_flight = peak = 0
    generate = live.generate

    async def counted(request: GenerationRequest) -> Completion:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await generate(request)
        finally:
            in_flight -= 1

    live.generate = counted  # type: ignore[method-assign]
    questions = [Example(str(i), f"question {i}", "1") for i in range(6)]
    await build_bank(Gsm8k(), questions, live, SampleBank(tmp_path / "a.jsonl"), size=2)
    assert peak == 2  # the default
    peak = 0
    await build_bank(
        Gsm8k(), questions, live, SampleBank(tmp_path / "b.jsonl"), size=2, concurrency=3
    )
    assert peak == 3


async def test_bank_is_drawn_once_and_reused_across_orderings(tmp_path: Path) -> None:
    live = counting_script()
    bank = SampleBank(tmp_path / "bank.jsonl")
    await build_bank(Gsm8k(), EXAMPLES, live, bank, size=8)
    assert len(live.calls) == 4 and all(c.n == 8 for c in live.calls)
    # Drawing again adds nothing: the bank is complete.
    await build_bank(Gsm8k(), EXAMPLES, live, SampleBank(tmp_path / "bank.jsonl"), size=8)
    assert len(live.calls) == 4

    run_dir = RunDir(tmp_path / "run")
    labels = parse_systems(
        "self-consistency;n=1,self-consistency;n=4,adaptive-consistency;window=2;max_n=8"
    )
    for replicate in range(3):
        # One bank view per system: each strategy draws its own paths in this ordering.
        sources = [BankBackend(bank, live, replicate=replicate) for _ in labels]
        systems = [
            StrategySystem(label, spec, src)
            for (label, spec), src in zip(labels, sources, strict=True)
        ]
        await run_bench(Gsm8k(), EXAMPLES, systems, run_dir, replicate=replicate)
        assert all(src.live == 0 for src in sources)
    assert len(live.calls) == 4  # every path came from the bank
    records = run_dir.records()
    assert len(records) == 3 * 3 * 4
    summary = {s.system: s for s in summarize(records)}
    assert summary["self-consistency;n=4"].questions == 4
    # Orderings differ: n=1 sees different single paths in different replicates.
    answers = {(r.example_id, r.answer) for r in records if r.system == "self-consistency;n=1"}
    assert len(answers) > 4
    # Usage stays exact: 4 paths of 5 tokens, one prompt charge per call.
    sc4 = [r for r in records if r.system == "self-consistency;n=4"]
    assert all(r.completion_tokens == 20 and r.calls == 1 for r in sc4)


async def test_requests_the_bank_cannot_serve_fall_back_to_the_live_model(tmp_path: Path) -> None:
    live = counting_script()
    bank = SampleBank(tmp_path / "bank.jsonl")
    await build_bank(Gsm8k(), EXAMPLES[:1], live, bank, size=2)
    source = BankBackend(bank, live, replicate=0)
    system = StrategySystem("sc", parse_systems("self-consistency;n=5")[0][1], source)
    (record,) = await run_bench(Gsm8k(), EXAMPLES[:1], [system], RunDir(tmp_path / "r"))
    assert source.served == 2 and source.live == 3
    assert record.completion_tokens == 25
    # The live paths were recorded into the bank for the next ordering.
    assert len(SampleBank(tmp_path / "bank.jsonl").paths(next(iter(bank._paths)))) == 5


async def test_online_confidence_vote_from_the_bank_charges_only_tokens_before_cancel(
    tmp_path: Path,
) -> None:
    confident = Reply("a b c d e f g h\nThe answer is: 1", [-0.01] * 12)
    unsure = Reply("a b c d e f g h\nThe answer is: 2", [-3.0] * 12)
    replies = iter([confident, confident, unsure, unsure, unsure, unsure])
    live = ScriptedBackend(lambda request, index: next(replies))
    bank = SampleBank(tmp_path / "bank.jsonl")
    await build_bank(Gsm8k(), EXAMPLES[:1], live, bank, size=6)
    source = BankBackend(bank, None, replicate=0)
    labels = parse_systems("confidence-vote;n=6;warmup=2;window=2;top_logprobs=2")
    run_dir = RunDir(tmp_path / "r")
    records = []
    for replicate in range(4):
        source = BankBackend(bank, None, replicate=replicate)
        records += await run_bench(
            Gsm8k(),
            EXAMPLES[:1],
            [StrategySystem(lb, sp, source) for lb, sp in labels],
            run_dir,
            replicate=replicate,
        )
    # Where the warm-up drew confident paths, the unsure online paths are cut early and cost
    # fewer than their full 12 tokens; no ordering costs more than all six paths in full.
    spent = [r.completion_tokens for r in run_dir.records()]
    assert len(spent) == 4
    assert all(t <= 6 * 12 for t in spent)
    assert any(t < 6 * 12 for t in spent)


def test_penalties_change_the_path_key_and_older_keys_stay_valid() -> None:
    from ponder.bench.cassette import digest
    from ponder.types import Message, SamplingParams

    sampling = SamplingParams(temperature=0.8, max_tokens=64)
    plain = GenerationRequest((Message("user", "2+2?"),), sampling)
    # The key a bank drawn before penalties were keyed holds for this request.
    before = digest(
        {
            "messages": [{"role": "user", "content": "2+2?"}],
            "prefill": "",
            "sampling": [0.8, 1.0, 0, 0.0, 1.0, 64, []],
            "json_schema": None,
            "tools": None,
        }
    )
    assert path_key(plain) == before
    penalised = plain.replace(sampling=sampling.replace(presence_penalty=0.5))
    assert path_key(penalised) != path_key(plain)
    assert path_key(plain.replace(sampling=sampling.replace(frequency_penalty=0.5))) not in {
        path_key(plain),
        path_key(penalised),
    }


async def test_every_strategy_gets_the_first_recorded_greedy_path(tmp_path: Path) -> None:
    from ponder.types import Choice, Message, SamplingParams

    bank = SampleBank(tmp_path / "bank.jsonl")
    greedy = GenerationRequest((Message("user", "2+2?"),), SamplingParams(temperature=0.0))
    # Two greedy paths for one request, as when two strategies drew it live at once and the
    # batches they shared made llama.cpp's arithmetic differ.
    for text in ("The answer is: 4", "The answer is: 5"):
        bank.add(path_key(greedy), 7, (Choice(0, text, "stop", 5),))
    for replicate in range(4):
        backend = BankBackend(bank, None, replicate=replicate)
        first = await backend.generate(greedy)
        again = await backend.generate(greedy.replace(n=2))
        assert [c.text for c in first.choices + again.choices] == ["The answer is: 4"] * 3
        assert again.usage.completion_tokens == 10 and again.usage.prompt_tokens == 7
    # Sampled requests still draw distinct paths in a per-replicate order.
    sampled = greedy.with_sampling(temperature=0.7)
    for text in ("a", "b", "c"):
        bank.add(path_key(sampled), 7, (Choice(0, text, "stop", 1),))
    drawn = await BankBackend(bank, None).generate(sampled.replace(n=3))
    assert sorted(c.text for c in drawn.choices) == ["a", "b", "c"]


async def test_concurrent_requests_for_the_same_paths_draw_them_once(tmp_path: Path) -> None:
    draws = iter(range(10**6))
    live = ScriptedBackend(
        lambda request, index: f"draw {next(draws)}\nThe answer is: 1", token_delay=0.01
    )
    bank = SampleBank(tmp_path / "bank.jsonl")
    ask = (Message("user", "question"),)
    greedy = GenerationRequest(ask, SamplingParams(temperature=0.0, max_tokens=16))
    # Two strategies (each its own view of the bank) ask for the same greedy path at once.
    first, second = BankBackend(bank, live), BankBackend(bank, live, replicate=1)
    a, b = await asyncio.gather(first.generate(greedy), second.generate(greedy))
    assert len(live.calls) == 1
    assert a.choices[0].text == b.choices[0].text == "draw 0\nThe answer is: 1"
    # Sampled paths drawn live for one strategy are served to the other that waited.
    sampled = GenerationRequest(ask, SamplingParams(temperature=0.7, max_tokens=16), n=2)
    c, d = await asyncio.gather(first.generate(sampled), second.generate(sampled))
    assert len(live.calls) == 2 and live.calls[-1].n == 2
    assert {x.text for x in c.choices} == {x.text for x in d.choices}
    assert d.usage.completion_tokens == c.usage.completion_tokens
