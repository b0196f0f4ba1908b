"""Group commit of ledger rows: rows that arrive during a write share the next one, and a
request waits for its own row only, never for the rows of requests that came after it."""

from __future__ import annotations

import asyncio
from typing import Any

from ponder.gateway.accounts import GroupCommit
from ponder.tenancy import RequestRow
from ponder.types import Usage


class GatedStore:
    """A store whose writes finish when the test says so."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gates: list[asyncio.Event] = []

    async def record_many(self, rows: list[RequestRow]) -> None:
        gate = asyncio.Event()
        self.gates.append(gate)
        self.batches.append([r.request_id for r in rows])
        await gate.wait()


def row(name: str) -> RequestRow:
    return RequestRow(
        request_id=name,
        key_id=None,
        team=None,
        model="m",
        strategy=None,
        effort=None,
        usage=Usage(),
        cost_usd=0.0,
        seconds=0.0,
        outcome="ok",
    )


async def test_a_writer_is_not_kept_waiting_by_later_rows() -> None:
    store = GatedStore()
    commit = GroupCommit(store)  # type: ignore[arg-type]
    first = asyncio.create_task(commit.write(row("a")))
    await asyncio.sleep(0)
    later = [asyncio.create_task(commit.write(row(n))) for n in ("b", "c")]
    await asyncio.sleep(0)
    assert store.batches == [["a"]]
    store.gates[0].set()
    await asyncio.wait_for(first, 5)  # its own row is in: it returns
    await asyncio.sleep(0)
    assert store.batches == [["a"], ["b", "c"]]  # the later rows share the next commit
    assert not any(t.done() for t in later)
    store.gates[1].set()
    await asyncio.wait_for(asyncio.gather(*later), 5)


async def test_a_failed_write_fails_its_rows_and_the_next_ones_still_go() -> None:
    class Failing(GatedStore):
        async def record_many(self, rows: list[RequestRow]) -> Any:
            self.batches.append([r.request_id for r in rows])
            if len(self.batches) == 1:
                raise OSError("disk full")

    store = Failing()
    commit = GroupCommit(store)  # type: ignore[arg-type]
    failed = await asyncio.gather(commit.write(row("a")), return_exceptions=True)
    assert isinstance(failed[0], OSError)
    await commit.write(row("b"))
    assert store.batches == [["a"], ["b"]]
