"""/jobs: queue a recording, follow it, fetch its transcript, cancel or delete it.

The upload is stored (audio file fsynced, then the job row committed) before the 202, so once a client holds a job
id the job cannot be lost: a crash or restart resumes it.
"""

import hashlib
from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from asr_service.api.upload import AUDIO_ERROR_RESPONSES, multipart_schema, read_audio_upload
from asr_service.audit import AudioFacts, audited_parameters
from asr_service.deps import JobsDep, SettingsDep
from asr_service.errors import AsrError, InvalidParameterError, NotFoundError
from asr_service.formats import render_transcript
from asr_service.jobs.callbacks import check_callback_url
from asr_service.jobs.corrections import apply_corrections
from asr_service.jobs.schemas import JobCreated, JobJsonRequest, JobList, JobOptions, JobView, ResultFormat, job_view
from asr_service.jobs.store import JobRecord, JobStatus, NewJob, new_job_id
from asr_service.schemas import EXAMPLE_AUDIO, ErrorResponse, TranscriptionResponse

router = APIRouter(prefix="/jobs", tags=["jobs"])

NOT_FOUND = {404: {"model": ErrorResponse, "description": "not_found: no such job"}}


class JobNotFinishedError(AsrError):
    status = 409
    code = "job_not_finished"


class AudioGoneError(AsrError):
    status = 410
    code = "audio_gone"


AUDIO_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".flac": "audio/flac", ".ogg": "audio/ogg",
               ".oga": "audio/ogg", ".opus": "audio/ogg", ".webm": "audio/webm", ".m4a": "audio/mp4",
               ".mp4": "audio/mp4", ".aac": "audio/aac", ".amr": "audio/amr", ".3gp": "audio/3gpp"}  # fmt: skip


def audio_media_type(filename: str | None) -> str:
    suffix = PurePath(filename or "").suffix.lower()
    return AUDIO_TYPES.get(suffix, "application/octet-stream")


@router.post(
    "",
    status_code=202,
    response_model=JobCreated,
    summary="Queue a recording for transcription",
    description="The same inputs as POST /asr (multipart `file`, or JSON with base64 `audio`) plus `priority` and "
    "`callback_url`. An `Idempotency-Key` header makes a retried submission return the first job.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": multipart_schema(JobOptions),
                    "example": {"file": "(binary call.mp3)", "language": "zh", "priority": "batch"},
                },
                "application/json": {
                    "schema": JobJsonRequest.model_json_schema(),
                    "example": {"audio": EXAMPLE_AUDIO, "filename": "call.wav", "priority": "batch"},
                },
            },
        }
    },
    responses=AUDIO_ERROR_RESPONSES,
)
async def create_job(
    request: Request,
    jobs: JobsDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    upload = await read_audio_upload(request, settings, JobOptions, json_model=JobJsonRequest)
    options = upload.options
    if options.callback_url is not None:
        check_callback_url(options.callback_url, settings.callback_hosts)
    if not upload.data:
        raise InvalidParameterError("file: the uploaded audio is empty (0 bytes)")
    job_id = new_job_id()
    digest = await run_in_threadpool(lambda: hashlib.sha256(upload.data).hexdigest())
    await run_in_threadpool(jobs.files.write, job_id, upload.data)
    new = NewJob(
        priority=options.priority,
        options=options.model_dump(mode="json", include=set(JobOptions.model_fields) - {"priority", "callback_url"}),
        audio_sha256=digest,
        audio_bytes=len(upload.data),
        filename=upload.filename,
        callback_url=options.callback_url,
        idempotency_key=idempotency_key,
    )
    record, created = await run_in_threadpool(jobs.store.create, new, job_id)
    if created:
        jobs.runner.wake()
    else:
        await run_in_threadpool(jobs.files.delete, job_id)  # a retry: the first upload is the job's
    request.state.audit_details = {
        "audio": AudioFacts(sha256=digest, bytes=len(upload.data)),
        "parameters": {**audited_parameters(options), "job": record.id},
    }
    body = JobCreated(id=record.id, status=record.status, created_at=record.created_at)
    return JSONResponse(body.model_dump(mode="json"), status_code=202, headers={"Location": f"/jobs/{record.id}"})


@router.get("", response_model=JobList, summary="List jobs, newest first")
async def list_jobs(
    jobs: JobsDep,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=18, pattern=r"^[0-9]+$")] = None,
) -> JobList:
    records = await run_in_threadpool(jobs.store.page, status, limit + 1, int(cursor) if cursor else None)
    page = records[:limit]
    next_cursor = str(page[-1].seq) if len(records) > limit else None
    corrections = await run_in_threadpool(jobs.corrections.for_jobs, [r.id for r in page])
    views = [job_view(r, with_result=False, corrections=corrections.get(r.id, ())) for r in page]
    return JobList(jobs=views, next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobView, summary="A job's status, progress and result", responses=NOT_FOUND)
