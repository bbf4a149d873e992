"""The /jobs contract: what a client sends to queue a recording and what it reads back."""

import datetime
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from asr_service.jobs.corrections import Correction, apply_corrections
from asr_service.jobs.store import JobPriority, JobRecord, JobStatus
from asr_service.schemas import (
    STRICT_JSON,
    ErrorDetail,
    TranscriptionJsonRequest,
    TranscriptionOptions,
    TranscriptionResponse,
)


class JobParameters(BaseModel):
    priority: JobPriority = Field(
        default="batch",
        description="`batch` (default): behind interactive requests, for recordings nobody waits on. `interactive`: "
        "alongside /asr requests.",
    )
    keep_audio: bool = Field(
        default=False,
        description="Keep the upload after the job ends, for GET /jobs/{id}/audio (the web console plays it back); "
        "deleted with the job or by ASR_RETENTION_DAYS.",
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
    model_config = STRICT_JSON


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
    duration: float | None = Field(default=None, description="Audio seconds, once it succeeded (also in lists).")
    category: str | None = Field(default=None, description="The ticket's category, when analysed (also in lists).")
    urgency: str | None = Field(default=None, description="The ticket's urgency, when analysed (also in lists).")
    callbacks: list[dict[str, object]] = Field(description="Every callback attempt: time, status or error.")


class JobList(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null on the last.")


ResultFormat = Literal["json", "text", "srt", "vtt"]


def job_view(record: JobRecord, with_result: bool, corrections: Sequence[Correction] = ()) -> JobView:
    """What GET /jobs/{id} answers (and a callback receives), with supervisors' corrections applied; lists leave the
    result out but keep its duration, category and urgency."""
    result = TranscriptionResponse.model_validate(record.result) if record.result else None
    if result is not None:
        result = apply_corrections(result, corrections)
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
        result=result if with_result else None,
        duration=result.duration if result else None,
        category=result.ticket.category if result and result.ticket else None,
        urgency=result.ticket.urgency if result and result.ticket else None,
        callbacks=record.callbacks,
    )
