"""The one worker: drain the queue into batches, run the engine in a thread, answer every future.

Routes call `submit()` and await futures; they never see the engine. The engine sees a list and returns a list of
the same length; it never sees the queue. The worker outlives whatever the engine does:
- a failing batch is retried item by item, so one poisoned segment fails only its own request;
- out of GPU memory, the batch is halved and retried, and the batch ceiling stays lowered for a while;
- a call that never returns is abandoned after `engine_timeout_seconds` (504 for its segments); the worker goes on
  with a fresh thread, and the service reports itself not ready until the stuck call ends.
On SIGTERM the server calls `begin_drain()`: new requests are refused, admitted ones are finished.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from asr_service.batching.fair_queue import Priority, PriorityFairQueue
from asr_service.engines.base import AsrEngine, Chunk, ChunkResult, is_out_of_memory
from asr_service.errors import InferenceError, NotReadyError, OverloadedError, RequestTimeoutError
from asr_service.metrics import ServiceMetrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchPolicy:
    max_batch_size: int
    max_wait_ms: float
    queue_size: int
    retry_after_seconds: int
    engine_timeout_seconds: float = 300
    """A model call running longer than this is abandoned: its segments fail with 504."""
    oom_cooldown_seconds: float = 60
    """After running out of GPU memory, the lowered batch ceiling doubles back once per this many seconds."""
    max_queue_wait_seconds: float = 60
    """A new request is refused (503 with Retry-After) when its estimated wait for the model is longer."""
    length_window_batches: int = 1
    """With this many batches' worth of batch jobs waiting, take them together and run them sorted by length
    (1: off). Interactive requests are never sorted, and go ahead of the sorted batches."""


@dataclass(frozen=True)
class SegmentOutcome:
    result: ChunkResult
    batch_id: int
    batch_ms: float
    """Wall time of the model call that carried this segment (shared with its batch-mates)."""


@dataclass
class _Item:
    request_id: str
    chunk: Chunk
    future: asyncio.Future[SegmentOutcome]
    priority: Priority = "interactive"


@dataclass
class _RequestLoad:
    """An admitted request's audio waiting for the model, for the wait estimate."""

    priority: Priority
    queued_seconds: float = 0.0
    submitted_seconds: float = 0.0
    submitted: bool = False


@dataclass
class _Ewma:
    """Exponentially weighted mean; None until the first sample."""

    weight: float
    value: float | None = field(default=None)

    def add(self, sample: float) -> None:
        self.value = sample if self.value is None else self.value + self.weight * (sample - self.value)


