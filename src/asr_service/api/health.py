"""Probes: /healthz (the process answers) and /readyz (model loaded, worker running)."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from asr_service.deps import BatcherDep
from asr_service.errors import error_body
from asr_service.schemas import ErrorResponse, ReadyResponse

router = APIRouter(tags=["health"])


@router.api_route("/healthz", methods=["GET", "HEAD"], summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.api_route(
    "/readyz",
    methods=["GET", "HEAD"],
    response_model=ReadyResponse,
    summary="Readiness: model loaded and batch worker running",
    responses={503: {"model": ErrorResponse}},
)
async def readyz(batcher: BatcherDep) -> ReadyResponse | JSONResponse:
    if not batcher.alive:
        return JSONResponse(error_body("not_ready", "the transcription worker is not running"), status_code=503)
    return ReadyResponse(status="ready", model=batcher.engine.model_name)
