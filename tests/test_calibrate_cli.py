"""``ponder calibrate``'s options: a ladder or a base profile, and kinds carried over from a
profile fitted earlier, with no model loaded where nothing is drawn."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from ponder.cli import main
from ponder.reasoning.profile import AutoProfile, ChatEffort, CodeEffort, load_profile


def test_the_ladder_comes_from_data_or_a_base_profile() -> None:
    runner = CliRunner()
    neither = runner.invoke(main, ["calibrate", "--out", "x.json"])
    assert neither.exit_code == 2 and "--data" in neither.output and "--base" in neither.output


def test_kinds_are_carried_over_onto_a_base_without_a_model(tmp_path: Path) -> None:
    base = load_profile(Path("src/ponder/data/auto_profile.json"))
    kinds = AutoProfile(
        efforts={"medium": base.efforts["medium"]},
        chat={"medium": ChatEffort(accept_confidence=1.5, samples=2)},
        code={"medium": CodeEffort(samples=4)},
        calibration={"chat": {"prompts": 40}, "code": {"tasks": 41}, "rows": [0, 1]},
    )
    (tmp_path / "base.json").write_text(base.model_dump_json())
    (tmp_path / "kinds.json").write_text(kinds.model_dump_json())
    out = tmp_path / "out.json"
    result = CliRunner().invoke(
        main,
        [
            "calibrate",
            "--base",
            str(tmp_path / "base.json"),
            "--kinds-from",
            str(tmp_path / "kinds.json"),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    merged = AutoProfile.model_validate(json.loads(out.read_text()))
    assert merged.efforts == base.efforts  # the ladder is the base's
    assert merged.chat_effort("medium").samples == 2 and merged.code_effort("medium").samples == 4
    assert merged.calibration["chat"] == {"prompts": 40}
    assert merged.calibration["rows"] == base.calibration["rows"]
