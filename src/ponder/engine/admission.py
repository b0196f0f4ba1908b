"""Admission: which queued jobs start now.

Jobs start first come, first served, so a wide job (16 paths) is never starved by a stream
of narrow ones. Strict order alone wastes the engine, though: while the head of the queue
waits for 16 free sequence slots, a one-path request that would fit in the slots already
free waits too (seen live on ``/metrics`` under a mixed benchmark load).

So the queue backfills, in the manner of EASY backfilling (Lifka, 1995): when the head
cannot start, it is given a reservation, the *shadow step* by which enough slots and KV cells
will be free for it, and a later job may start in its place only if it cannot push that
step back: it ends before the shadow step, or it fits in what the head will leave over.
Unlike a batch scheduler, the engine knows every job's worst case exactly, in engine steps:
a sequence ends by ``max_tokens`` sampled tokens, one per step.

Everything here is pure: the engine describes its jobs as :class:`Demand` and
:class:`Holding` values and starts the jobs whose indices come back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ponder.errors import ContextOverflowError


@dataclass(frozen=True, slots=True)
class Demand:
    """What a queued job asks for."""

    slots: int  # sequence ids, one per path
    cells: int  # KV cells reserved up front (0 when each sequence has its own stream)
    steps: int  # worst-case engine steps from start until it releases everything


@dataclass(frozen=True, slots=True)
class Holding:
    """What a running job holds, and the most steps it can keep it."""

    slots: int
    cells: int
    steps_left: int


def job_steps(prompt_left: int, tokens_left: int, prefill_per_step: int) -> int:
    """Worst-case steps for a job with ``prompt_left`` prompt tokens still to evaluate.

    The last prompt token and the first sampled token share a step; counting them apart keeps
    the bound safe against prompt chunks shared with other prefilling jobs.
    """
    return math.ceil(prompt_left / max(prefill_per_step, 1)) + tokens_left


def shadow(
    head: Demand, holdings: Sequence[Holding], free_slots: int, free_cells: int
) -> tuple[int, int, int] | None:
    """When the head can start at the latest, and what it leaves over then.

    Returns ``(step, spare_slots, spare_cells)``, or None when the running jobs could never
    free enough (the engine refuses such a request before it is queued).
    """
    slots, cells = free_slots, free_cells
    if slots >= head.slots and cells >= head.cells:
        return 0, slots - head.slots, cells - head.cells
    for holding in sorted(holdings, key=lambda h: h.steps_left):
        slots += holding.slots
        cells += holding.cells
        if slots >= head.slots and cells >= head.cells:
            return holding.steps_left, slots - head.slots, cells - head.cells
    return None


def admit(
    waiting: Sequence[Demand],
    holdings: Sequence[Holding],
    free_slots: int,
    free_cells: int,
    backfill: bool = True,
) -> list[int]:
    """Indices into ``waiting`` (oldest first) of the jobs to start now, in order."""
    started: list[int] = []
    first_blocked = len(waiting)
    for i, job in enumerate(waiting):
        if job.slots > free_slots or job.cells > free_cells:
            first_blocked = i
            break
        free_slots -= job.slots
        free_cells -= job.cells
        started.append(i)
    if not backfill or first_blocked >= len(waiting) - 1:
        return started
    # Jobs started just above hold their slots for up to their full length.
    running = list(holdings) + [
        Holding(waiting[i].slots, waiting[i].cells, waiting[i].steps) for i in started
    ]
    reservation = shadow(waiting[first_blocked], running, free_slots, free_cells)
    if reservation is None:
        return started
    step, spare_slots, spare_cells = reservation
    for i in range(first_blocked + 1, len(waiting)):
        job = waiting[i]
        if job.slots > free_slots or job.cells > free_cells:
            continue
        if job.steps <= step:
            pass  # done before the head needs its slots back
        elif job.slots <= spare_slots and job.cells <= spare_cells:
            spare_slots -= job.slots
            spare_cells -= job.cells
        else:
            continue
        free_slots -= job.slots
        free_cells -= job.cells
        started.append(i)
    return started


def overdue(queued_at: Sequence[float], now: float, limit: float) -> list[int]:
    """Indices of queued jobs (times in submission order) that have waited past ``limit``
    seconds: the engine refuses them rather than let them wait past their client's timeout."""
    if not queued_at or now - queued_at[0] <= limit:
        return []  # the oldest is first: nothing has waited that long
    return [i for i, at in enumerate(queued_at) if now - at > limit]


def retry_after(holdings: Sequence[Holding], step_seconds: float) -> float:
    """When a refused caller should come back: about when the first running job's slots
    free up (its worst-case steps left at the recent step time), between 1 and 30 seconds."""
    steps = min((h.steps_left for h in holdings), default=0)
    return float(min(max(1, math.ceil(steps * step_seconds)), 30))


def fit_request(
    n_prompt: int,
    n: int,
    max_tokens: int | None,
    *,
    n_ctx: int,
    n_ctx_seq: int,
    n_seq_max: int,
    default_max_tokens: int,
    kv_unified: bool,
) -> tuple[int, int]:
    """Fit a request to the context before any decoding.

    Returns ``(max_tokens, width)``: the completion length every path may reach, and how
    many paths one job can hold (a wider request runs as several jobs). KV cells are
    reserved for the whole length up front, so a running job never runs out of cells.
    """
    room = n_ctx_seq - n_prompt
    if room < 1:
        raise ContextOverflowError(
            f"the prompt has {n_prompt} tokens; this model's context holds "
            f"{n_ctx_seq} tokens per sequence",
            param="messages",
        )
    if max_tokens is None:
        max_tokens = min(room, default_max_tokens)
    elif max_tokens > room:
        raise ContextOverflowError(
            f"the prompt ({n_prompt} tokens) plus max_tokens ({max_tokens}) exceeds the "
            f"context of {n_ctx_seq} tokens per sequence; lower max_tokens to "
            f"at most {room}",
            param="max_tokens",
        )
    width = min(n, n_seq_max)
    if kv_unified:
        width = min(width, (n_ctx - n_prompt) // max_tokens)
    return max_tokens, max(width, 1)
