"""/corrections: supervisors correct a segment's text or a ticket's category, urgency or department; every
correction is kept (original, corrected, who, when) and can be exported as JSON lines for fine-tuning."""

import datetime
import json
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from asr_service.deps import JobsDep
from asr_service.errors import InvalidParameterError, NotFoundError
from asr_service.hotline.analysis import as_aware
from asr_service.hotline.config import CATEGORIES
from asr_service.jobs.corrections import CorrectedField, Correction
from asr_service.schemas import NUMBER_NOT_TEXT, STRICT_JSON, ErrorResponse, TranscriptionResponse

router = APIRouter(prefix="/corrections", tags=["corrections"])

MAX_CORRECTED_CHARS = 5_000
URGENCIES = ("高", "中", "低")


class CorrectionRequest(BaseModel):
    model_config = STRICT_JSON | ConfigDict(
        json_schema_extra={"examples": [{"job_id": "3f2c9b1e8a4d4c0f9e7a6b5c4d3e2f10", "segment_id": 0, "field": "text",
                                         "corrected": "我想问我在滨海新区有房"}]},
    )  # fmt: skip

    job_id: str = Field(max_length=32, pattern=r"^[0-9a-f]+$")
    segment_id: Annotated[int, Field(ge=0, strict=False), NUMBER_NOT_TEXT] | None = Field(
        default=None, description="The segment, for `field: text`."
    )
    field: CorrectedField = Field(default="text", description="`text` (a segment) or a ticket field.")
    corrected: str = Field(min_length=1, max_length=MAX_CORRECTED_CHARS)


class CorrectionView(BaseModel):
    id: int
    job_id: str
    segment_id: int | None
    field: CorrectedField
    start: float | None = Field(description="The segment's span in seconds (text corrections).")
    end: float | None
    original: str
    corrected: str
    user: str = Field(description="nginx's basic-auth user (`X-Remote-User`); `anonymous` without one.")
    created_at: datetime.datetime


def _view(correction: Correction) -> CorrectionView:
    return CorrectionView.model_validate(correction, from_attributes=True)


@router.post(
    "",
    status_code=201,
    response_model=CorrectionView,
    summary="Correct a segment's text or a ticket field of a finished job",
    responses={
        400: {"model": ErrorResponse, "description": "invalid_request: malformed JSON"},
        404: {"model": ErrorResponse, "description": "not_found: no such job or segment"},
        422: {"model": ErrorResponse, "description": "invalid_request: a bad field, value, or an unfinished job"},
    },
)
async def correct(
    body: CorrectionRequest,
    jobs: JobsDep,
    request: Request,
    x_remote_user: Annotated[str | None, Header(max_length=200)] = None,
) -> CorrectionView:
    record = await run_in_threadpool(jobs.store.get, body.job_id)
    if record is None:
        raise NotFoundError(f"no job {body.job_id!r}")
    if record.status != "succeeded" or record.result is None:
        raise InvalidParameterError(f"job_id: the job is {record.status}; only a finished transcript is corrected")
    result = TranscriptionResponse.model_validate(record.result)
    corrected = body.corrected.strip()
    span: tuple[float, float] | None = None
    if body.field == "text":
        segment = next((s for s in result.segments if s.id == body.segment_id), None)
        if segment is None:
            raise NotFoundError(f"job {body.job_id} has no segment {body.segment_id}")
        original, span = segment.text, (segment.start, segment.end)
    else:
        if result.ticket is None:
            raise InvalidParameterError("field: this job has no ticket (it was not queued with analyze=true)")
        allowed = {"category": CATEGORIES, "urgency": URGENCIES}.get(body.field)
        if allowed is not None and corrected not in allowed:
            raise InvalidParameterError(f"corrected: {body.field} must be one of {', '.join(allowed)}")
        original = str(getattr(result.ticket, body.field))
    user = (x_remote_user or "").strip() or "anonymous"
    saved = await run_in_threadpool(
        jobs.corrections.add, body.job_id, body.segment_id, body.field, span, original, corrected, user
    )
    request.state.audit_details = {"parameters": {"job": body.job_id, "field": body.field}}
    return _view(saved)


@router.get(
    "",
    summary="Corrections as JSON lines (fine-tuning data), oldest first",
    responses={
        200: {"content": {"application/x-ndjson": {}}},
        422: {"model": ErrorResponse, "description": "invalid_request: a bad `since` or `job_id`"},
    },
)
async def export(
    jobs: JobsDep,
    since: Annotated[
        str | None,
        Query(
            max_length=40, pattern=r"^\d{4}-\d{2}-\d{2}", description="ISO 8601 date-time: only corrections after it."
        ),
    ] = None,
    job_id: Annotated[str | None, Query(max_length=32, pattern=r"^[0-9a-f]+$")] = None,
) -> Response:
    try:
        after = as_aware(datetime.datetime.fromisoformat(since)) if since else None
    except ValueError:
        raise InvalidParameterError(f"since: not an ISO 8601 date-time: {since!r}") from None
    rows = await run_in_threadpool(jobs.corrections.find, job_id, after)
    lines = "".join(json.dumps(_view(r).model_dump(mode="json"), ensure_ascii=False) + "\n" for r in rows)
    return Response(lines, media_type="application/x-ndjson")
