"""Where traces live: SQLite by default, one row per reply."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import platformdirs

from ponder.reasoning.trace import Trace

_SCHEMA = """
CREATE TABLE IF NOT EXISTS traces (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    strategy TEXT NOT NULL,
    model TEXT,
    body TEXT NOT NULL
)
"""


def default_trace_path() -> Path:
    return Path(platformdirs.user_data_dir("ponder")) / "traces.sqlite3"


class TraceStore:
    """A small SQLite store. Writes go through a thread so the event loop never blocks."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            self._db.commit()

    def _put(self, trace: Trace, model: str | None) -> None:
        body = json.dumps(trace.as_dict() | {"model": model})
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO traces (id, created, strategy, model, body) VALUES (?, ?, ?, ?, ?)",
                (trace.id, time.time(), trace.strategy, model, body),
            )
            self._db.commit()

    def _get(self, trace_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM traces WHERE id = ?", (trace_id,)).fetchone()
        return json.loads(row[0]) if row else None

    async def put(self, trace: Trace, model: str | None = None) -> None:
        await asyncio.to_thread(self._put, trace, model)

    async def get(self, trace_id: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self._get, trace_id)

    def close(self) -> None:
        with self._lock:
            self._db.close()
