"""POST /redact: mask personal data in a text on its own (ticket systems hold old transcripts and notes too)."""

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from asr_service.redaction import redact
from asr_service.schemas import ErrorResponse, RedactionSpan, RedactRequest, RedactResponse

router = APIRouter(tags=["personal data"])


@router.post(
    "/redact",
    response_model=RedactResponse,
    summary="Mask personal data in a text",
    description="ID-card numbers (checksum), mobile and landline numbers, bank-card numbers (Luhn), e-mail addresses "
    "and licence plates, also when read out in Chinese digits or split by pauses and fillers.",
    responses={
        400: {"model": ErrorResponse, "description": "invalid_request: malformed JSON"},
        422: {"model": ErrorResponse, "description": "invalid_request: no `text`, or over the length limit"},
    },
)
async def redact_text(request: Request, body: RedactRequest) -> RedactResponse:
    result = await run_in_threadpool(redact, body.text)  # up to a second of CPU for the longest text
    request.state.audit_details = {"parameters": {"characters": len(body.text)}, "redactions": result.counts}
    return RedactResponse(
        text=result.text,
        redactions=[RedactionSpan(kind=r.kind, start=r.start, end=r.end) for r in result.redactions],
    )
