"""The batched engine: one prefill per request, every live sequence decoded in one batch.

A single worker thread owns the llama.cpp context. Each step it builds one ``llama_batch``
holding one token for every live sequence of every admitted request (continuous batching),
topped up with prompt tokens of requests still being prefilled. A request's prompt is
evaluated once, on its first sequence; when its last prompt token is decoded, the prompt's
KV cells are copied to the request's other sequences (``llama_memory_seq_cp``) and every
sequence samples its first token from that same logits row.

Callers live on asyncio event loops; they hand work over with :meth:`BatchedEngine.submit`
and receive deltas through a :class:`~ponder.backends.base.QueueStream`, which is fed with
``call_soon_threadsafe``. The engine thread is the only one that touches the context.
Which queued requests start is decided in :mod:`ponder.engine.admission`.
"""

from __future__ import annotations

import itertools
import random
import threading
import time

import llama_cpp

from ponder.engine import openmp
from ponder.engine.admission import admit, fit_request, retry_after
from ponder.engine.jobs import DeltaSink, FinishSink, Job, Seq
from ponder.engine.llama_model import LlamaModel
from ponder.engine.queue import WaitingJobs
from ponder.engine.sampling import SequenceSampler, StopMatcher, logits_row, token_logprob
from ponder.engine.stats import EngineLoad, EngineStats
from ponder.errors import BackendError, InvalidRequestError, OverloadedError
from ponder.types import Delta, FinishReason, SamplingParams, TokenLogprob, Usage


