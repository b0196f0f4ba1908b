"""The append-only JSONL files of a run (records, cassettes, sample banks).

Each entry is appended as one line. A run killed mid-write can leave a torn last line; it is
dropped on reading (its work is redone on resume), so an interrupted run always resumes. A
bad line anywhere else means the file was damaged some other way, and is an error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ponder.errors import ConfigError

log = logging.getLogger("ponder.bench")


def read_entries(path: Path) -> Iterator[dict[str, Any]]:
    """The entries of ``path`` in order (none if it does not exist)."""
    if not path.exists():
        return
    text = path.read_text()
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):  # no newline after it: the write was cut off
                log.warning("%s: dropping a torn last line (an interrupted write)", path)
                return
            raise ConfigError(f"{path}, line {number}: not JSON ({exc})") from exc
        yield entry


def append_entry(path: Path, entry: dict[str, Any]) -> None:
    """Append one entry as one line. A torn last line (which reading drops) is cut off
    first, so that it cannot end up in the middle of the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as fh:
        size = fh.seek(0, 2)
        if size > 0:
            fh.seek(size - 1)
            if fh.read(1) != b"\n":
                fh.seek(0)
                kept = fh.read().rfind(b"\n") + 1
                fh.truncate(kept)
                log.warning("%s: cut off a torn last line before appending", path)
        fh.write((json.dumps(entry) + "\n").encode())
