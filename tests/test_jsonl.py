"""Run files stay readable after an interrupted write, so a killed run always resumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.bench.jsonl import append_entry, read_entries
from ponder.errors import ConfigError


def test_a_torn_last_line_is_dropped_and_cut_off_before_the_next_append(
    tmp_path: Path,
) -> None:
    path = tmp_path / "records.jsonl"
    append_entry(path, {"id": 1})
    with path.open("a") as fh:
        fh.write('{"id": 2, "answ')  # killed mid-write
    assert list(read_entries(path)) == [{"id": 1}]
    append_entry(path, {"id": 3})
    assert list(read_entries(path)) == [{"id": 1}, {"id": 3}]


def test_a_bad_line_in_the_middle_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text('{"id": 1}\nnot json\n{"id": 3}\n')
    with pytest.raises(ConfigError, match="line 2"):
        list(read_entries(path))


def test_entries_round_trip_and_a_missing_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "bank.jsonl"
    assert list(read_entries(path)) == []
    for i in range(3):
        append_entry(path, {"key": str(i), "paths": [i]})
    assert [e["key"] for e in read_entries(path)] == ["0", "1", "2"]