class Batcher:
    def __init__(self, engine: AsrEngine, policy: BatchPolicy, metrics: ServiceMetrics) -> None:
        self.engine = engine
        self._policy = policy
        self._metrics = metrics
        self._queue: PriorityFairQueue[_Item] = PriorityFairQueue()
        self._sorted_batches: list[list[_Item]] = []
        """Batch-job segments taken from the queue together and sorted by length, run before it is read again."""
        self._preempted = 0
        self._task: asyncio.Task[None] | None = None
        self._batch_counter = 0
        self._ceiling = policy.max_batch_size
        self._ceiling_lowered_at = 0.0
        self._stuck_calls = 0
        self._draining = False
        self._active: dict[str, _RequestLoad] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._throughput = _Ewma(0.2)
        """Audio seconds the engine transcribes per second of its time."""
        self._request_audio = _Ewma(0.1)
        """Audio seconds a request brings, typically."""

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def not_ready_reason(self) -> str | None:
        """Why new requests are refused now (what /readyz reports), or None when they are taken."""
        if not self.alive:
            return "the transcription worker is not running"
        if self._draining:
            return "the service is shutting down"
        if self._stuck_calls:
            return f"{self._stuck_calls} model call(s) stopped answering; waiting for them to end"
        return None

    @property
    def batch_ceiling(self) -> int:
        """Most segments per model call now: the policy's, or less for a while after running out of GPU memory."""
        if self._ceiling < self._policy.max_batch_size:
            periods = int((time.monotonic() - self._ceiling_lowered_at) / self._policy.oom_cooldown_seconds)
            if periods:
                self._ceiling = min(self._policy.max_batch_size, self._ceiling * 2**periods)
                self._ceiling_lowered_at = time.monotonic()
        return self._ceiling

    @property
    def depth(self) -> int:
        return len(self._queue) + sum(len(batch) for batch in self._sorted_batches)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="asr-batch-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        waiting = self._queue.drain() + [item for batch in self._sorted_batches for item in batch]
        self._sorted_batches.clear()
        for item in waiting:
            if not item.future.done():
                item.future.set_exception(NotReadyError("the service is shutting down"))

    def estimated_wait(self) -> float:
        """Seconds a newly admitted request would wait for the model. The queue is round-robin across requests, so
        each admitted request delays a newcomer by at most a typical request's audio (a long call counts once, not
        by its length); an admitted request still decoding counts as a typical one. 0 until measured."""
        typical, throughput = self._request_audio.value, self._throughput.value
        if typical is None or not throughput:
            return 0.0
        ahead = sum(
            min(load.queued_seconds if load.submitted else typical, typical)
            for load in self._active.values()
            if load.priority == "interactive"  # batch jobs get one turn in four while interactive requests wait
        )
        return ahead / throughput

    @contextlib.contextmanager
    def admitted(self, priority: Priority = "interactive") -> Iterator[str]:
        """Hold a place for one request and yield its id: refused while not ready, while the queue is full, or while
        the estimated wait is over the bound. An admitted request then submits all of its segments, block by block
        as they are found, so a long call is never refused by its own length; a drain waits for every admitted
        request to leave. Batch jobs are only refused while not ready: their runner bounds how many run at once."""
        retry_after = {"Retry-After": str(self._policy.retry_after_seconds)}
        if reason := self.not_ready_reason:
            raise NotReadyError(reason, headers=retry_after)
        if priority == "interactive":
            self._check_capacity(retry_after)
        request_id = uuid.uuid4().hex
        load = self._active[request_id] = _RequestLoad(priority)
        self._idle.clear()
        try:
            yield request_id
        finally:
            del self._active[request_id]
            if load.submitted:
                self._request_audio.add(load.submitted_seconds)
            if not self._active:
                self._idle.set()

    def _check_capacity(self, retry_after: dict[str, str]) -> None:
        waiting = self._queue.depth("interactive")
        if waiting >= self._policy.queue_size:
            raise OverloadedError(
                f"{waiting} segments are waiting for the model; try again shortly", headers=retry_after
            )
        if (wait := self.estimated_wait()) > self._policy.max_queue_wait_seconds:
            raise OverloadedError(
                f"the model is busy: a new request would wait about {wait:.0f} s (limit "
                f"{self._policy.max_queue_wait_seconds:.0f} s); try again shortly",
                headers=retry_after,
            )

    def begin_drain(self) -> None:
        """Refuse new requests from now on (and report not ready); admitted ones go on."""
        if not self._draining:
            logger.info("draining: %d request(s) in progress, %d segment(s) queued", len(self._active), self.depth)
        self._draining = True

    async def wait_drained(self, timeout: float) -> bool:
        """Wait until no admitted request is left; False if `timeout` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def submit(self, request_id: str, chunks: list[Chunk]) -> list[asyncio.Future[SegmentOutcome]]:
        """Enqueue segments of an admitted request; one future per segment, in order."""
        if not self.alive:
            raise NotReadyError("the transcription worker is not running")  # it stopped after admission
        loop = asyncio.get_running_loop()
        load = self._active.get(request_id)
        priority: Priority = load.priority if load is not None else "interactive"
        items = [_Item(request_id, chunk, loop.create_future(), priority) for chunk in chunks]
        self._queue.put_all(request_id, items, priority)
        if load is not None:
            seconds = sum(chunk.duration for chunk in chunks)
            load.submitted = True
            load.queued_seconds += seconds
            load.submitted_seconds += seconds
        return [item.future for item in items]

    def _dequeued(self, item: _Item) -> _Item:
        if (load := self._active.get(item.request_id)) is not None:
            load.queued_seconds = max(0.0, load.queued_seconds - item.chunk.duration)
        return item

    async def _run(self) -> None:
        while True:
            batch = await self._collect_batch()
            try:
                await self._execute(batch)
            except Exception:  # the worker must outlive anything a batch does
                logger.exception("batch failed unexpectedly")
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(InferenceError("transcription failed"))

    async def _collect_batch(self) -> list[_Item]:
        if self._sorted_batches:
            # A caller waiting on the line goes ahead of the sorted batch-job batches, as in the queue (at most
            # `interactive_run` interactive batches before one of theirs), so the sorting never delays /asr.
            if self._queue.depth("interactive") and self._preempted < self._queue.interactive_run:
                self._preempted += 1
                return await self._collect_fair_batch()
            self._preempted = 0
            return self._sorted_batches.pop(0)
        batch = await self._collect_fair_batch()
        ceiling, window = self.batch_ceiling, self._policy.length_window_batches
        if (
            window > 1
            and len(batch) == ceiling
            and all(item.priority == "batch" for item in batch)
            and not self._queue.depth("interactive")
            and self._queue.depth("batch") >= (window - 1) * ceiling
        ):
            # A night's jobs are waiting: taken together in fair order and sorted by length, each batch's rows
            # end at about the same step, so no batch decodes on for its one long segment.
            taken = batch + [self._dequeued(item) for item in self._queue.take((window - 1) * ceiling)]
            taken.sort(key=lambda item: item.chunk.duration)
            batches = [taken[i : i + ceiling] for i in range(0, len(taken), ceiling)]
            batch, self._sorted_batches = batches[0], batches[1:]
        return batch

    async def _collect_fair_batch(self) -> list[_Item]:
        batch = [self._dequeued(await self._queue.get())]
        deadline = time.perf_counter() + self._policy.max_wait_ms / 1000
        ceiling = self.batch_ceiling
        while len(batch) < ceiling:
            item = self._queue.get_nowait()
            if item is not None:
                batch.append(self._dequeued(item))
                continue
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(self._queue.wait_not_empty(), remaining)
            except TimeoutError:
                break
        return batch

    async def _execute(self, batch: list[_Item]) -> None:
        live = [item for item in batch if not item.future.done()]  # the client left: skip the model
        if dropped := len(batch) - len(live):
            self._metrics.segments.labels("dropped").inc(dropped)
        if not live:
            return
        self._batch_counter += 1
        batch_id = self._batch_counter
        started = time.perf_counter()
        try:
            results = await self._call_engine([item.chunk for item in live])
        except _EngineStuck:
            logger.error(
                "batch %d: the model did not answer within %.0f s", batch_id, self._policy.engine_timeout_seconds
            )
            self._fail(live, "timeout", RequestTimeoutError("the model stopped answering on this audio; try again"))
            return
        except Exception as e:
            if is_out_of_memory(e) and len(live) > 1:
                self._lower_ceiling(len(live) // 2)
                logger.warning("batch %d of %d ran out of GPU memory; retrying in halves", batch_id, len(live))
                half = len(live) // 2
                await self._execute(live[:half])
                await self._execute(live[half:])
                return
            if len(live) == 1:
                logger.exception("segment failed on its own (batch %d)", batch_id)
                self._fail(live, "failed", InferenceError(f"the model failed on this audio: {e}"))
                return
            logger.warning("batch %d of %d failed (%s); retrying one by one", batch_id, len(live), e)
            for item in live:
                await self._execute([item])
            return
        elapsed = time.perf_counter() - started
        self._throughput.add(sum(item.chunk.duration for item in live) / max(elapsed, 1e-3))
        self._metrics.batch_size.observe(len(live))
        self._metrics.inference_seconds.observe(elapsed)
        self._metrics.segments.labels("ok").inc(len(live))
        for item, result in zip(live, results, strict=True):
            if not item.future.done():
                item.future.set_result(SegmentOutcome(result=result, batch_id=batch_id, batch_ms=elapsed * 1000))

    async def _call_engine(self, chunks: list[Chunk]) -> list[ChunkResult]:
        """The engine in a thread, bounded in time. A call past the bound cannot be killed (it is a thread); it is
        left to finish on its own while the worker goes on, and counted as stuck until it does."""
        call = asyncio.get_running_loop().run_in_executor(None, self.engine.transcribe_batch, chunks)
        try:
            results = await asyncio.wait_for(asyncio.shield(call), self._policy.engine_timeout_seconds)
        except TimeoutError:
            self._stuck_calls += 1
            call.add_done_callback(self._stuck_call_ended)
            raise _EngineStuck() from None
        if len(results) != len(chunks):
            raise RuntimeError(f"engine returned {len(results)} results for {len(chunks)} segments")
        return results

    def _stuck_call_ended(self, call: asyncio.Future[list[ChunkResult]]) -> None:
        self._stuck_calls -= 1
        if not call.cancelled() and call.exception() is not None:
            logger.warning("a stuck model call ended with %r", call.exception())
        logger.info("a stuck model call ended after all; %d still stuck", self._stuck_calls)

    def _lower_ceiling(self, ceiling: int) -> None:
        self._ceiling = max(1, min(self._ceiling, ceiling))
        self._ceiling_lowered_at = time.monotonic()

    def _fail(self, items: list[_Item], outcome: str, error: Exception) -> None:
        self._metrics.segments.labels(outcome).inc(len(items))
        for item in items:
            if not item.future.done():
                item.future.set_exception(error)


class _EngineStuck(Exception):
    """The engine call ran past its time bound."""
