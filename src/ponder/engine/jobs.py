"""What the batched engine runs: jobs (one request's paths) and their sequences.

A job is a request's prompt and ``n`` paths, each decoded on its own llama.cpp sequence id.
This module knows what a job holds and how long it can hold it; which jobs start is
:mod:`ponder.engine.admission`'s business, and decoding is the engine's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ponder.engine.admission import Demand, Holding, job_steps
from ponder.engine.sampling import SequenceSampler, StopMatcher
from ponder.types import Delta, FinishReason, SamplingParams, Usage

DeltaSink = Callable[[list[Delta]], None]
FinishSink = Callable[[Usage, BaseException | None], None]


@dataclass(slots=True)
class Seq:
    """One path of a job, decoding on llama.cpp sequence ``seq_id`` (-1 once released)."""

    index: int
    seq_id: int
    sampler: SequenceSampler
    stop: StopMatcher
    pos: int = 0
    last_token: int = -1
    generated: int = 0
    finished: FinishReason | None = None
    batch_index: int = -1


@dataclass(slots=True)
class Job:
    id: int
    prompt: list[int]
    n: int
    params: SamplingParams
    max_tokens: int
    grammar: str | None
    on_deltas: DeltaSink
    on_finish: FinishSink
    seed: int
    cells: int  # KV cells reserved while it runs (0 when each sequence has its own stream)
    seqs: list[Seq] = field(default_factory=list)
    prefilled: int = 0  # prompt tokens evaluated so far
    prompt_batch_index: int = -1  # batch index of the last prompt token in this step
    cancelled: set[int] = field(default_factory=set)
    admitted: bool = False
    queued_at: float = 0.0  # time.monotonic() when it was submitted

    @property
    def prefilling(self) -> bool:
        return self.admitted and self.prefilled < len(self.prompt)

    def demand(self, prefill_per_step: int) -> Demand:
        """What it asks for while queued."""
        return Demand(
            slots=self.n,
            cells=self.cells,
            steps=job_steps(len(self.prompt), self.max_tokens, prefill_per_step),
        )

    def holding(self, prefill_per_step: int) -> Holding:
        """What it holds while running, until its slowest live path may reach max_tokens."""
        live = [seq.generated for seq in self.seqs if seq.finished is None]
        return Holding(
            slots=sum(1 for seq in self.seqs if seq.seq_id >= 0),
            cells=self.cells,
            steps_left=job_steps(
                len(self.prompt) - self.prefilled,
                self.max_tokens - min(live, default=self.max_tokens),
                prefill_per_step,
            ),
        )

    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.prefilled,
            completion_tokens=sum(s.generated for s in self.seqs),
            calls=1,
        )
