"""The /jobs contract: what a client sends to queue a recording and what it reads back."""

import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from asr_service.jobs.store import JobPriority, JobRecord, JobStatus
from asr_service.schemas import ErrorDetail, TranscriptionJsonRequest, TranscriptionOptions, TranscriptionResponse


class JobParameters(BaseModel):
    priority: JobPriority = Field(
        default="batch",
        description="`batch` (default): behind interactive requests, for recordings nobody waits on. `interactive`: "
        "alongside /asr requests.",
    )
    callback_url: str | None = Field(
        default=None,
        max_length=2000,
        description="POSTed the job when it ends, signed (see the README). Only hosts in ASR_CALLBACK_ALLOWED_HOSTS.",
    )


class JobOptions(TranscriptionOptions, JobParameters):
    """Multipart fields of POST /jobs: those of /asr plus the job's own."""

    model_config = ConfigDict(extra="ignore")


class JobJsonRequest(TranscriptionJsonRequest, JobParameters):
    model_config = ConfigDict(extra="forbid")


class JobCreated(BaseModel):
    id: str
    status: JobStatus
    created_at: datetime.datetime


class JobView(BaseModel):
    id: str
    status: JobStatus
    priority: JobPriority
    progress: float = Field(description="0–1: audio scanned × speech transcribed.")
    filename: str | None
    created_at: datetime.datetime
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None
    attempts: int = Field(description="Times a replica started it (more than 1 after a crash or a restart).")
    error: ErrorDetail | None = Field(description="Why it failed.")
    result: TranscriptionResponse | None = Field(description="When it succeeded: what POST /asr would have answered.")
    callbacks: list[dict[str, object]] = Field(description="Every callback attempt: time, status or error.")


class JobList(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null on the last.")


ResultFormat = Literal["json", "text", "srt", "vtt"]


def job_view(record: JobRecord, with_result: bool) -> JobView:
    """What GET /jobs/{id} answers (and a callback receives); lists leave the result out."""
    return JobView(
        id=record.id,
        status=record.status,
        priority=record.priority,
        progress=round(record.progress, 3),
        filename=record.filename,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        attempts=record.attempts,
        error=ErrorDetail.model_validate_json(record.error) if record.error else None,
        result=TranscriptionResponse.model_validate(record.result) if with_result and record.result else None,
        callbacks=record.callbacks,
    )
