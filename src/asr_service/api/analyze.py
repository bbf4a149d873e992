"""POST /analyze: a transcript (from any source) as a hotline ticket, optionally filed in the history."""

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from asr_service.deps import TicketsDep
from asr_service.hotline.analysis import Ticket
from asr_service.schemas import STRICT_JSON, ErrorResponse, IsoDateTime

MAX_ANALYZE_CHARS = 50_000
"""About four hours of speech: far beyond a call, short enough to analyse in well under a second."""

router = APIRouter(tags=["hotline"])


class AnalyzeRequest(BaseModel):
    model_config = STRICT_JSON | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "text": "坐席：您好，12345。市民：朝阳区望京西园三区5号楼电梯坏了，有人被困在里面。",
                    "call_id": "20261122-0815-001",
                    "time": "2026-11-22T08:15:00+08:00",
                    "record": True,
                }
            ]
        },
    )

    text: str = Field(max_length=MAX_ANALYZE_CHARS, description=f"At most {MAX_ANALYZE_CHARS:,} characters.")
    call_id: str | None = Field(default=None, max_length=200, description="Default: a new id.")
    time: IsoDateTime | None = Field(default=None, description="When the call was made (1970–2099); default: now.")
    record: bool = Field(default=False, description="File the ticket in the history that repeats are found in.")


@router.post(
    "/analyze",
    response_model=Ticket,
    summary="File a transcript as a hotline ticket",
    description="Category, urgency, request type, emergency referral (110/119/120), place, district, department, "
    "the summary sentence and the caller's words; repeats of earlier filed calls (same problem, same place).",
    responses={
        400: {"model": ErrorResponse, "description": "invalid_request: malformed JSON"},
        422: {"model": ErrorResponse, "description": "invalid_request: no `text`, over the length limit, a bad time"},
    },
)
async def analyze_text(request: Request, body: AnalyzeRequest, tickets: TicketsDep) -> Ticket:
    ticket = await run_in_threadpool(tickets.file, body.text, body.call_id, body.time, body.record)
    request.state.audit_details = {
        "parameters": {"characters": len(body.text), "record": body.record},
        "ticket": {"category": ticket.category, "urgency": ticket.urgency, "district": ticket.district},
    }
    return ticket
