"""Fitting the chat and code levels: the chat threshold is a quantile of first-pass
confidence, and each code level's samples are chosen by replaying auto's selection."""

from __future__ import annotations

from ponder.backends.scripted import Reply, ScriptedBackend
from ponder.bench.calibrate_kinds import Candidate, CodeDraw, choose_code, fit_chat, replay
from ponder.reasoning.code_tests import Score


def candidate(passed: int, right: bool, tokens: int = 100, total: int = 2) -> Candidate:
    return Candidate(Score(passed, total, True), right, tokens)


def draw(greedy: Candidate, *samples: Candidate, tests: bool = True) -> CodeDraw:
    return CodeDraw(greedy, samples, 50, 50 if samples else 0, tests)


def test_replay_keeps_a_greedy_program_that_passes_and_selects_otherwise() -> None:
    passing = draw(candidate(2, True))
    assert replay(passing, 8) == (True, 150)
    failing = draw(
        candidate(1, False), candidate(0, False), candidate(2, True), candidate(2, False)
    )
    assert replay(failing, 0) == (False, 150)
    assert replay(failing, 1) == (False, 150 + 50 + 100)  # the greedy one still passes more
    assert replay(failing, 2) == (True, 150 + 50 + 200)  # the first that passes both is kept
    untested = draw(candidate(0, False, total=0), tests=False)
    assert replay(untested, 8) == (False, 150)


def test_each_level_gets_the_most_accurate_width_its_allowance_pays_for() -> None:
    draws = [draw(candidate(2, True)) for _ in range(6)] + [
        draw(
            candidate(0, False), candidate(0, False), candidate(2, True), *[candidate(0, False)] * 6
        )
        for _ in range(4)
    ]
    efforts, summary = choose_code(draws, max_samples=8, max_tokens=256)
    assert efforts["minimal"].samples == 0
    assert summary["by_samples"]["0"]["accuracy"] == 0.6
    assert summary["by_samples"]["2"]["accuracy"] == 1.0
    # greedy: 150 tokens a task; two samples on 4 of 10 tasks add 0.4 * 250 = 100.
    assert summary["by_samples"]["2"]["mean_total_tokens"] == 250.0
    assert efforts["low"].samples == 0  # 1.5x greedy is 225 tokens: too little for two
    assert efforts["medium"].samples == 2  # the smallest of the equally accurate widths
    assert efforts["high"].samples == 2 and efforts["medium"].max_tokens == 256


async def test_the_chat_threshold_is_a_quantile_of_first_pass_confidence() -> None:
    confidences = iter([-0.001, -0.01, -0.1, -0.3, -0.5, -0.7, -0.9, -1.2, -1.5, -2.0] * 2)

    def script(request, index):  # type: ignore[no-untyped-def]
        return Reply("An answer of four words.", [next(confidences)] * 5)

    fit = await fit_chat(
        [f"q{i}" for i in range(20)], ScriptedBackend(script), max_tokens=64, concurrency=3
    )
    assert fit.efforts["minimal"].samples == 0 and fit.efforts["low"].samples == 0
    medium, high = fit.efforts["medium"], fit.efforts["high"]
    assert medium.samples == 2 and high.samples == 4
    # 20 prompts: medium escalates the least confident 5% (one), high 10% (two).
    assert medium.accept_confidence < high.accept_confidence
    assert fit.summary["prompts"] == 20
