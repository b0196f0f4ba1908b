"""What the engine reports: counters since start, and what it holds at one instant."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class EngineStats:
    steps: int = 0
    decode_tokens: int = 0  # sampled tokens, all sequences
    prompt_tokens: int = 0  # prompt tokens evaluated
    decode_seconds: float = 0.0  # time inside llama_decode
    sample_seconds: float = 0.0  # time sampling, detokenizing and matching stops
    backfilled: int = 0  # jobs started ahead of an older queued job
    refused: int = 0  # jobs refused because the queue was full (engine.max_waiting)
    expired: int = 0  # jobs refused after waiting past engine.max_queue_seconds

    def step_seconds(self) -> float:
        """The mean time of one engine step so far (decode and sampling)."""
        return (self.decode_seconds + self.sample_seconds) / self.steps if self.steps else 0.0


@dataclass(frozen=True, slots=True)
class EngineLoad:
    """What the engine holds at one instant (for monitoring)."""

    waiting_requests: int  # jobs queued for sequence slots or KV cells
    running_requests: int
    running_sequences: int  # sequences still decoding
    sequence_slots: int  # n_seq_max
    free_sequence_slots: int
    kv_cells: int  # n_ctx
    kv_cells_reserved: int  # cells promised to admitted jobs (0 when each sequence has a stream)
