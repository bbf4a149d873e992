"""Runs stored jobs through the same Transcriber (and the one batching worker) as /asr, at batch priority unless a
job asked for `interactive`.

A few job slots claim jobs from the store, each under a lease renewed while it works. Renewal also carries the
job's progress and notices cancellation. A job that fails with a client error (bad audio) is `failed` with that
error; a service-side refusal (shutting down) puts it back for later. On a graceful stop the runner puts its
running jobs back in the queue so the next start takes them at once; after a crash they come back when their lease
runs out.
"""

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from asr_service.errors import AsrError, NotReadyError, error_body
from asr_service.jobs.audio_files import AudioFiles
from asr_service.jobs.store import JobRecord, JobStatus, JobStore
from asr_service.schemas import TranscriptionOptions, TranscriptionResponse
from asr_service.transcription import Transcriber

logger = logging.getLogger(__name__)

EndHook = Callable[[JobRecord], Coroutine[Any, Any, None]]
"""Told of every job that ended here (succeeded or failed), with its final record: sends callbacks."""

ResultHook = Callable[[JobRecord, TranscriptionResponse], Coroutine[Any, Any, None]]
"""Told of a job's result before the job is recorded as succeeded: saves the transcript. Whoever sees `succeeded`
finds it saved, and a crash in between runs the job again, which writes the same file again (the result carries the
job's id), so a succeeded job's transcript is saved once and never lost."""


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        files: AudioFiles,
        transcriber: Transcriber,
        *,
        slots: int,
        lease_seconds: float,
        poll_seconds: float,
        keep_audio: bool,
        on_end: EndHook | None = None,
        on_result: ResultHook | None = None,
    ) -> None:
        self.owner = uuid.uuid4().hex
        self._store = store
        self._files = files
        self._transcriber = transcriber
        self._slots = slots
        self._lease = lease_seconds
        self._poll = poll_seconds
        self._keep_audio = keep_audio
        self._on_end = on_end
        self._on_result = on_result
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._slot(), name=f"asr-job-slot-{i}") for i in range(self._slots)]

    def wake(self) -> None:
        """A job was just stored: look now rather than at the next poll."""
        self._wake.set()

    def stop_claiming(self) -> None:
        self._stopping = True

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        released = await asyncio.to_thread(self._store.release, self.owner)
        if released:
            logger.info("put %d running job(s) back in the queue", released)

    async def _slot(self) -> None:
        while not self._stopping:
            try:
                job = await asyncio.to_thread(self._store.claim, self.owner, self._lease)
            except Exception:
                logger.exception("claiming a job failed")
                job = None
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)
                continue
            try:
                await self._run(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # a slot must outlive any job
                logger.exception("job %s: unexpected failure", job.id)
                await self._finish(job.id, "failed", None, _error("internal_error", "internal error; see the log"))

    async def _run(self, job: JobRecord) -> None:
        logger.info("job %s: started (attempt %d, %s)", job.id, job.attempts, job.priority)
        try:
            data = await asyncio.to_thread(self._files.read, job.id)
        except OSError:
            await self._finish(job.id, "failed", None, _error("audio_missing", "the stored audio is gone"))
            return
        progress = [0.0]
        work = asyncio.create_task(
            self._transcriber.transcribe(
                data,
                TranscriptionOptions.model_validate(job.options),
                priority=job.priority,
                progress=lambda fraction: progress.__setitem__(0, fraction),
                call_id=job.id,
                call_time=job.created_at,
            )
        )
        keeper = asyncio.create_task(self._keep_lease(job.id, work, progress))
        try:
            await asyncio.wait({work})  # unlike awaiting it, not raised into by the work's own cancellation
        finally:
            keeper.cancel()
            if not work.done():
                work.cancel()  # the runner is stopping: the job goes back to the queue
        if work.cancelled():
            logger.info("job %s: stopped (cancelled, or taken over by another replica)", job.id)
            await self._discard_audio(job.id)
            return
        error = work.exception()
        if isinstance(error, NotReadyError):  # shutting down, or a stuck model: back in the queue, and wait
            await asyncio.to_thread(self._store.release, self.owner, job.id)
            await asyncio.sleep(self._poll)
            return
        if isinstance(error, AsrError):
            await self._finish(job.id, "failed", None, _error(error.code, error.message), _keeps(job))
            return
        if error is not None:
            raise error
        result = work.result().model_copy(update={"id": job.id})  # one id per call: the job's
        if self._on_result is not None:
            status = await asyncio.to_thread(self._store.renew, job.id, self.owner, self._lease, 1.0)
            if status != "running":
                logger.info("job %s: done, but %s meanwhile; its result is not kept", job.id, status or "taken over")
                if status == "cancelled":
                    await self._discard_audio(job.id)
                return
            try:
                await self._on_result(job, result)
            except Exception:  # the result stays in the store, for GET /jobs/{id}/result
                logger.exception("job %s: saving its transcript failed", job.id)
        if await self._finish(job.id, "succeeded", result.model_dump(mode="json"), None, _keeps(job)):
            logger.info("job %s: succeeded (%.1f s audio)", job.id, result.duration)

    async def _finish(
        self, job_id: str, status: JobStatus, result: dict[str, Any] | None, error: str | None, keep: bool = False
    ) -> bool:
        """Record the outcome (if this replica still owns the job), drop the upload unless the job asked to keep it
        (the web console plays it back), and tell the end hook."""
        if not await asyncio.to_thread(self._store.finish, job_id, self.owner, status, result, error):
            return False
        if not keep:
            await self._discard_audio(job_id)
        if self._on_end is not None:
            record = await asyncio.to_thread(self._store.get, job_id)
            if record is not None:
                await self._on_end(record)
        return True

    async def _keep_lease(self, job_id: str, work: asyncio.Task[TranscriptionResponse], progress: list[float]) -> str:
        """Renew the lease every third of it; stop the work if the job was cancelled or another replica has it."""
        while True:
            await asyncio.sleep(self._lease / 3)
            status = await asyncio.to_thread(self._store.renew, job_id, self.owner, self._lease, progress[0])
            if status != "running":
                work.cancel()  # its queued segments leave the queue
                return "lost"

    async def _discard_audio(self, job_id: str) -> None:
        if not self._keep_audio:
            await asyncio.to_thread(self._files.delete, job_id)


def _keeps(job: JobRecord) -> bool:
    return bool(job.options.get("keep_audio"))


def _error(code: str, message: str) -> str:
    return json.dumps(error_body(code, message)["error"], ensure_ascii=False)
