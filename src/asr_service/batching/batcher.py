"""The one worker: drain the queue into batches, run the engine in a thread, answer every future.

Routes call `submit()` and await futures; they never see the engine. The engine sees a list and returns a list of
the same length; it never sees the queue. A failing batch is retried item by item so one poisoned segment fails only
its own request, and the worker keeps running whatever the engine raises.
"""

import asyncio
import logging
import time
from dataclasses import dataclass

from asr_service.batching.fair_queue import FairQueue
from asr_service.engines.base import AsrEngine, Chunk, ChunkResult
from asr_service.errors import InferenceError, NotReadyError, OverloadedError
from asr_service.metrics import ServiceMetrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchPolicy:
    max_batch_size: int
    max_wait_ms: float
    queue_size: int
    retry_after_seconds: int


@dataclass(frozen=True)
class SegmentOutcome:
    result: ChunkResult
    batch_id: int
    batch_ms: float
    """Wall time of the model call that carried this segment (shared with its batch-mates)."""


@dataclass
class _Item:
    chunk: Chunk
    future: asyncio.Future[SegmentOutcome]


class Batcher:
    def __init__(self, engine: AsrEngine, policy: BatchPolicy, metrics: ServiceMetrics) -> None:
        self.engine = engine
        self._policy = policy
        self._metrics = metrics
        self._queue: FairQueue[_Item] = FairQueue()
        self._task: asyncio.Task[None] | None = None
        self._batch_counter = 0

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def depth(self) -> int:
        return len(self._queue)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="asr-batch-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for item in self._queue.drain():
            if not item.future.done():
                item.future.set_exception(NotReadyError("the service is shutting down"))

    def admit(self) -> None:
        """Refuse a new request while the worker is down or the queue is full. An admitted request then submits all
        of its segments, block by block as they are found, so a long call is never refused by its own length."""
        if not self.alive:
            raise NotReadyError("the transcription worker is not running")
        if len(self._queue) >= self._policy.queue_size:
            raise OverloadedError(
                f"{len(self._queue)} segments are waiting for the model; try again shortly",
                headers={"Retry-After": str(self._policy.retry_after_seconds)},
            )

    def submit(self, request_id: str, chunks: list[Chunk]) -> list[asyncio.Future[SegmentOutcome]]:
        """Enqueue segments of an admitted request; one future per segment, in order."""
        if not self.alive:
            raise NotReadyError("the transcription worker is not running")
        loop = asyncio.get_running_loop()
        items = [_Item(chunk, loop.create_future()) for chunk in chunks]
        self._queue.put_all(request_id, items)
        return [item.future for item in items]

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
        batch = [await self._queue.get()]
        deadline = time.perf_counter() + self._policy.max_wait_ms / 1000
        while len(batch) < self._policy.max_batch_size:
            item = self._queue.get_nowait()
            if item is not None:
                batch.append(item)
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
            results = await asyncio.to_thread(self.engine.transcribe_batch, [item.chunk for item in live])
            if len(results) != len(live):
                raise RuntimeError(f"engine returned {len(results)} results for {len(live)} segments")
        except Exception as e:
            if len(live) == 1:
                logger.exception("segment failed on its own (batch %d)", batch_id)
                self._metrics.segments.labels("failed").inc()
                if not live[0].future.done():
                    live[0].future.set_exception(InferenceError(f"the model failed on this audio: {e}"))
                return
            logger.warning("batch %d of %d failed (%s); retrying one by one", batch_id, len(live), e)
            for item in live:
                await self._execute([item])
            return
        elapsed = time.perf_counter() - started
        self._metrics.batch_size.observe(len(live))
        self._metrics.inference_seconds.observe(elapsed)
        self._metrics.segments.labels("ok").inc(len(live))
        for item, result in zip(live, results, strict=True):
            if not item.future.done():
                item.future.set_result(SegmentOutcome(result=result, batch_id=batch_id, batch_ms=elapsed * 1000))