async def get_job(job_id: str, jobs: JobsDep) -> JobView:
    record = await _find(jobs, job_id)
    corrections = await run_in_threadpool(jobs.corrections.find, job_id)
    return job_view(record, with_result=True, corrections=corrections)


@router.get(
    "/{job_id}/result",
    summary="A finished job's transcript, in any format",
    responses={
        **NOT_FOUND,
        200: {"content": {"text/plain": {}, "application/x-subrip": {}, "text/vtt": {}}},
        409: {"model": ErrorResponse, "description": "job_not_finished: queued, running, failed or cancelled"},
    },
)
async def get_result(job_id: str, jobs: JobsDep, response_format: ResultFormat = "json") -> Response:
    record = await _find(jobs, job_id)
    if record.status != "succeeded" or record.result is None:
        detail = f": {record.error}" if record.error else ""
        raise JobNotFinishedError(f"the job is {record.status}{detail}")
    corrections = await run_in_threadpool(jobs.corrections.find, job_id)
    result = apply_corrections(TranscriptionResponse.model_validate(record.result), corrections)
    return render_transcript(result, response_format)


@router.get(
    "/{job_id}/audio",
    summary="A job's stored recording (byte ranges supported, for seeking)",
    description="Kept after the job ends only when it was queued with `keep_audio=true` (the web console does) or "
    "the server keeps all audio (ASR_KEEP_AUDIO).",
    responses={
        **NOT_FOUND,
        200: {"content": {"audio/*": {}}},
        206: {"description": "the requested byte range"},
        410: {"model": ErrorResponse, "description": "audio_gone: the recording was not kept"},
        416: {"description": "the byte range is outside the file"},
    },
)
async def get_audio(job_id: str, jobs: JobsDep) -> Response:
    record = await _find(jobs, job_id)
    path = jobs.files.path(record.id)
    if not await run_in_threadpool(path.is_file):
        raise AudioGoneError("the recording of this job was not kept")
    return FileResponse(path, media_type=audio_media_type(record.filename), content_disposition_type="inline")


@router.delete(
    "/{job_id}",
    summary="Cancel a queued or running job, or delete a finished one",
    responses={**NOT_FOUND, 200: {"model": JobView}, 204: {"description": "deleted with its stored audio"}},
)
async def delete_job(job_id: str, jobs: JobsDep) -> Response:
    record = await _find(jobs, job_id)
    if record.status in ("queued", "running"):
        cancelled = await run_in_threadpool(jobs.store.cancel, job_id)
        assert cancelled is not None
        if record.status == "queued":
            await run_in_threadpool(jobs.files.delete, job_id)
        return JSONResponse(job_view(cancelled, with_result=False).model_dump(mode="json"))
    await run_in_threadpool(jobs.store.delete, job_id)
    await run_in_threadpool(jobs.files.delete, job_id)
    await run_in_threadpool(jobs.corrections.delete_job, job_id)
    return Response(status_code=204)


async def _find(jobs: JobsDep, job_id: str) -> JobRecord:
    record = await run_in_threadpool(jobs.store.get, job_id) if job_id.isalnum() and len(job_id) <= 32 else None
    if record is None:
        raise NotFoundError(f"no job {job_id[:40]!r}")
    return record
