"""Admission: first come, first served, with backfill that never delays the head."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ponder.engine.admission import Demand, Holding, admit, job_steps, shadow


def test_jobs_start_in_order_while_they_fit() -> None:
    waiting = [Demand(2, 0, 10), Demand(3, 0, 10), Demand(4, 0, 10)]
    assert admit(waiting, [], free_slots=5, free_cells=0) == [0, 1]


def test_without_backfill_nothing_passes_a_blocked_head() -> None:
    waiting = [Demand(8, 0, 10), Demand(1, 0, 2)]
    holdings = [Holding(6, 0, 100)]
    assert admit(waiting, holdings, free_slots=2, free_cells=0, backfill=False) == []


def test_a_short_job_starts_ahead_of_a_blocked_wide_one() -> None:
    waiting = [Demand(8, 0, 10), Demand(1, 0, 5)]
    holdings = [Holding(6, 0, 100)]
    assert admit(waiting, holdings, free_slots=2, free_cells=0) == [1]


def test_a_long_job_that_would_delay_the_head_waits() -> None:
    # The head needs every slot at step 100; this job would still hold two then.
    waiting = [Demand(8, 0, 10), Demand(2, 0, 400)]
    holdings = [Holding(6, 0, 100)]
    assert admit(waiting, holdings, free_slots=2, free_cells=0) == []


def test_a_long_job_may_use_what_the_head_leaves_over() -> None:
    waiting = [Demand(4, 0, 10), Demand(2, 0, 400), Demand(1, 0, 400)]
    holdings = [Holding(6, 0, 100)]
    # At step 100 there are 8 free slots: 4 for the head, 4 spare; both long jobs fit in them.
    assert admit(waiting, holdings, free_slots=3, free_cells=0) == [1, 2]


def test_kv_cells_bound_backfill_like_slots() -> None:
    waiting = [Demand(1, 900, 10), Demand(1, 200, 400)]
    holdings = [Holding(1, 800, 100)]
    # Slots are plentiful, but at step 100 the head takes 900 of the 1000 free cells.
    assert admit(waiting, holdings, free_slots=6, free_cells=200) == []
    assert admit([waiting[0], Demand(1, 100, 400)], holdings, 6, 200) == [1]


def test_shadow_is_when_enough_running_jobs_can_have_ended() -> None:
    holdings = [Holding(2, 0, 50), Holding(3, 0, 20), Holding(4, 0, 90)]
    assert shadow(Demand(5, 0, 1), holdings, free_slots=1, free_cells=0) == (50, 1, 0)
    assert shadow(Demand(1, 0, 1), holdings, free_slots=1, free_cells=0) == (0, 0, 0)
    assert shadow(Demand(20, 0, 1), holdings, free_slots=1, free_cells=0) is None


def test_job_steps_counts_prompt_chunks_and_tokens() -> None:
    assert job_steps(prompt_left=1000, tokens_left=64, prefill_per_step=464) == 3 + 64
    assert job_steps(prompt_left=0, tokens_left=10, prefill_per_step=464) == 10


@dataclass
class _Job:
    demand: Demand
    started: int = -1


def _simulate(jobs: list[_Job], slots: int, cells: int, backfill: bool) -> None:
    """Run the queue step by step, every job lasting its worst case.

    Checks the backfill promise on the way: once a job is the blocked head, it starts no
    later than the shadow step computed for it then.
    """
    queue = list(jobs)
    running: list[tuple[_Job, int]] = []  # (job, end step)
    promised: dict[int, int] = {}
    step = 0
    while queue or running:
        for job, end in list(running):
            if end <= step:
                running.remove((job, end))
        free_slots = slots - sum(j.demand.slots for j, _ in running)
        free_cells = cells - sum(j.demand.cells for j, _ in running)
        holdings = [Holding(j.demand.slots, j.demand.cells, end - step) for j, end in running]
        chosen = admit([j.demand for j in queue], holdings, free_slots, free_cells, backfill)
        starting = [queue[i] for i in chosen]
        for job in starting:
            job.started = step
            running.append((job, step + job.demand.steps))
            queue.remove(job)
        if queue and id(queue[0]) not in promised:
            free_slots -= sum(j.demand.slots for j in starting)
            free_cells -= sum(j.demand.cells for j in starting)
            started_now = [
                Holding(j.demand.slots, j.demand.cells, j.demand.steps) for j in starting
            ]
            when = shadow(queue[0].demand, holdings + started_now, free_slots, free_cells)
            assert when is not None
            promised[id(queue[0])] = step + when[0]
        step += 1
    for job in jobs:
        if id(job) in promised:
            assert job.started <= promised[id(job)]


def test_backfill_keeps_every_reservation() -> None:
    rng = random.Random(7)
    for _ in range(60):
        demands = [
            Demand(
                slots=rng.choice([1, 1, 2, 4, 16]),
                cells=rng.choice([0, 100, 400]),
                steps=rng.randint(1, 60),
            )
            for _ in range(rng.randint(3, 25))
        ]
        _simulate([_Job(d) for d in demands], slots=16, cells=1000, backfill=True)


def test_backfill_helps_narrow_work_behind_a_wide_job() -> None:
    # A wide bank draw waits for a long job; one-path calls queue behind it.
    demands = [Demand(12, 0, 100), Demand(16, 0, 100)] + [Demand(1, 0, 10)] * 8
    fifo_jobs = [_Job(d) for d in demands]
    easy_jobs = [_Job(d) for d in demands]
    _simulate(fifo_jobs, slots=16, cells=0, backfill=False)
    _simulate(easy_jobs, slots=16, cells=0, backfill=True)
    assert all(job.started >= 200 for job in fifo_jobs[2:])
    assert all(job.started < 100 for job in easy_jobs[2:])
    assert easy_jobs[1].started == fifo_jobs[1].started == 100
