"""``ponder calibrate`` over a scripted model whose first pass is right exactly when it is
confident, so the fitted thresholds and ladders can be checked against what they must be."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from ponder.backends.scripted import Reply, ScriptedBackend
from ponder.bench.bank import SampleBank
from ponder.bench.calibrate import Calibration, ProgramMemo, calibrate, candidates, score
from ponder.bench.tasks import Example, Gsm8k
from ponder.reasoning.profile import AutoProfile, EffortProfile, load_profile
from ponder.reasoning.prompts import PAL_SYSTEM
from ponder.types import GenerationRequest
from tests.strategy_helpers import solution

EXAMPLES = [Example(str(k), f"What is {k} + {k}?", str(2 * k)) for k in range(1, 9)]


def model(request: GenerationRequest, index: int) -> Reply:
    """Even k: a confident, right first pass. Odd k: an unsure, wrong one. Sampled paths
    are right three times in four; programs are always right."""
    k = int(re.findall(r"What is (\d+)", request.messages[-1].content)[0])
    if request.messages[0].content == PAL_SYSTEM:
        return Reply(f"```python\nprint({k} + {k})\n```")
    if request.sampling.temperature == 0.0:
        if k % 2 == 0:
            return Reply(solution(2 * k), [-0.001] * 20)
        return Reply(solution(2 * k + 1), [-0.9] * 20)
    right = (index + k) % 4 != 0
    return Reply(solution(2 * k if right else 2 * k - 1), [-0.3] * 20)


async def test_calibration_fits_the_threshold_between_sure_and_unsure_and_runs_offline(
    tmp_path: Path,
) -> None:
    backend = ScriptedBackend(model)
    bank = SampleBank(tmp_path / "bank.jsonl")
    result = await calibrate(
        Gsm8k(),
        EXAMPLES,
        backend,
        bank,
        bank_size=4,
        replicates=2,
        max_tokens=64,
        first_passes=("cot",),
    )
    profile = result.profile
    first = result.first_pass
    assert first.accuracy == 0.5  # the greedy first pass is right on even k only
    chosen = profile.calibration["chosen"]
    assert isinstance(chosen, dict)
    # Every level stays inside its allowance, measured in first passes.
    for row in chosen.values():
        allowance = row["allowance_x_first_pass"]
        assert allowance is None or row["mean_total_tokens"] <= allowance * first.tokens
    # Spending more may only help, and the top level fixes every unsure question.
    accuracies = [chosen[level]["accuracy"] for level in ("minimal", "low", "medium", "high")]
    assert accuracies == sorted(accuracies)
    assert chosen["xhigh"]["accuracy"] == 1.0
    # The fitted threshold separates the confident first passes (~6.9) from the unsure (~0.9).
    xhigh = profile.efforts["xhigh"]
    assert 0.9 < xhigh.accept_confidence < 6.9 and xhigh.ladder
    assert xhigh.ladder[0].kind in {"vote", "program"}

    # The written profile loads and scores the same; no model is needed any more.
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile.model_dump(mode="json")))
    loaded = load_profile(path)
    calls = len(backend.calls)
    again, _ = await score(
        loaded.efforts["xhigh"],
        Gsm8k(),
        EXAMPLES,
        SampleBank(tmp_path / "bank.jsonl"),
        replicates=2,
        max_tokens=64,
        memo=ProgramMemo(),
    )
    assert again.accuracy == chosen["xhigh"]["accuracy"]
    assert round(again.tokens, 1) == chosen["xhigh"]["mean_total_tokens"]
    assert len(backend.calls) == calls


async def test_a_program_first_pass_is_chosen_where_programs_are_right_and_cheap(
    tmp_path: Path,
) -> None:
    backend = ScriptedBackend(model)
    result = await calibrate(
        Gsm8k(),
        EXAMPLES,
        backend,
        SampleBank(tmp_path / "bank.jsonl"),
        bank_size=4,
        replicates=2,
        max_tokens=64,
    )
    assert result.first_passes["cot"].accuracy == 0.5
    assert result.first_passes["program"].accuracy == 1.0
    # The greedy program alone (its longer prompt included) fits inside minimal's allowance
    # and beats every chain-of-thought candidate there.
    minimal = result.profile.efforts["minimal"]
    assert minimal.first_pass == "program"
    chosen = result.profile.calibration["chosen"]
    assert isinstance(chosen, dict) and chosen["minimal"]["accuracy"] == 1.0
    assert chosen["minimal"]["mean_total_tokens"] <= 1.3 * result.first_pass.tokens


def tied(request: GenerationRequest, index: int) -> Reply:
    """On k <= 8 (the bank's rows) the greedy chain of thought is right on even k and a
    program on odd k: a tie that the chain of thought wins by its shorter prompt. Past them
    (the screening rows) programs are always right."""
    k = int(re.findall(r"What is (\d+)", request.messages[-1].content)[0])
    if request.messages[0].content == PAL_SYSTEM:
        return Reply(f"```python\nprint({k} + {k + (k <= 8 and k % 2 == 0)})\n```")
    if request.sampling.temperature == 0.0:
        return Reply(solution(2 * k + k % 2), [-0.2] * 20)
    return Reply(solution(2 * k if index % 4 else 2 * k - 1), [-0.3] * 20)


async def test_screening_rows_choose_the_first_pass_for_every_level(tmp_path: Path) -> None:
    async def fit(screen: list[Example]) -> tuple[Calibration, ScriptedBackend]:
        backend = ScriptedBackend(tied)
        result = await calibrate(
            Gsm8k(),
            EXAMPLES,
            backend,
            SampleBank(tmp_path / f"bank-{len(screen)}.jsonl"),
            bank_size=4,
            replicates=1,
            max_tokens=64,
            screen=screen,
        )
        return result, backend

    alone, _ = await fit([])
    assert alone.first_passes["cot"].accuracy == alone.first_passes["program"].accuracy == 0.5
    assert alone.chosen_first_pass == "cot"
    assert {e.first_pass for e in alone.profile.efforts.values()} == {"cot"}

    more = [Example(str(k), f"What is {k} + {k}?", str(2 * k)) for k in range(9, 17)]
    screened, backend = await fit(more)
    # Chain of thought: even k on every row; programs: odd k on the bank's rows, all past.
    assert screened.first_passes["cot"].accuracy == 8 / 16
    assert screened.first_passes["program"].accuracy == 12 / 16
    assert screened.chosen_first_pass == "program"
    assert {e.first_pass for e in screened.profile.efforts.values()} == {"program"}
    calibration = screened.profile.calibration
    assert calibration["screening_questions"] == 8
    assert calibration["chosen_first_pass"] == "program"
    evidence = calibration["first_passes_alone"]
    assert isinstance(evidence, dict)
    assert {k: v["right_alone"] for k, v in evidence.items()} == {"cot": 4, "program": 8}
    # The allowance unit stays the chain of thought on the bank's rows.
    assert screened.first_pass == alone.first_pass
    # Screening rows cost greedy first passes only: no sampled path, no sampled program.
    late = [
        c for c in backend.calls if int(re.findall(r"What is (\d+)", c.messages[-1].content)[0]) > 8
    ]
    assert len(late) == 16 and all(c.sampling.temperature == 0.0 for c in late)


def test_candidate_grid_respects_the_bank() -> None:
    grid = candidates({"cot": [0.5, 1.0, 2.0, 3.0], "program": [1.0]}, bank_size=4, max_tokens=64)
    assert {c.first_pass for c in grid} == {"cot", "program"}
    assert all(r.max_n <= 4 for c in grid for r in c.ladder if r.kind == "vote")
    assert any(not c.ladder for c in grid) and any(c.ladder for c in grid)
    assert AutoProfile(efforts={"x": grid[0]}).effort("x") == grid[0]


def test_candidate_grid_weighs_programs_only_where_they_meet_other_votes() -> None:
    grid = candidates({"cot": [0.5, 1.0], "program": [1.0, 2.0]}, bank_size=4, max_tokens=64)
    heavy = [
        c
        for c in grid
        if c.first_weight != 1.0 or any(r.weight != 1.0 for r in c.ladder if r.kind == "program")
    ]
    assert heavy and all(c.ladder for c in heavy)
    for c in heavy:
        weights = {r.weight for r in c.ladder if r.kind == "program"}
        if c.first_pass == "program":
            weights.add(c.first_weight)
        assert weights == {2.0}  # the first program and the rungs' programs weigh alike
    # A chain-of-thought first pass over vote rungs alone has no program to weigh.
    assert not any(c.first_pass == "cot" and all(r.kind == "vote" for r in c.ladder) for c in heavy)


async def test_a_live_pass_runs_at_most_the_given_questions_at_once(tmp_path: Path) -> None:
    inner = ScriptedBackend(model)
    in_flight = {"now": 0, "most": 0}

    class Slow:
        name = inner.name
        capabilities = inner.capabilities

        async def generate(self, request: GenerationRequest):  # type: ignore[no-untyped-def]
            in_flight["now"] += 1
            in_flight["most"] = max(in_flight["most"], in_flight["now"])
            await asyncio.sleep(0.01)
            try:
                return await inner.generate(request)
            finally:
                in_flight["now"] -= 1

    greedy = EffortProfile(first_pass="cot", accept_confidence=0.0, max_tokens=64)
    result, _ = await score(
        greedy,
        Gsm8k(),
        EXAMPLES,
        SampleBank(tmp_path / "bank.jsonl"),
        replicates=1,
        max_tokens=64,
        memo=ProgramMemo(),
        live=Slow(),  # type: ignore[arg-type]
        concurrency=3,
    )
    assert result.accuracy == 0.5 and len(inner.calls) == len(EXAMPLES)
    assert in_flight["most"] == 3
