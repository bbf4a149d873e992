"""Probes: /healthz (the process answers) and /readyz (model loaded, worker running)."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from asr_service.deps import BatcherDep
from asr_service.errors import error_body
from asr_service.schemas import ErrorResponse, ReadyResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ReadyResponse,
    summary="Readiness: model loaded, batch worker running, not shutting down",
    responses={503: {"model": ErrorResponse}},
)
async def readyz(batcher: BatcherDep) -> ReadyResponse | JSONResponse:
    if reason := batcher.not_ready_reason:
        return JSONResponse(error_body("not_ready", reason), status_code=503)
    return ReadyResponse(status="ready", model=batcher.engine.model_name)


# Load balancers and uptime checkers probe with HEAD too; same answers, not listed twice in the schema.
router.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/readyz", readyz, methods=["HEAD"], include_in_schema=False, response_model=ReadyResponse)