class BatchedEngine:
    """Continuous batching over one llama.cpp context."""

    def __init__(self, model: LlamaModel) -> None:
        self.model = model
        self.stats = EngineStats()
        self._lock = threading.Condition()
        self._waiting = WaitingJobs()
        self._active: list[Job] = []
        self._cancels: list[tuple[int, int | None]] = []
        self._free_ids = list(range(model.n_seq_max))
        self._free_cells = model.n_ctx
        self._ids = itertools.count(1)
        self._closed = False
        self._batch = llama_cpp.llama_batch_init(model.config.n_batch, 0, 1)
        # Decode tokens take their batch places first; prompts get the rest of each step.
        self._prefill_per_step = model.config.n_batch - model.n_seq_max
        # Idle, the worker thread frees its OpenMP workers (see ponder.engine.openmp), so that
        # another thread's decodes do not run at libgomp's oversubscribed pace meanwhile.
        self._release_workers = openmp.worker_releaser()
        self._holds_workers = False
        self._thread = threading.Thread(
            target=self._run, name=f"ponder-engine-{model.name}", daemon=True
        )
        self._thread.start()

    # -- API, any thread -----------------------------------------------------------------
    @property
    def max_sequences(self) -> int:
        return self.model.n_seq_max

    def load(self) -> EngineLoad:
        with self._lock:
            active = list(self._active)
            return EngineLoad(
                waiting_requests=len(self._waiting),
                running_requests=len(active),
                running_sequences=sum(
                    1 for job in active for seq in job.seqs if seq.finished is None
                ),
                sequence_slots=self.model.n_seq_max,
                free_sequence_slots=len(self._free_ids),
                kv_cells=self.model.n_ctx,
                kv_cells_reserved=self.model.n_ctx - self._free_cells,
            )

    def plan(self, n_prompt: int, n: int, max_tokens: int | None) -> tuple[int, int]:
        """Fit a request to the context before any decoding (see :func:`fit_request`)."""
        model = self.model
        return fit_request(
            n_prompt,
            n,
            max_tokens,
            n_ctx=model.n_ctx,
            n_ctx_seq=model.n_ctx_seq,
            n_seq_max=model.n_seq_max,
            default_max_tokens=model.config.default_max_tokens,
            kv_unified=model.config.kv_unified,
        )

    def submit(
        self,
        prompt: list[int],
        n: int,
        params: SamplingParams,
        on_deltas: DeltaSink,
        on_finish: FinishSink,
        grammar: str | None = None,
    ) -> int:
        if not prompt:
            raise InvalidRequestError("the prompt is empty")
        max_tokens, width = self.plan(len(prompt), n, params.max_tokens)
        if n < 1 or n > width:
            raise InvalidRequestError(
                f"one job holds at most {width} paths here; got n={n}", param="n"
            )
        seed = params.seed if params.seed is not None else random.SystemRandom().getrandbits(32)
        with self._lock:
            if self._closed:
                raise BackendError("the engine is closed")
            job = Job(
                id=next(self._ids),
                prompt=list(prompt),
                n=n,
                params=params,
                max_tokens=max_tokens,
                grammar=grammar,
                on_deltas=on_deltas,
                on_finish=on_finish,
                seed=seed,
                cells=len(prompt) + n * max_tokens if self.model.config.kv_unified else 0,
                queued_at=time.monotonic(),
            )
            try:
                self._waiting.push(
                    job,
                    limit=self.model.config.max_waiting,
                    engine=self.model.name,
                    retry_after=self._retry_after(),
                )
            except OverloadedError:
                self.stats.refused += 1
                raise
            self._lock.notify()
        return job.id

    def cancel(self, job_id: int, index: int | None = None) -> None:
        """Cancel one sequence of a job, or the whole job when ``index`` is None."""
        with self._lock:
            self._cancels.append((job_id, index))
            self._lock.notify()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join(timeout=30)
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None

    # -- worker thread -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            # Only this thread changes _active, so it needs no lock to see that it is idle.
            if self._holds_workers and not self._active and self._release_workers is not None:
                self._release_workers()
                self._holds_workers = False
            with self._lock:
                while (
                    not self._closed
                    and not self._waiting
                    and not self._active
                    and not self._cancels
                ):
                    self._lock.wait()
                if self._closed:
                    jobs = list(self._active) + self._waiting.drain()
                    self._active.clear()
                    break
                cancels, self._cancels = self._cancels, []
                expired = self._expire_waiting()
                admitted = self._admit()
            for job, waited in expired:
                job.on_finish(
                    Usage(calls=1),
                    OverloadedError(
                        f"waited {waited:.0f} s for the engine for {self.model.name} without "
                        "starting (engine.max_queue_seconds); try again shortly",
                        retry_after=self._retry_after(),
                    ),
                )
            # Sequences cancelled while their job was still queued end as soon as it starts.
            cancels += [(job.id, i) for job in admitted for i in sorted(job.cancelled)]
            self._apply_cancels(cancels)
            if self._active:
                try:
                    self._step()
                except Exception as exc:  # a failed decode must not kill the worker
                    self._fail_active(exc)
        for job in jobs:
            self._finish_job(job, BackendError("the engine was closed"))

    def _expire_waiting(self) -> list[tuple[Job, float]]:
        """Queued jobs that waited past ``max_queue_seconds``, taken out of the queue (under
        the lock); they are refused outside it."""
        expired = self._waiting.expire(time.monotonic(), self.model.config.max_queue_seconds)
        self.stats.expired += len(expired)
        return expired

    def _retry_after(self) -> float:
        holdings = [job.holding(self._prefill_per_step) for job in list(self._active)]
        return retry_after(holdings, self.stats.step_seconds())

    def _admit(self) -> list[Job]:
        if not self._waiting:
            return []
        chosen = admit(
            [job.demand(self._prefill_per_step) for job in self._waiting],
            [job.holding(self._prefill_per_step) for job in self._active],
            free_slots=len(self._free_ids),
            free_cells=self._free_cells,
            backfill=self.model.config.backfill,
        )
        jobs = self._waiting.take(chosen)
        # Indices come back in order, so a job that skipped an older one sits past its index.
        self.stats.backfilled += sum(1 for k, i in enumerate(chosen) if i != k)
        admitted: list[Job] = []
        for job in jobs:
            self._free_cells -= job.cells
            ids = [self._free_ids.pop(0) for _ in range(job.n)]
            try:
                job.seqs = [
                    Seq(
                        index=i,
                        seq_id=sid,
                        sampler=SequenceSampler(self.model, job.params, job.seed + i, job.grammar),
                        stop=StopMatcher(job.params.stop),
                    )
                    for i, sid in enumerate(ids)
                ]
            except Exception as exc:
                self._free_ids.extend(ids)
                self._free_cells += job.cells
                for seq in job.seqs:
                    seq.sampler.free()
                job.on_finish(Usage(), InvalidRequestError(str(exc)))
                continue
            job.admitted = True
            self._active.append(job)
            admitted.append(job)
        return admitted

    def _apply_cancels(self, cancels: list[tuple[int, int | None]]) -> None:
        for job_id, index in cancels:
            job = next((j for j in self._active if j.id == job_id), None)
            if job is None:
                with self._lock:
                    waiting = self._waiting.find(job_id)
                    if waiting is not None and index is not None:
                        waiting.cancelled.add(index)
                        if len(waiting.cancelled) >= waiting.n:
                            index = None  # every sequence cancelled: drop the whole job
                    if waiting is not None and index is None:
                        self._waiting.remove(waiting)
                if waiting is not None and index is None:
                    waiting.on_deltas(
                        [
                            Delta(index=i, finish_reason="cancelled", completion_tokens=0)
                            for i in range(waiting.n)
                        ]
                    )
                    waiting.on_finish(Usage(calls=1), None)
                continue
            targets = range(job.n) if index is None else [index]
            deltas: list[Delta] = []
            for i in targets:
                if 0 <= i < job.n and job.seqs[i].finished is None:
                    deltas.append(self._end_seq(job, job.seqs[i], "cancelled"))
            if deltas:
                job.on_deltas(deltas)
            if all(s.finished for s in job.seqs):
                self._finish_job(job)

    def _step(self) -> None:
        batch = self._batch
        capacity = self.model.config.n_batch
        count = 0

        def put(token: int, pos: int, seq_id: int, logits: bool) -> int:
            nonlocal count
            batch.token[count] = token
            batch.pos[count] = pos
            batch.n_seq_id[count] = 1
            batch.seq_id[count][0] = seq_id
            batch.logits[count] = logits
            count += 1
            return count - 1

        decoding = [job for job in self._active if not job.prefilling]
        for job in decoding:
            for seq in job.seqs:
                if seq.finished is None:
                    seq.batch_index = put(seq.last_token, seq.pos, seq.seq_id, True)
        prefill_tokens = 0
        for job in self._active:
            job.prompt_batch_index = -1
            if not job.prefilling or count >= capacity:
                continue
            take = min(capacity - count, len(job.prompt) - job.prefilled)
            head = job.seqs[0].seq_id
            for k in range(take):
                p = job.prefilled + k
                last = p == len(job.prompt) - 1
                idx = put(job.prompt[p], p, head, last)
                if last:
                    job.prompt_batch_index = idx
            job.prefilled += take
            prefill_tokens += take
        if count == 0:
            return
        batch.n_tokens = count
        started = time.perf_counter()
        rc = llama_cpp.llama_decode(self.model.ctx, batch)
        self._holds_workers = True
        self.stats.decode_seconds += time.perf_counter() - started
        self.stats.steps += 1
        self.stats.prompt_tokens += prefill_tokens
        if rc != 0:
            raise BackendError(f"llama_decode failed with code {rc}")
        started = time.perf_counter()

        for job in list(self._active):
            deltas: list[Delta] = []
            if job.prompt_batch_index >= 0:
                self._fork_prompt(job)
                for seq in job.seqs:
                    if seq.finished is None:
                        deltas.extend(self._sample(job, seq, job.prompt_batch_index))
            elif job in decoding:
                for seq in job.seqs:
                    if seq.finished is None and seq.batch_index >= 0:
                        deltas.extend(self._sample(job, seq, seq.batch_index))
                        seq.batch_index = -1
            if deltas:
                job.on_deltas(deltas)
            if job.admitted and not job.prefilling and all(s.finished for s in job.seqs):
                self._finish_job(job)
        self.stats.sample_seconds += time.perf_counter() - started

    def _fork_prompt(self, job: Job) -> None:
        """Give every sequence of the job the prompt's KV cells."""
        n_prompt = len(job.prompt)
        head = job.seqs[0]
        for seq in job.seqs:
            seq.pos = n_prompt
            if seq is not head and seq.finished is None:
                llama_cpp.llama_memory_seq_cp(self.model.memory, head.seq_id, seq.seq_id, -1, -1)
        if head.finished is not None:
            self._release(head)

    def _sample(self, job: Job, seq: Seq, batch_index: int) -> list[Delta]:
        model = self.model
        token = seq.sampler.sample(model.ctx, batch_index)
        seq.generated += 1
        self.stats.decode_tokens += 1
        logprobs: tuple[TokenLogprob, ...] = ()
        if job.params.logprobs or job.params.top_logprobs:
            row = logits_row(model.ctx, batch_index, model.n_vocab)
            logprobs = (token_logprob(model, row, token, job.params.top_logprobs),)
        if model.is_eog(token) and not job.params.ignore_eos:
            return [self._end_seq(job, seq, "stop", logprobs)]
        result = seq.stop.feed(model.piece(token))
        if result.stopped:
            return [self._end_seq(job, seq, "stop", logprobs, text=result.emit, flush=False)]
        if seq.generated >= job.max_tokens:
            return [self._end_seq(job, seq, "length", logprobs, text=result.emit)]
        # The prompt holds positions 0..P-1, so the k-th sampled token is fed at P+k-1.
        seq.last_token = token
        seq.pos = len(job.prompt) + seq.generated - 1
        if not result.emit and not logprobs:
            return []
        return [Delta(index=seq.index, text=result.emit, logprobs=logprobs)]

    def _end_seq(
        self,
        job: Job,
        seq: Seq,
        reason: FinishReason,
        logprobs: tuple[TokenLogprob, ...] = (),
        text: str = "",
        flush: bool = True,
    ) -> Delta:
        seq.finished = reason
        if flush:
            text += seq.stop.flush()
        # While the prompt is still being evaluated on the head sequence, its cells are
        # needed by the others; it is released once the prompt has been copied.
        if not (job.prefilling and seq is job.seqs[0]):
            self._release(seq)
        return Delta(
            index=seq.index,
            text=text,
            logprobs=logprobs,
            finish_reason=reason,
            completion_tokens=seq.generated,
        )

    def _release(self, seq: Seq) -> None:
        if seq.seq_id >= 0:
            llama_cpp.llama_memory_seq_rm(self.model.memory, seq.seq_id, -1, -1)
            with self._lock:
                self._free_ids.append(seq.seq_id)
            seq.seq_id = -1
        seq.sampler.free()

    def _finish_job(self, job: Job, error: BaseException | None = None) -> None:
        for seq in job.seqs:
            if seq.finished is None:
                seq.finished = "cancelled"
            self._release(seq)
        if job in self._active:
            self._active.remove(job)
            with self._lock:
                self._free_cells += job.cells
        job.on_finish(job.usage(), error)

    def _fail_active(self, exc: Exception) -> None:
        error = exc if isinstance(exc, BackendError) else BackendError(f"engine step failed: {exc}")
        for job in list(self._active):
            self._finish_job(job, error)
