"""The gateway's durable side: the database (keys, budgets, the ledger, traces, stored
responses) behind :class:`~ponder.gateway.accounts.Accounts`, the in-flight journal, and
the sweep of reservations a dead process left behind.

A request touches it twice: :meth:`Bookkeeping.begin` once it is planned (its journal lines
open, so a killed process loses nothing it spent) and :meth:`Bookkeeping.finish` when it
ends, however it ends (its ledger row, the reservation settled, its journal lines closed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta

from ponder.config import PonderConfig, Price
from ponder.errors import StoreUnavailableError
from ponder.gateway.accounts import Accounts
from ponder.gateway.call import ChatCall, Plan
from ponder.gateway.journal import Journal, journal_directory
from ponder.gateway.recovery import journal_begin, record_interrupted
from ponder.reasoning.trace import Trace
from ponder.tenancy import resolve_database_url

# A reservation older than this belongs to a request whose process died and left no
# journal to recover it from; the sweep runs at start-up and every SWEEP_EVERY.
STALE_RESERVATION = timedelta(hours=1)
SWEEP_EVERY = timedelta(minutes=5)


class Bookkeeping:
    """The database, the journal and the sweeper of one gateway; nothing opens before
    :meth:`open` (a batch caller that never opens it keeps nothing on disk)."""

    def __init__(
        self,
        config: PonderConfig,
        admin_key: str | None,
        price_of: Callable[[str], Price | None],
        *,
        store_traces: bool = True,
    ) -> None:
        self.config = config
        self.accounts = Accounts(config, None, admin_key, price_of)
        self.journal: Journal | None = None
        self._admin_key = admin_key
        self._price_of = price_of
        # Off for batch callers (the bench, calibration) that keep their own records.
        self._store_traces = store_traces
        self._sweeper: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open the database, record what a killed process left in its journal, release
        reservations older than that, and keep sweeping while the gateway runs (another
        replica may die at any time)."""
        if self.accounts.store is not None:
            return
        self.accounts = await Accounts.open(self.config, self._admin_key, self._price_of)
        assert self.accounts.store is not None
        url = resolve_database_url(self.config)
        directory = journal_directory(url, self.config.journal_dir)
        if directory is not None:
            await record_interrupted(self.accounts, directory)
            self.journal = Journal(directory)
        await self.accounts.store.sweep_stale(STALE_RESERVATION)
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        store = self.accounts.store
        assert store is not None
        while True:
            await asyncio.sleep(SWEEP_EVERY.total_seconds())
            with contextlib.suppress(StoreUnavailableError):  # tried again next time
                await store.sweep_stale(STALE_RESERVATION)

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.accounts.aclose()
        if self.journal is not None:
            self.journal.close()
            self.journal = None

    def begin(self, plan: Plan, call: ChatCall) -> None:
        """A planned request starts: its calls report to the journal from now on."""
        if self.journal is not None:
            plan.log.watcher = journal_begin(self.journal, plan, call)

    async def finish(
        self,
        plan: Plan,
        *,
        strategy: str | None,
        effort: str | None,
        seconds: float,
        error: BaseException | None,
        trace: Trace | None,
    ) -> None:
        """Write the request's ledger row (settling its reservation) and its trace; then
        its journal lines are no longer needed."""
        try:
            await self.accounts.finish(
                plan.caller,
                plan.admission,
                request_id=plan.request_id,
                model=plan.model,
                strategy=strategy,
                effort=effort,
                log=plan.log,
                seconds=seconds,
                error=error,
                trace=trace if self._store_traces else None,
            )
        except BaseException:
            # Not recorded (the database is down): the journal keeps the request on disk for
            # the next start to record, but this process forgets it, or its memory would
            # grow with every request of an outage.
            if self.journal is not None:
                self.journal.forget(plan.request_id)
            raise
        if self.journal is not None:
            self.journal.end(plan.request_id)
